"""vLLM's legacy completion request (``POST /v1/completions``: OpenAI's fields plus vLLM's extras) into the core's
``PromptRequest``: the caller's own prompt, with no harmony rendering.

The prompt is a string, a list of strings, token ids or a list of token-id lists (a batch): each prompt is its own
``PromptRequest`` (ids ``{id}-{i}``, as vLLM names them), each run ``n`` times (``server/choices.py``), choice
``i * n + j`` being prompt ``i``'s ``j``-th. ``suffix`` is refused as vLLM refuses it for a model without
fill-in-the-middle rendering (gpt-oss has none). Validation errors carry vLLM's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routes.shared.openai_request import response_format_to_core
from routes.shared.structured import StructuredOutputsIn, engine_constraint, structured_to_core
from routes.shared.vllm_sampling import VllmRequestFields, check_cache_salt
from server.choices import check_greedy
from server.errors import InvalidRequestError
from server.harmony.encoding import VOCAB_SIZE
from server.harmony.plain import full_text
from server.types import PromptRequest

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


class CompletionRequest(VllmRequestFields):
    """vLLM's ``CompletionRequest``: OpenAI's fields and vLLM's extras (``routes/shared/vllm_sampling.py``: the
    fields it shares with the chat request, and what each does). A raw prompt honours ``truncate_prompt_tokens``
    (``truncation_side``: vLLM's default for a generating model is ``left``, keeping the last tokens),
    ``skip_special_tokens``, ``response_format`` and ``structured_outputs`` (the constraint applies from the first
    output token, with no harmony framing, as vLLM applies it to a raw prompt). ``add_special_tokens`` is accepted
    and adds nothing: a text is tokenized with the o200k_harmony encoding, which has no BOS/EOS to add.
    ``prompt_embeds`` is refused as vLLM refuses it on a server started without ``--enable-prompt-embeds``. Unknown
    fields are ignored, as vLLM does."""

    model: str | None = Field(None, max_length=256)
    prompt: list[TokenId] | list[list[TokenId]] | str | list[str] | None = None
    echo: bool | None = False
    logprobs: int | None = None
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    n: int | None = Field(1, ge=1, le=128)
    stream: bool | None = False
    stream_options: CompletionStreamOptions | None = None
    suffix: str | None = None
    return_token_ids: bool | None = None
    # vLLM's completion-only extras
    prompt_embeds: bytes | list[bytes] | None = None
    add_special_tokens: bool = True
    response_format: dict[str, Any] | None = None
    structured_outputs: StructuredOutputsIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _cache_salt(cls, data: Any) -> Any:
        """vLLM's ``check_cache_salt_support``, on the raw body."""
        if isinstance(data, dict):
            check_cache_salt(data.get("cache_salt"))
        return data

    @field_validator("max_tokens")
    @classmethod
    def _null_max_tokens(cls, value: int | None) -> int:
        """``null`` is the default (vLLM's ``normalize_null_max_tokens``)."""
        return DEFAULT_MAX_TOKENS if value is None else value

    def check(self) -> None:
        """vLLM's request checks, in its order, with its messages."""
        embeds = self.prompt_embeds
        if (self.prompt is None or self.prompt == "") and (embeds is None or embeds == []):
            raise InvalidRequestError("Either prompt or prompt_embeds must be provided and non-empty.", param="prompt")
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) and len(prompt) > MAX_PROMPTS:
            raise InvalidRequestError(
                f"prompt list length {len(self.prompt)} exceeds the maximum allowed count of {MAX_PROMPTS}.",
                param="prompt",
            )
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError("Stream options can only be defined when `stream=True`.", param="stream_options")
        self._check_logprob_token_ids()
        check_prompt_logprobs(self.prompt_logprobs, bool(self.stream))
        check_logprobs_count("logprobs", self.logprobs)
        if self.suffix is not None:
            if self.echo:
                raise InvalidRequestError("Echo is unsupported with suffix.", param="suffix")
            if embeds is not None:
                raise InvalidRequestError("suffix is not supported with prompt_embeds", param="suffix")
            if self.truncate_prompt_tokens is not None:
                raise InvalidRequestError("suffix is not supported with truncate_prompt_tokens", param="suffix")
            if isinstance(self.prompt, str) or all(isinstance(p, str) for p in self.prompt):
                raise InvalidRequestError(
                    "suffix is only supported for models with FIM completion rendering", param="suffix"
                )
            raise InvalidRequestError("suffix requires text prompt input for FIM completion rendering", param="suffix")
        if embeds is not None:
            if self.echo:
                raise InvalidRequestError("Echo is unsupported with prompt embeds.")
            raise InvalidRequestError("You must set `--enable-prompt-embeds` to input `prompt_embeds`.")
        if self.max_tokens is not None and self.max_tokens < (0 if self.echo else 1):  # vLLM's SamplingParams
            raise InvalidRequestError(f"max_tokens must be at least 1, got {self.max_tokens}.", param="max_tokens")
        check_greedy(self.choices, self.temperature)
        self.check_extras()
        self.constraint()

    def _check_logprob_token_ids(self) -> None:
        """vLLM's ``check_logprobs`` on ``logprob_token_ids``, in its order, with its messages."""
        if not self.logprob_token_ids:
            return
        if self.use_beam_search:
            raise InvalidRequestError(
                "`logprob_token_ids` is not supported with beam search.", param="logprob_token_ids"
            )
        if self.echo and self.max_tokens == 0:
            raise InvalidRequestError(
                "`logprob_token_ids` is not supported when `echo=True` and `max_tokens=0` because no output tokens "
                "are generated.",
                param="logprob_token_ids",
            )
        if self.logprobs is None:
            raise InvalidRequestError(
                "when using `logprob_token_ids`, `logprobs` must be set.", param="logprob_token_ids"
            )

    def constraint(self) -> dict[str, object] | None:
        """``structured_outputs`` with ``response_format`` over it (vLLM's ``structured_outputs_from_response_format``)
        as the engine's constraint on the raw output; None when the output is free."""
        if self.structured_outputs is None and self.response_format is None:
            return None
        so = self.structured_outputs
        if so is not None:
            if sum(v is not None for v in (so.json_, so.regex, so.choice)) > 1:  # vLLM names the field here
                raise InvalidRequestError(
                    "You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice').",
                    param="structured_outputs",
                )
            fmt = structured_to_core(so, self.response_format, "none")
        else:
            fmt = response_format_to_core(self.response_format)
        return engine_constraint(fmt)

    @property
    def choices(self) -> int:
        """``n``: the choices of each prompt (null is the default, 1)."""
        return self.n or 1

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

    def to_core(self, request_id: str, *, harmony_output: bool = False) -> list[PromptRequest]:
        """One core request per prompt of the batch, ids ``{request_id}-{i}`` (``check`` first). ``harmony_output``:
        the output is decoded as a harmony turn (a route's setting; vLLM decodes plain text)."""
        sampling = self.sampling_options(
            max_tokens=1 if self.echo_only else self.max_tokens,
            logprobs=self.logprobs is not None,
            top_logprobs=self.logprobs or 0,
            # echoed prompt tokens get logprobs too (vLLM asks the engine for them)
            prompt_logprobs=self.engine_prompt_logprobs,
        )
        constraint = self.constraint()
        return [
            PromptRequest(
                prompt=prompt,
                sampling=sampling,
                harmony_output=harmony_output,
                request_id=f"{request_id}-{i}",
                truncate_prompt_tokens=self.truncate_prompt_tokens,
                truncation_side=self.truncation_side or "left",
                constraint=constraint,
            )
            for i, prompt in enumerate(self.prompts())
        ]


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    """What the answer's shape depends on, besides the result."""

    echo: list[str] | None  # per prompt, its text to put before each of its answers (``echo``)
    echo_only: bool  # ``echo`` with ``max_tokens=0``: the prompt alone
    logprobs: int | None
    return_token_ids: bool
    tokens_as_ids: bool
    include_usage: bool = False
    continuous_usage: bool = False
    n: int = 1  # choices per prompt: choice ``i`` answers prompt ``i // n``
    reasoning: bool = False  # harmony-decoded output: the answer is ``text``, the reasoning its own key

    def echo_of(self, choice: int) -> str | None:
        return None if self.echo is None else self.echo[choice // self.n]


def options_of(
    body: CompletionRequest, prompt_token_ids: list[list[int]], *, reasoning: bool = False
) -> CompletionOptions:
    """The answer's options; each echoed text is its prompt as sent (token ids decoded, special tokens spelled
    out), and empty with ``return_token_ids`` (as vLLM does)."""
    echo = None
    if body.echo:
        echo = [
            "" if body.return_token_ids else (prompt if isinstance(prompt, str) else full_text(prompt))
            for prompt in body.prompts()
        ]
    stream = body.stream_options
    return CompletionOptions(
        echo=echo,
        echo_only=body.echo_only,
        logprobs=body.logprobs,
        return_token_ids=bool(body.return_token_ids),
        tokens_as_ids=bool(body.return_tokens_as_token_ids),
        include_usage=bool(stream and stream.include_usage),
        continuous_usage=bool(stream and stream.continuous_usage_stats),
        n=body.choices,
        reasoning=reasoning,
    )
