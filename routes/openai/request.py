"""vLLM's chat request (OpenAI's fields plus vLLM's extras) into the core's ``ChatRequest``.

The E2E route (vLLM behind a gateway) uses the same model. vLLM's own checks (``routes/openai/checks.py``) run on the
raw body first, with vLLM's messages; a message's role may be any string, as in vLLM, and one harmony cannot render
is refused as vLLM's harmony path refuses it. ``structured_outputs`` (vLLM's ``StructuredOutputsParams``) is refused
and combined with ``response_format`` as vLLM does, with vLLM's messages (``routes/shared/structured.py``); the
``guided_*`` fields vLLM removed are ignored with the warning vLLM logs. The fields shared with the completions request
are ``routes/shared/vllm_sampling.py``'s; ``ChatCompletionRequest``'s docstring says what the chat-only ones do.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routes.openai.checks import check_body, check_role
from routes.shared.completion_request import check_prompt_logprobs
from routes.shared.openai_request import (
    MessageIn,
    NamedToolChoice,
    ToolDef,
    chat_to_core,
)
from routes.shared.structured import StructuredOutputsIn, is_structural_tag, structured_to_core
from routes.shared.vllm_response import ChatOptions
from routes.shared.vllm_sampling import VllmRequestFields
from server.choices import check_greedy
from server.errors import InvalidRequestError
from server.types import ChatRequest, ReasoningEffort

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


HARMONY_EFFORTS = ("high", "medium", "low")  # vLLM's REASONING_EFFORT, in its order


def check_reasoning_effort(effort: str | None) -> ReasoningEffort | None:
    """vLLM's harmony path: ``none`` is refused, as is any effort harmony has no level for (its messages)."""
    if effort is None or effort in HARMONY_EFFORTS:
        return effort  # type: ignore[return-value]
    if effort == "none":
        raise InvalidRequestError(f"Harmony does not support reasoning_effort={effort!r}", param="reasoning_effort")
    raise InvalidRequestError(
        f"reasoning_effort={effort!r} is not supported by Harmony. Supported values are: {', '.join(HARMONY_EFFORTS)}.",
        param="reasoning_effort",
    )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class VllmMessageIn(MessageIn):
    """vLLM's message: any role (its custom message type), checked against harmony's roles in ``to_core``."""

    role: str = Field(max_length=256)  # type: ignore[assignment]


class ChatCompletionRequest(VllmRequestFields):
    """OpenAI's chat request with vLLM's extras (``routes/shared/vllm_sampling.py``: the fields it shares with the
    completions request, and what each does).

    The chat-only fields vLLM's harmony render path reads are honoured; the ones it never reads for gpt-oss are
    accepted and ignored as vLLM ignores them: its ``OnlineRenderer.render_chat`` sends a gpt-oss request to
    ``_make_request_with_harmony``, which reads only the messages, tools, ``reasoning_effort``, ``cache_salt``,
    ``kv_transfer_params`` (whose ``prompt_token_ids``, when given, run as the prompt: ``reused_prompt_token_ids``) and
    ``echo``: not ``chat_template``, ``chat_template_kwargs`` (nor the request-template
    check, which runs on the other branch only), ``documents``, ``add_generation_prompt``, ``continue_final_message``
    (both only checked against each other), ``add_special_tokens``, ``media_io_kwargs``, ``mm_processor_kwargs``,
    nor ``truncate_prompt_tokens``/``truncation_side`` (the chat request's ``build_tok_params`` is never called on
    that path: the harmony prompt goes to the engine whole). ``skip_special_tokens`` and
    ``spaces_between_special_tokens`` change nothing either: the harmony parser reads the output's token ids, not
    its text. ``echo`` prepends the last message's content when it is the assistant's, but vLLM looks it up with
    ``"content" in conversation[-1]``, and on the harmony path that entry is an ``openai_harmony.Message`` (a
    pydantic model, whose iteration yields (name, value) pairs), so nothing is prepended: all ``echo`` does is write
    a missing answer text as ``""`` (``last_msg_content + (choice.message.content or "")``, non-streaming only).
    ``return_prompt_text`` answers ``prompt_text: null``, as vLLM's harmony prompt is token ids with no text.

    Unknown fields are ignored, as vLLM and OpenAI do.
    """

    messages: list[VllmMessageIn] = Field(min_length=1, max_length=4096)
    model: str | None = Field(None, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    n: int | None = Field(1, ge=1, le=128)  # null (OpenAI's spec and vLLM allow it): the default
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    structured_outputs: StructuredOutputsIn | None = None
    include_reasoning: bool = True
    return_token_ids: bool = False
    # vLLM's chat-only extras (see the class docstring)
    echo: bool = False
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    documents: list[dict[str, str]] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    media_io_kwargs: dict[str, dict[str, Any]] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    return_prompt_text: bool | None = None

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

    def chat_options(self, tool_choice: str) -> ChatOptions:
        """The answer's shape; ``tool_choice`` is the core request's mode."""
        return ChatOptions(
            return_token_ids=self.return_token_ids,
            tool_choice=tool_choice,
            tokens_as_ids=bool(self.return_tokens_as_token_ids),
            echo=self.echo,
        )

    def to_core(self, request_id: str) -> ChatRequest:
        check_greedy(self.choices, self.temperature)
        for message in self.messages:
            check_role(message.role)
        check_prompt_logprobs(self.prompt_logprobs, bool(self.stream))
        self.check_extras()
        reused = self.reused_prompt_token_ids()
        # reused ids skip the rendering, and vLLM's harmony effort check with it
        effort = check_reasoning_effort(self.reasoning_effort) if reused is None else None
        sampling = self.sampling_options(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            logprobs=bool(self.logprobs),
            top_logprobs=self.top_logprobs or 0,
            prompt_logprobs=self.prompt_logprobs,
        )
        chat = chat_to_core(
            messages=self.messages,  # type: ignore[arg-type]
            sampling=sampling,
            reasoning_effort=effort,
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
        chat.prompt_token_ids = reused
        return chat

    def reused_prompt_token_ids(self) -> list[int] | None:
        """vLLM's ``_reused_prompt_token_ids``: ``kv_transfer_params["prompt_token_ids"]`` (a disaggregated
        prefill's ids) is taken out of ``kv_transfer_params`` and runs as the prompt instead of the messages, unless
        ``echo`` is set; checked as vLLM checks it."""
        kv = self.kv_transfer_params
        if not isinstance(kv, dict) or (ids := kv.pop("prompt_token_ids", None)) is None or self.echo:
            return None
        if not isinstance(ids, list) or not ids or any(type(x) is not int or x < 0 for x in ids):
            raise InvalidRequestError(
                "`kv_transfer_params['prompt_token_ids']` must be a non-empty list of non-negative integers.",
                param="kv_transfer_params.prompt_token_ids",
            )
        return ids
