"""vLLM's ``structured_outputs`` (its ``StructuredOutputsParams``) combined with ``response_format`` as vLLM combines
them, with vLLM's messages, into the core's ``OutputConstraint``; and a raw prompt's constraint for the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from routes.shared.openai_request import response_format_to_core
from server.errors import InvalidRequestError
from server.types import OutputConstraint


class StructuredOutputsIn(BaseModel):
    """vLLM's ``StructuredOutputsParams`` as its request model reads it. Per request, the xgrammar backend reads
    only the constraint itself: ``disable_any_whitespace``, ``disable_additional_properties`` and
    ``whitespace_pattern`` are accepted and, as in vLLM, have no effect (whitespace is an engine setting)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    json_: str | dict[str, Any] | None = Field(None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None


@dataclass
class _Params:
    """The fields of vLLM's ``StructuredOutputsParams`` in its order: its error messages print them."""

    json: str | dict[str, Any] | None
    regex: str | None
    choice: list[str] | None
    grammar: str | None
    json_object: bool | None
    disable_any_whitespace: bool
    disable_additional_properties: bool
    whitespace_pattern: str | None
    structural_tag: str | None

    KINDS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")

    def check(self) -> None:
        """``StructuredOutputsParams.__post_init__``: exactly one kind."""
        count = sum(getattr(self, k) is not None for k in self.KINDS)
        if count == 1:
            return
        fields = {**self.__dict__, "_backend": None, "_backend_was_auto": False}
        if count > 1:
            raise InvalidRequestError(
                f"You can only use one kind of structured outputs constraint but multiple are specified: {fields}"
            )
        raise InvalidRequestError(
            f"You must use one kind of structured outputs constraint but none are specified: {fields}"
        )


def is_structural_tag(response_format: dict[str, Any] | None) -> bool:
    """vLLM's ``structural_tag`` response format (``StructuralTagResponseFormat`` or its legacy form)."""
    return isinstance(response_format, dict) and response_format.get("type") == "structural_tag"


def structured_to_core(
    so: StructuredOutputsIn | None, response_format: dict[str, Any] | None, tool_choice: object
) -> OutputConstraint:
    """``structured_outputs`` with ``response_format`` applied over it, refused where vLLM refuses it (its request
    validators, ``StructuredOutputsParams``, and the checks before it compiles the constraint). A ``structural_tag``
    response format becomes the structural tag as vLLM dumps it (the engine checks the tag itself, as vLLM does)."""
    given = so is not None
    if so is None:  # vLLM: the response format alone
        if not is_structural_tag(response_format):
            return response_format_to_core(response_format)
        so = StructuredOutputsIn()
    simple = sum(v is not None for v in (so.json_, so.regex, so.choice))
    if simple > 1:
        raise InvalidRequestError(
            "You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice')."
        )
    if simple and tool_choice not in ("none", "auto", "required"):
        raise InvalidRequestError("You can only either use constraints for structured outputs or tools, not both.")
    params = _Params(
        so.json_,
        so.regex,
        so.choice,
        so.grammar,
        so.json_object,
        so.disable_any_whitespace,
        so.disable_additional_properties,
        so.whitespace_pattern,
        so.structural_tag,
    )
    if given:
        params.check()
    if is_structural_tag(response_format):
        assert isinstance(response_format, dict)
        tag = json.dumps({"type": "structural_tag", **{k: v for k, v in response_format.items() if k != "type"}})
        replace(params, structural_tag=tag).check()
        return OutputConstraint("structural_tag", tag=tag, param="response_format")
    fmt = response_format_to_core(response_format)
    if fmt.type in ("json_object", "json_schema"):  # vLLM: response_format overrides its own key only
        override = {"json_object": True} if fmt.type == "json_object" else {"json": fmt.schema}
        params = replace(params, **override)
        params.check()
        if fmt.type == "json_schema":
            return fmt
    if params.json_object is not None:
        if not params.json_object:
            raise InvalidRequestError(
                "structured_outputs.json_object must be True if set; omit structured_outputs to disable "
                "structured outputs"
            )
        return OutputConstraint("json_object")
    if params.json is not None:
        schema = params.json
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as exc:  # vLLM answers with the decoder's own message
                raise InvalidRequestError(str(exc)) from None
        return OutputConstraint("json_schema", schema)
    if params.regex is not None:
        return OutputConstraint("regex", pattern=params.regex)
    if params.choice is not None:
        return OutputConstraint("choice", choices=params.choice)
    if params.grammar is not None:
        return OutputConstraint("grammar", grammar=params.grammar)
    return OutputConstraint("structural_tag", tag=params.structural_tag, param="structured_outputs")


def engine_constraint(fmt: OutputConstraint) -> dict[str, object] | None:
    """A raw prompt's constraint as the engine takes it (vLLM's ``StructuredOutputsParams``), applied from the first
    output token with no harmony framing, as vLLM applies it to a completion; None for free text."""
    if fmt.type == "json_object":
        return {"json_object": True}
    if fmt.type == "json_schema":
        return {"json": fmt.schema or {"type": "object"}}
    if fmt.type == "regex":
        return {"regex": fmt.pattern or ""}
    if fmt.type == "choice":
        return {"choice": list(fmt.choices or [])}
    if fmt.type == "grammar":
        return {"grammar": fmt.grammar or ""}
    if fmt.type == "structural_tag":
        return {"structural_tag": fmt.tag or ""}
    return None
