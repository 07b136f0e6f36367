"""Neutral core types: what every provider route translates to and from.

Nothing here knows a provider's JSON, the web framework or vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from server.errors import EngineUnavailableError, InternalError, ServerError

Role = Literal["system", "developer", "user", "assistant", "tool"]
ReasoningEffort = Literal["low", "medium", "high"]
FinishReason = Literal["stop", "length", "tool_calls", "abort", "error"]


@dataclass(slots=True)
class ToolCall:
    """A function call made by the assistant (``arguments`` is the JSON text the model wrote)."""

    id: str
    name: str
    arguments: str
    namespace: str | None = None  # a tool of a named group (None: the plain ``functions`` namespace)


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    # a named group of tools (harmony renders each group as its own tool namespace); None: ``functions``
    namespace: str | None = None
    namespace_description: str | None = None

    @property
    def recipient(self) -> str:
        """The harmony recipient the model addresses a call to: ``functions.NAME`` or ``NAMESPACE.NAME``."""
        return f"{self.namespace or 'functions'}.{self.name}"


@dataclass(slots=True)
class ToolChoice:
    """``none`` | ``auto`` | ``required`` | ``function`` (then ``name`` is set)."""

    mode: Literal["none", "auto", "required", "function"] = "auto"
    name: str | None = None


ConstraintKind = Literal["text", "json_object", "json_schema", "regex", "choice", "grammar", "structural_tag"]


@dataclass(slots=True)
class OutputConstraint:
    """What the answer must match (``text``: nothing). One kind per request, each with its own field:

    ``json_object`` any JSON object; ``json_schema`` ``schema`` (``name``, ``strict`` as the client sent them);
    ``regex`` ``pattern``; ``choice`` one of ``choices`` exactly; ``grammar`` ``grammar``, EBNF text in the engine's
    dialect (xgrammar's, which reads most of llama.cpp's GBNF) or, as vLLM reads a grammar without any ``::=`` rule,
    Lark; ``structural_tag`` ``tag``, a client's xgrammar structural tag (JSON text: ``{"type": "structural_tag",
    "format": ...}`` or the legacy ``structures`` and ``triggers``) whose format the final answer must match, and
    ``param``, the request field it came from (vLLM names it when it refuses the tag).
    """

    type: ConstraintKind = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool = False
    pattern: str | None = None
    choices: list[str] | None = None
    grammar: str | None = None
    tag: str | None = None
    param: str | None = None


# The name the routes' ``response_format`` parsing uses for the same type.
ResponseFormat = OutputConstraint


@dataclass(slots=True)
class SamplingOptions:
    """Sampling and limits; ``None`` means the engine's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: dict[int, float] | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False
    min_tokens: int = 0
    # token ids that end the answer besides harmony's own stop tokens (vLLM's ``stop_token_ids``)
    stop_token_ids: list[int] = field(default_factory=list)
    # a stop string that ended the answer stays in it (vLLM's ``include_stop_str_in_output``)
    include_stop_str_in_output: bool = False
    # words the engine must not generate, and the only token ids it may (vLLM's ``bad_words``/``allowed_token_ids``)
    bad_words: list[str] = field(default_factory=list)
    allowed_token_ids: list[int] | None = None
    # logprobs of each prompt token and its ``prompt_logprobs`` most likely alternatives (None: not asked)
    prompt_logprobs: int | None = None
    # engine-side request options (vLLM's): the scheduling priority (lower first), the prefix cache's salt, extra
    # arguments for engine extensions (vLLM's ``extra_args``: ``vllm_xargs``, ``kv_transfer_params``, ...)
    priority: int = 0
    cache_salt: str | None = None
    session_id: str | None = None  # a conversation's stable id (vLLM tags its KV-cache events with it)
    extra_args: dict[str, Any] | None = None
    # engine steps per streamed delta for this request, raising the server's ``stream_interval`` (never lowering it)
    stream_interval: int | None = None
    # a raw prompt's plain-text output leaves control tokens out (False: they are spelled out, ``<|channel|>``)
    skip_special_tokens: bool = True


@dataclass(slots=True)
class ChatRequest:
    messages: list[ChatMessage]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    reasoning_effort: ReasoningEffort | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    response_format: OutputConstraint = field(default_factory=OutputConstraint)
    request_id: str | None = None
    include_reasoning: bool = True  # False: the answer carries no reasoning text (vLLM's ``include_reasoning``)
    # the prompt already rendered (a disaggregated prefill's ids, vLLM's ``kv_transfer_params["prompt_token_ids"]``):
    # it runs as given instead of the messages' rendering
    prompt_token_ids: list[int] | None = None


@dataclass(slots=True)
class PromptRequest:
    """A raw prompt that the caller formatted itself: no harmony rendering.

    ``prompt`` is text (tokenized as it is: special-token text such as ``<|start|>`` becomes that control token, as
    the model's own tokenizer reads it) or token ids. The output is plain text unless ``harmony_output``, which
    decodes it as a harmony turn (reasoning and answer apart)."""

    prompt: str | list[int]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    harmony_output: bool = False
    request_id: str | None = None
    # keep this many prompt tokens (-1: as many as the context allows, less one for the output), from the end
    # (``left``, vLLM's default for a generating model) or from the start (``right``); None: the whole prompt
    truncate_prompt_tokens: int | None = None
    truncation_side: Literal["left", "right"] = "left"
    # what the output must match from its first token, as the engine takes it (``GenerationRequest.constraint``)
    constraint: dict[str, object] | None = None


@dataclass(slots=True)
class RankedLogprob:
    """A token's logprob and its rank in the vocabulary (1: the most likely)."""

    token_id: int
    logprob: float
    rank: int | None = None


# Per prompt token: the token itself, then its most likely alternatives; None for the first token (nothing precedes it)
PromptLogprobs = list[list[RankedLogprob] | None]


@dataclass(slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the engine's prefix cache

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Timings:
    """Wall-clock facts of one request, in seconds since the epoch (``time.time()``)."""

    start: float
    first_token: float | None = None
    end: float | None = None

    @property
    def prompt_ms(self) -> float:
        return ((self.first_token or self.end or self.start) - self.start) * 1000.0

    @property
    def predicted_ms(self) -> float:
        first = self.first_token or self.end or self.start
        return ((self.end or first) - first) * 1000.0


# ---- stream events --------------------------------------------------------------------------------


@dataclass(slots=True)
class ToolCallDelta:
    """Part of a tool call: the first delta of a call carries ``id`` and ``name``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    namespace: str | None = None  # with ``name``, on the first delta of a call to a tool of a named group


@dataclass(slots=True)
class Delta:
    """What one engine step added: reasoning text, answer text, tool-call parts, tokens."""

    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    prompt_logprobs: PromptLogprobs | None = None  # on the first delta, when asked


@dataclass(slots=True)
class Finish:
    """The last event of every stream."""

    reason: FinishReason
    usage: Usage
    timings: Timings
    stop_reason: int | str | None = None
    error: str | None = None
    # what the engine's KV connector returned for this request (vLLM's ``kv_transfer_params``; None without one)
    kv_transfer_params: dict[str, Any] | None = None
    # the typed error behind ``reason == "error"`` (a non-streaming answer re-raises it: 400, 503, 500...), or
    # why the server aborted the answer (``reason == "abort"``: drain, deadline)
    exception: Exception | None = None

    @property
    def truncated(self) -> bool:
        """The answer was cut short (an error, or an abort): never to be reported as a normal stop or length."""
        return self.reason in ("error", "abort")

    def error_of(self, default: type[ServerError] = InternalError) -> ServerError:
        """The typed error of a truncated answer; ``default`` (with ``error``'s text) when none was recorded."""
        if isinstance(self.exception, ServerError):
            return self.exception
        if self.reason == "abort":
            return EngineUnavailableError(self.error or "The answer was cut short.")
        return default(self.error or "Generation failed.")


Event = Delta | Finish


@dataclass(slots=True)
class ChatResult:
    """The fold of a stream: what a non-streaming response is built from."""

    content: str | None
    reasoning: str | None
    tool_calls: list[ToolCall]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    stop_reason: int | str | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    prompt_logprobs: PromptLogprobs | None = None
    kv_transfer_params: dict[str, Any] | None = None
