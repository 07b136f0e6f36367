"""Constrained decoding for gpt-oss, expressed as an xgrammar structural tag (as vLLM does for harmony).

The grammar lets the model reason first (one optional analysis message, at most ``reasoning_budget`` tokens when
a budget is set: the grammar then closes the analysis and opens the answer itself), and then forces either a
final answer matching the request's ``OutputConstraint`` (a JSON schema or any object, a regex, one of a list of
choices, an EBNF or Lark grammar, a client's own structural tag: xgrammar's ``json_schema``, ``regex``, ``or`` of
``const_string``, ``grammar`` formats or the tag's own format, as vLLM's harmony path maps its structured outputs), or
a call to one of the allowed functions whose arguments match that function's parameter schema. Once the answer is
complete only a stop token (``<|return|>``/``<|call|>``) can follow. A Lark grammar is left to the engine to convert
(vLLM's ``grammar_is_likely_lark``); a client's structural tag also travels alone (``CLIENT_TAG``) for the engine to
check as vLLM checks it before anything else.

Harmony's control tokens are matched by token id (xgrammar's ``token`` format): spelled as text they would be
ordinary tokens, and the harmony parser would never see the channel change. The result is engine-neutral:
``{"structural_tag": "<json>"}``.
"""

from __future__ import annotations

import json
from typing import Any

from server.engine.base import CLIENT_TAG
from server.errors import InvalidRequestError
from server.harmony.encoding import CHANNEL, CONSTRAIN, END, MESSAGE, START
from server.types import ChatRequest, FunctionTool, OutputConstraint

# Whitespace between JSON tokens is capped: an unconstrained run of spaces is how a weak model loops.
MAX_JSON_WHITESPACE = 1
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def _token(token_id: int) -> dict[str, Any]:
    return {"type": "token", "token": token_id}


def _text(value: str) -> dict[str, Any]:
    return {"type": "const_string", "value": value}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_JSON_WHITESPACE}


def _sequence(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sequence", "elements": list(elements)}


def final_json(schema: dict[str, Any]) -> dict[str, Any]:
    """``<|channel|>final<|message|>{json}``"""
    return final_answer(_json(schema))


def final_answer(content: dict[str, Any]) -> dict[str, Any]:
    """``<|channel|>final<|message|>`` and then ``content``."""
    return _sequence(_token(CHANNEL), _text("final"), _token(MESSAGE), content)


def answer_format(fmt: OutputConstraint) -> dict[str, Any] | None:
    """The xgrammar format the final answer must match; None for free text."""
    if fmt.type == "json_object":
        return _json(_ANY_OBJECT)
    if fmt.type == "json_schema":
        schema = fmt.schema if fmt.schema else _ANY_OBJECT
        if not isinstance(schema, dict):
            raise InvalidRequestError("response_format.json_schema.schema must be an object.", param="response_format")
        return _json(schema)
    if fmt.type == "regex":
        return {"type": "regex", "pattern": fmt.pattern or ""}
    if fmt.type == "choice":
        return {"type": "or", "elements": [_text(c) for c in fmt.choices or []]}
    if fmt.type == "grammar":
        return {"type": "grammar", "grammar": fmt.grammar or ""}
    if fmt.type == "structural_tag":
        return client_format(fmt.tag or "")
    return None


def client_format(tag: str) -> dict[str, Any] | None:
    """The format of a client's structural tag as vLLM reads it (``structured_outputs_to_format``): its ``format``,
    or the legacy ``structures`` (begin, JSON schema, end) behind their ``triggers`` as a ``triggered_tags`` format;
    None when the text is no such tag (the engine's check of the tag alone refuses it)."""
    try:
        spec = json.loads(tag)
        if "structures" in spec:
            tags = [
                {
                    "type": "tag",
                    "begin": s["begin"],
                    "content": {"type": "json_schema", "json_schema": s["schema"]},
                    "end": s["end"],
                }
                for s in spec["structures"]
            ]
            return {"type": "triggered_tags", "triggers": spec["triggers"], "tags": tags}
        content = spec["format"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return content if isinstance(content, dict) else None


def function_call(tool: FunctionTool) -> dict[str, Any]:
    """``<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{arguments}``"""
    return _sequence(
        _token(CHANNEL),
        _text(f"commentary to={tool.recipient} "),
        _token(CONSTRAIN),
        _text("json"),
        _token(MESSAGE),
        _json(tool.parameters or _ANY_OBJECT),
    )


def analysis(reasoning_budget: int | None) -> dict[str, Any]:
    """An optional ``<|channel|>analysis<|message|>...<|end|><|start|>assistant`` before the answer."""
    return {
        "type": "optional",
        "content": _sequence(
            _token(CHANNEL),
            _text("analysis"),
            _token(MESSAGE),
            {"type": "any_text", "max_tokens": reasoning_budget},
            _token(END),
            _token(START),
            _text("assistant"),
        ),
    }


def output_constraint(request: ChatRequest, reasoning_budget: int | None = None) -> dict[str, object] | None:
    """The constraint for this request, or None when the output is free."""
    choice = request.tool_choice
    fmt = request.response_format
    client = {CLIENT_TAG: {"param": fmt.param, "tag": fmt.tag or ""}} if fmt.type == "structural_tag" else {}
    if client and choice.mode not in ("function", "required") and answer_format(fmt) is None:
        return {"structural_tag": fmt.tag or "", **client}  # no tag at all: the engine refuses it
    answers: list[dict[str, Any]] = []
    if choice.mode == "function":
        answers = [function_call(t) for t in request.tools if t.name == choice.name]
    elif choice.mode == "required":
        answers = [function_call(t) for t in request.tools]
    elif (content := answer_format(fmt)) is not None:
        if choice.mode == "auto":
            answers = [function_call(t) for t in request.tools]
        answers.append(final_answer(content))
    if not answers:
        return None
    answer = answers[0] if len(answers) == 1 else {"type": "or", "elements": answers}
    tag = {"type": "structural_tag", "format": _sequence(analysis(reasoning_budget), answer)}
    return {"structural_tag": json.dumps(tag, separators=(",", ":")), **client}
