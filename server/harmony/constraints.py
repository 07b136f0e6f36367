"""Constrained decoding for gpt-oss, expressed as an xgrammar structural tag (as vLLM does for harmony).

The grammar lets the model reason first (one optional analysis message, at most ``reasoning_budget`` tokens
when a budget is set: the grammar then closes the analysis and opens the answer itself), and then forces
either a final answer that matches the JSON schema, or a call to one of the allowed functions whose arguments
match that function's parameter schema. The result is engine-neutral: ``{"structural_tag": "<json>"}``.
"""

from __future__ import annotations

import json
from typing import Any

from server.errors import InvalidRequestError
from server.types import ChatRequest, FunctionTool

# Whitespace between JSON tokens is capped: an unconstrained run of spaces is how a weak model loops.
MAX_JSON_WHITESPACE = 1
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_FINAL_BEGINS = ("<|channel|>final<|message|>", "<|channel|>final json<|message|>",
                 "<|channel|>final <|constrain|>json<|message|>")
_CALL_BEGINS = (
    "<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>",
    "<|channel|>commentary to=functions.{name} json<|message|>",
    " to=functions.{name}<|channel|>commentary <|constrain|>json<|message|>",
    " to=functions.{name}<|channel|>commentary json<|message|>",
)
# "" lets the turn end on a stop token (<|return|>, <|call|>) once the content is complete.
_ENDS = ["<|end|>", ""]


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_JSON_WHITESPACE}


def _tag(begin: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tag", "begin": begin, "content": _json_content(schema), "end": _ENDS}


def _call_tags(tool: FunctionTool) -> list[dict[str, Any]]:
    schema = tool.parameters or _ANY_OBJECT
    return [_tag(begin.format(name=tool.name), schema) for begin in _CALL_BEGINS]


def output_constraint(request: ChatRequest, reasoning_budget: int | None = None) -> dict[str, object] | None:
    """The constraint for this request, or None when the output is free."""
    choice = request.tool_choice
    fmt = request.response_format
    tags: list[dict[str, Any]] = []
    if choice.mode == "function":
        tags = [t for tool in request.tools if tool.name == choice.name for t in _call_tags(tool)]
    elif choice.mode == "required":
        tags = [t for tool in request.tools for t in _call_tags(tool)]
    elif fmt.type in ("json_object", "json_schema"):
        schema = fmt.schema if fmt.type == "json_schema" and fmt.schema else _ANY_OBJECT
        if not isinstance(schema, dict):
            raise InvalidRequestError("response_format.json_schema.schema must be an object.", param="response_format")
        if choice.mode == "auto":
            tags = [t for tool in request.tools for t in _call_tags(tool)]
        tags += [_tag(begin, schema) for begin in _FINAL_BEGINS]
    if not tags:
        return None
    analysis = {
        "type": "optional",
        "content": {
            "type": "sequence",
            "elements": [
                {
                    "type": "tag",
                    "begin": "<|channel|>analysis<|message|>",
                    "content": {"type": "any_text", "max_tokens": reasoning_budget},
                    "end": "<|end|>",
                },
                {"type": "const_string", "value": "<|start|>assistant"},
            ],
        },
    }
    answer = tags[0] if len(tags) == 1 else {"type": "or", "elements": tags}
    tag = {"type": "structural_tag", "format": {"type": "sequence", "elements": [analysis, answer]}}
    return {"structural_tag": json.dumps(tag, separators=(",", ":"))}
