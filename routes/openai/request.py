"""vLLM's chat request (OpenAI's fields plus vLLM's extras) into the core's ``ChatRequest``.

The E2E route (vLLM behind a gateway) uses the same model. vLLM's own checks (``routes/openai/checks.py``) run on the
raw body first, with vLLM's messages; a message's role may be any string, as in vLLM, and one harmony cannot render
is refused as vLLM's harmony path refuses it. ``structured_outputs`` (vLLM's ``StructuredOutputsParams``) is refused
and combined with ``response_format`` as vLLM does, with vLLM's messages; the ``guided_*`` fields vLLM removed are
ignored with the warning vLLM logs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routes.openai.checks import check_body, check_role
from routes.shared.completion_request import check_prompt_logprobs
from routes.shared.openai_request import (
    MessageIn,
    NamedToolChoice,
    ToolDef,
    chat_to_core,
    check_logit_bias,
    response_format_to_core,
    stop_as_list,
)
from server.choices import check_greedy
from server.errors import InvalidRequestError
from server.types import ChatRequest, OutputConstraint, SamplingOptions

log = logging.getLogger(__name__)

INT64 = 2**63 - 1

# vLLM's _REMOVED_GUIDED_FIELDS: accepted, ignored, and named in a warning (once per process), as vLLM does.
REMOVED_GUIDED_FIELDS = frozenset(
    {
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "guided_decoding_backend",
        "guided_whitespace_pattern",
    }
)
_warned_guided = False


def warn_removed_guided(data: Any) -> Any:
    """vLLM's warning for the removed guided-decoding fields (a ``model_validator(mode="before")``)."""
    global _warned_guided
    removed = sorted(REMOVED_GUIDED_FIELDS & set(data)) if isinstance(data, dict) else []
    if removed and not _warned_guided:
        _warned_guided = True
        log.warning(
            "Request contains the removed guided-decoding field(s) %s, which are ignored; output will NOT be "
            "constrained. Use `structured_outputs` (or `response_format`) instead.",
            removed,
        )
    return data


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class VllmMessageIn(MessageIn):
    """vLLM's message: any role (its custom message type), checked against harmony's roles in ``to_core``."""

    role: str = Field(max_length=256)  # type: ignore[assignment]


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request with vLLM's extras (top_k, min_p, repetition_penalty, ...).

    Unknown fields are ignored, as vLLM and OpenAI do.
    """

    model_config = ConfigDict(extra="ignore")

    messages: list[VllmMessageIn] = Field(min_length=1, max_length=4096)
    model: str | None = Field(None, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    n: int | None = Field(1, ge=1, le=128)  # null (OpenAI's spec and vLLM allow it): the default
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    structured_outputs: StructuredOutputsIn | None = None
    user: str | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0, le=INT64)
    # vLLM's extra sampling fields, passed to the engine as vLLM passes them
    stop_token_ids: list[int] | None = Field(default_factory=list, max_length=256)
    include_stop_str_in_output: bool = False
    include_reasoning: bool = True
    bad_words: list[str] = Field(default_factory=list, max_length=256)
    allowed_token_ids: list[int] | None = Field(None, max_length=201088)
    return_token_ids: bool = False
    prompt_logprobs: int | None = None

    _stop_list = field_validator("stop")(stop_as_list)

    _bias = field_validator("logit_bias")(check_logit_bias)

    _guided = model_validator(mode="before")(warn_removed_guided)

    @model_validator(mode="before")
    @classmethod
    def _vllm_checks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_body(data)
        return data

    @property
    def choices(self) -> int:
        """``n``: the choices to generate (null is the default, 1)."""
        return self.n or 1

    def to_core(self, request_id: str) -> ChatRequest:
        check_greedy(self.choices, self.temperature)
        for message in self.messages:
            check_role(message.role)
        check_prompt_logprobs(self.prompt_logprobs, bool(self.stream))
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            stop=list(self.stop or []),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
            logprobs=bool(self.logprobs),
            top_logprobs=self.top_logprobs or 0,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
            stop_token_ids=list(self.stop_token_ids or []),
            include_stop_str_in_output=self.include_stop_str_in_output,
            bad_words=list(self.bad_words),
            allowed_token_ids=self.allowed_token_ids,
            prompt_logprobs=self.prompt_logprobs,
        )
        chat = chat_to_core(
            messages=self.messages,  # type: ignore[arg-type]
            sampling=sampling,
            reasoning_effort=self.reasoning_effort,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=None if is_structural_tag(self.response_format) else self.response_format,
            request_id=request_id,
        )
        if self.structured_outputs is not None or is_structural_tag(self.response_format):
            # vLLM reads a missing tool_choice as "none", a null one as itself
            tool_choice = self.tool_choice if "tool_choice" in self.model_fields_set else "none"
            chat.response_format = structured_to_core(self.structured_outputs, self.response_format, tool_choice)
        chat.include_reasoning = self.include_reasoning
        return chat
