"""vLLM's legacy completion request (``POST /v1/completions``: OpenAI's fields plus vLLM's extras) into the core's
``PromptRequest``: the caller's own prompt, with no harmony rendering.

The prompt is a string, a list of strings, token ids or a list of token-id lists (a batch); this server answers one
prompt and one choice per request. ``suffix`` is refused as vLLM refuses it for a model without fill-in-the-middle
rendering (gpt-oss has none). Validation errors carry vLLM's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routes.shared.openai_request import check_logit_bias, stop_as_list
from server.errors import InvalidRequestError
from server.harmony.encoding import VOCAB_SIZE
from server.harmony.plain import full_text
from server.types import PromptRequest, SamplingOptions

INT64 = 2**63 - 1
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
MAX_PROMPTS = 1024  # VLLM_MAX_COMPLETION_PROMPTS
DEFAULT_MAX_TOKENS = 16  # vLLM's (and OpenAI's) default for completions

TokenId = Annotated[int, Field(ge=0)]


def check_prompt_logprobs(value: int | None, stream: bool) -> None:
    """vLLM's checks of ``prompt_logprobs`` (chat and completions alike): not streamed, within ``MAX_LOGPROBS``."""
    if value is not None and stream and (value > 0 or value == -1):
        raise InvalidRequestError("`prompt_logprobs` are not available when `stream=True`.", param="prompt_logprobs")
    check_logprobs_count("prompt_logprobs", value)


def check_logprobs_count(name: str, value: int | None) -> None:
    """A positive count or -1 (the whole vocabulary), within ``MAX_LOGPROBS``; vLLM's messages."""
    if value is None:
        return
    if value < 0 and value != -1:
        raise InvalidRequestError(f"`{name}` must be a positive value or -1.", param=name)
    count = VOCAB_SIZE if value == -1 else value
    if count > MAX_LOGPROBS:
        kind = "prompt" if name == "prompt_logprobs" else "sample"
        raise InvalidRequestError(
            f"Requested {kind} logprobs of {count}, which is greater than max allowed: {MAX_LOGPROBS}", param=name
        )


class CompletionStreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class CompletionRequest(BaseModel):
    """vLLM's ``CompletionRequest``, the fields this server runs; unknown fields are ignored, as vLLM does."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=256)
    prompt: list[TokenId] | list[list[TokenId]] | str | list[str] | None = None
    echo: bool | None = False
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    logprobs: int | None = None
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    n: int | None = Field(1, ge=1, le=128)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: CompletionStreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    user: str | None = None
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0, le=INT64)
    prompt_logprobs: int | None = None
    return_token_ids: bool | None = None
    return_tokens_as_token_ids: bool | None = None

    _stop_list = field_validator("stop")(stop_as_list)

    _bias = field_validator("logit_bias")(check_logit_bias)

    @field_validator("max_tokens")
    @classmethod
    def _null_max_tokens(cls, value: int | None) -> int:
        """``null`` is the default (vLLM's ``normalize_null_max_tokens``)."""
        return DEFAULT_MAX_TOKENS if value is None else value

    def check(self) -> None:
        """vLLM's request checks, in its order, with its messages."""
        if self.prompt is None or self.prompt == "":
            raise InvalidRequestError("Either prompt or prompt_embeds must be provided and non-empty.", param="prompt")
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) > MAX_PROMPTS:
            raise InvalidRequestError(
                f"prompt list length {len(self.prompt)} exceeds the maximum allowed count of {MAX_PROMPTS}.",
                param="prompt",
            )
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError("Stream options can only be defined when `stream=True`.", param="stream_options")
        check_prompt_logprobs(self.prompt_logprobs, bool(self.stream))
        check_logprobs_count("logprobs", self.logprobs)
        if self.suffix is not None:
            if self.echo:
                raise InvalidRequestError("Echo is unsupported with suffix.", param="suffix")
            if isinstance(self.prompt, str) or all(isinstance(p, str) for p in self.prompt):
                raise InvalidRequestError(
                    "suffix is only supported for models with FIM completion rendering", param="suffix"
                )
            raise InvalidRequestError("suffix requires text prompt input for FIM completion rendering", param="suffix")
        if self.n not in (None, 1):
            raise InvalidRequestError("Only n=1 is supported.", param="n")
        if len(self.prompts()) > 1:
            raise InvalidRequestError(
                "This server answers one prompt per request; send the prompts of a batch as separate requests.",
                param="prompt",
            )
        if self.max_tokens is not None and self.max_tokens < (0 if self.echo else 1):  # vLLM's SamplingParams
            raise InvalidRequestError(f"max_tokens must be at least 1, got {self.max_tokens}.", param="max_tokens")

    def prompts(self) -> list[str | list[int]]:
        """The batch: each prompt as text or token ids."""
        prompt = self.prompt
        if prompt is None or isinstance(prompt, str):
            return [prompt or ""]
        if not prompt or isinstance(prompt[0], int):
            return [prompt]  # type: ignore[list-item]
        return list(prompt)  # type: ignore[arg-type]

    @property
    def engine_prompt_logprobs(self) -> int | None:
        """What the engine is asked for: ``prompt_logprobs``, else with ``echo`` the ``logprobs`` (as vLLM does)."""
        if self.prompt_logprobs is None and self.echo:
            return self.logprobs
        return self.prompt_logprobs

    @property
    def echo_only(self) -> bool:
        """``echo`` with ``max_tokens=0``: the answer is the prompt (vLLM still runs one token, and counts it)."""
        return bool(self.echo) and self.max_tokens == 0

    def to_core(self, request_id: str) -> PromptRequest:
        """The one prompt of this request (``check`` first)."""
        (prompt,) = self.prompts()
        sampling = SamplingOptions(
            max_tokens=1 if self.echo_only else self.max_tokens,
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
            logprobs=self.logprobs is not None,
            top_logprobs=self.logprobs or 0,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
            # echoed prompt tokens get logprobs too (vLLM asks the engine for them)
            prompt_logprobs=self.prompt_logprobs
            if self.prompt_logprobs is not None or not self.echo
            else self.logprobs,
        )
        return PromptRequest(prompt=prompt, sampling=sampling, request_id=request_id)


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    """What the answer's shape depends on, besides the result."""

    echo: str | None  # the prompt's text to put before the answer (``echo``)
    echo_only: bool  # ``echo`` with ``max_tokens=0``: the prompt alone
    logprobs: int | None
    return_token_ids: bool
    tokens_as_ids: bool
    include_usage: bool = False
    continuous_usage: bool = False


def options_of(body: CompletionRequest, prompt_token_ids: list[int]) -> CompletionOptions:
    """The answer's options; the echoed text is the prompt as sent (token ids decoded, special tokens spelled out)."""
    (prompt,) = body.prompts()
    echo = None
    if body.echo:
        echo = "" if body.return_token_ids else (prompt if isinstance(prompt, str) else full_text(prompt_token_ids))
    stream = body.stream_options
    return CompletionOptions(
        echo=echo,
        echo_only=body.echo_only,
        logprobs=body.logprobs,
        return_token_ids=bool(body.return_token_ids),
        tokens_as_ids=bool(body.return_tokens_as_token_ids),
        include_usage=bool(stream and stream.include_usage),
        continuous_usage=bool(stream and stream.continuous_usage_stats),
    )
