"""The request fields vLLM's chat and completions requests share (vLLM 0.32's ``ChatCompletionRequest`` and
``CompletionRequest``: OpenAI's sampling fields, its ``sampling-params`` and ``extra-params`` blocks), and the one
place they become the core's ``SamplingOptions``.

What each field does here is what vLLM 0.32 does with it for gpt-oss:

- passed to the engine as vLLM passes it: the sampling values, ``stop_token_ids``, ``include_stop_str_in_output``,
  ``bad_words``, ``allowed_token_ids``, ``prompt_logprobs``, ``priority`` (lower runs first under a priority
  scheduling policy; the default policy, fcfs, ignores it), ``cache_salt`` (the prefix cache's salt), ``session_id``
  (else ``vllm_xargs["session_id"]``), ``vllm_xargs``, ``kv_transfer_params`` and ``ec_transfer_params`` (vLLM's
  ``extra_args``), ``stream_interval`` (raises the server's, for this request);
- honoured by the route: ``request_id`` (the answer's id), ``return_tokens_as_token_ids``, and for a raw prompt
  ``truncate_prompt_tokens``/``truncation_side`` and ``skip_special_tokens``;
- accepted with no effect, as in vLLM: ``length_penalty`` (read by beam search only: ``to_beam_search_params``),
  ``watermarking`` (applied only on an engine started with a watermark config: ``_check_supports_watermarking``),
  ``spaces_between_special_tokens`` (gpt-oss's byte-level tokenizer writes no space between special tokens),
  ``routed_experts_prompt_start`` (only with ``--enable-return-routed-experts``), ``return_token_offsets``,
  ``mm_payload`` and ``return_mm_kwargs`` (read by the render endpoints only, as vLLM's field docs say);
- refused with vLLM's message: ``thinking_token_budget`` (vLLM's input processor refuses it while the engine has no
  enabled ``reasoning_config``, and gpt-oss's reasoning parser names no reasoning start/end strings to enable one);
- refused, as this server cannot run them: ``use_beam_search``, ``logprob_token_ids``, and an active
  ``repetition_detection`` (its ``finish_reason: "repetition"`` is no finish reason of the core).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routes.shared.openai_request import check_logit_bias, stop_as_list
from server.errors import InvalidRequestError
from server.types import SamplingOptions

INT64 = 2**63 - 1

CACHE_SALT_MAX = 128
CACHE_SALT_FORBIDDEN = frozenset("@/\\\0")

THINKING_BUDGET_MESSAGE = "`thinking_token_budget` must be a non-negative integer or -1 for unlimited."
NO_REASONING_CONFIG = (
    "thinking_token_budget is set but reasoning_config is not configured. Please set --reasoning-parser and/or "
    "--reasoning-config to use thinking_token_budget."
)

XArg = str | int | float | list[str | int | float]


def check_cache_salt(salt: Any) -> None:
    """vLLM's ``validate_cache_salt`` (run on the raw body), with its messages."""
    if salt is None:
        return
    if not isinstance(salt, str) or not salt:
        raise InvalidRequestError("Parameter 'cache_salt' must be a non-empty string if provided.", param="cache_salt")
    if len(salt) > CACHE_SALT_MAX or any(char in CACHE_SALT_FORBIDDEN for char in salt):
        raise InvalidRequestError(
            "Parameter 'cache_salt' must be at most 128 characters and must not contain '@', '/', '\\\\', or NUL.",
            param="cache_salt",
        )


class RepetitionDetectionIn(BaseModel):
    """vLLM's ``RepetitionDetectionParams``."""

    model_config = ConfigDict(extra="forbid")

    max_pattern_size: int = 0
    min_pattern_size: int = 0
    min_count: int = 0

    def check(self) -> None:
        """``RepetitionDetectionParams.__post_init__``, then this server's refusal of an active detection."""
        if self.max_pattern_size < 0 or self.min_pattern_size < 0 or self.min_pattern_size > self.max_pattern_size:
            raise InvalidRequestError(
                "max_pattern_size, min_pattern_size must be >=0, with min_pattern_size <= max_pattern_size. "
                "Set both to 0 to disable repetitive pattern detection."
            )
        if self.max_pattern_size > 0 and self.min_count < 2:
            raise InvalidRequestError(
                "min_count must be >= 2 to detect repetitive patterns in engine output. If you do not wish to "
                "detect repetitive patterns, set max_pattern_size to 0."
            )
        if self.max_pattern_size > 0:
            raise InvalidRequestError(
                "`repetition_detection` is not supported by this server. Set max_pattern_size to 0 or omit it.",
                param="repetition_detection",
            )


class VllmRequestFields(BaseModel):
    """The fields vLLM's chat and completions requests share; unknown fields are ignored, as vLLM does."""

    model_config = ConfigDict(extra="ignore")

    # OpenAI's
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    user: str | None = None  # vLLM ignores it ("NOTE this will be ignored by vLLM")
    # vLLM's sampling params
    use_beam_search: bool = False
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    watermarking: bool | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = Field(default_factory=list, max_length=256)
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0, le=INT64)
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = Field(None, ge=-1, le=INT64)
    truncation_side: Literal["left", "right"] | None = None
    allowed_token_ids: list[int] | None = Field(None, max_length=201088)
    prompt_logprobs: int | None = None
    logprob_token_ids: list[int] | None = Field(None, max_length=1024)
    bad_words: list[str] = Field(default_factory=list, max_length=256)
    # vLLM's extra params
    priority: int = Field(0, ge=-(2**63), le=INT64)
    request_id: str | None = Field(None, max_length=256)
    session_id: str | None = Field(None, max_length=256)
    return_tokens_as_token_ids: bool | None = None
    routed_experts_prompt_start: int = Field(0, ge=0)
    return_token_offsets: bool | None = False
    mm_payload: Literal["tensors", "none"] = "tensors"
    return_mm_kwargs: bool | None = None
    cache_salt: str | None = Field(None, min_length=1, max_length=1024)
    kv_transfer_params: dict[str, Any] | None = None
    ec_transfer_params: dict[str, Any] | None = None
    vllm_xargs: dict[str, XArg] | None = None
    repetition_detection: RepetitionDetectionIn | None = None
    thinking_token_budget: int | None = None
    stream_interval: int | None = Field(None, ge=1)

    _stop_list = field_validator("stop")(stop_as_list)

    _bias = field_validator("logit_bias")(check_logit_bias)

    @field_validator("thinking_token_budget", mode="before")
    @classmethod
    def _thinking_budget(cls, value: Any) -> int | None:
        """vLLM's ``validate_thinking_token_budget``: -1 is unset."""
        if value is None:
            return None
        if isinstance(value, bool | float) or not isinstance(value, int) or value < -1:
            raise InvalidRequestError(THINKING_BUDGET_MESSAGE, param="thinking_token_budget")
        return None if value == -1 else value

    def check_extras(self) -> None:
        """What vLLM refuses for gpt-oss, then what this server cannot run (see the module docstring)."""
        if self.repetition_detection is not None:
            self.repetition_detection.check()
        if self.thinking_token_budget is not None:
            raise InvalidRequestError(NO_REASONING_CONFIG)
        if self.use_beam_search:
            raise InvalidRequestError(
                "This server does not support beam search. Please set `use_beam_search` to False.",
                param="use_beam_search",
            )
        if self.logprob_token_ids:
            raise InvalidRequestError("`logprob_token_ids` is not supported by this server.", param="logprob_token_ids")

    def answer_ids(self, prefix: str, new_id: Callable[[], str]) -> tuple[str, str]:
        """(the answer's id, the core request's id): vLLM's ``{prefix}-{request_id}`` when the body names a
        ``request_id`` (the core's id then gets a random suffix: two requests may name the same id), else
        ``new_id()`` for both."""
        if self.request_id is None:
            answer = new_id()
            return answer, answer
        answer = f"{prefix}-{self.request_id}"
        return answer, f"{answer}-{uuid.uuid4().hex[:8]}"

    @property
    def engine_session_id(self) -> str | None:
        """vLLM's ``_get_session_id``: the body's, else a non-empty string ``vllm_xargs["session_id"]``."""
        if self.session_id:
            return self.session_id
        xarg = (self.vllm_xargs or {}).get("session_id")
        return xarg if isinstance(xarg, str) and xarg else None

    @property
    def extra_args(self) -> dict[str, Any] | None:
        """vLLM's ``extra_args``: ``vllm_xargs`` with ``kv_transfer_params`` and ``ec_transfer_params`` added."""
        extra: dict[str, Any] = dict(self.vllm_xargs or {})
        if self.kv_transfer_params:
            extra["kv_transfer_params"] = self.kv_transfer_params
        if self.ec_transfer_params:
            extra["ec_transfer_params"] = self.ec_transfer_params
        return extra or None

    def sampling_options(
        self, *, max_tokens: int | None, logprobs: bool, top_logprobs: int, prompt_logprobs: int | None
    ) -> SamplingOptions:
        """The core's sampling options from the shared fields; the ones chat and completions read differently
        (the output budget, logprobs) come from the caller."""
        return SamplingOptions(
            max_tokens=max_tokens,
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
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
            stop_token_ids=list(self.stop_token_ids or []),
            include_stop_str_in_output=self.include_stop_str_in_output,
            bad_words=list(self.bad_words),
            allowed_token_ids=self.allowed_token_ids,
            prompt_logprobs=prompt_logprobs,
            priority=self.priority,
            cache_salt=self.cache_salt,
            session_id=self.engine_session_id,
            extra_args=self.extra_args,
            stream_interval=self.stream_interval,
            skip_special_tokens=self.skip_special_tokens,
        )
