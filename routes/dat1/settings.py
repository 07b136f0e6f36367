"""``providers.dat1``: identity strings, and a switch for every behaviour the wire spec leaves open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "dat1"


class Dat1Settings(ProviderSection):
    """dat1.co: llama.cpp's llama-server behind dat1's gateway (wire spec section 1)."""

    # POST /api/v1/collection/<collection>/invoke-chat (X-API-Key; the body names no model).
    collection: str = Field("gpt-120-oss", pattern=r"^[A-Za-z0-9._-]+$")
    # POST /api/v1/collection/open-ai/chat/completions (Bearer; OpenAI SDK) and the `model` names it accepts.
    # Empty (default): any name, as llama-server ignores `model` (dat1's docs name "gpt-120-oss", llama.cpp's
    # examples send others); INFERRED whether dat1's gateway refuses other names (list them to answer 404).
    openai_route: bool = True
    openai_models: list[str] = Field(default_factory=list)
    # Echoed `model` when the body names none: llama-server's DEFAULT_OAICOMPAT_MODEL, as in dat1's docs.
    model_name: str = "gpt-3.5-turbo"
    # Aug-2025 llama-server echoes the request's `model` (a string); newer builds always report model_name.
    echo_request_model: bool = True
    # "b<build>-<commit>"; the docs example's value.
    system_fingerprint: str = "b5466-9ecf3e66"
    # llama.cpp build era (UNKNOWN which dat1 runs). A (Aug 2025, default): the finish chunk carries usage and
    # timings; errors mid-stream are `error: {...}` then [DONE]. B: finish chunk, then an always-sent
    # `choices: []` usage chunk; timings gain `cache_n`. C: the usage chunk only with
    # stream_options.include_usage, usage gains prompt_tokens_details, max_completion_tokens is read, a context
    # overflow is `exceed_context_size_error`, and errors mid-stream are `data: {"error": ...}` without [DONE].
    stream_era: Literal["A", "B", "C"] = "A"
    # INFERRED: dat1's FastAPI wrapper re-emits every event as `event: message` + `data: ...`.
    sse_event_lines: bool = False
    # The server's --reasoning-format: "auto" puts the analysis channel in `reasoning_content`; "none" leaves
    # it in `content` as raw harmony text. A request's `reasoning_format` overrides it, as in llama-server.
    reasoning_format: Literal["auto", "none"] = "auto"
    # The documented build reads reasoning effort only from chat_template_kwargs.reasoning_effort; newer
    # builds also read a top-level `reasoning_effort`.
    top_level_reasoning_effort: bool = False
    # The Aug-2025 build answers errors found while parsing the chat body (invalid JSON, messages, n != 1,
    # top_logprobs, response_format, tools) with 500 server_error; the spec's table and newer builds say 400.
    parse_errors_as_server_error: bool = False
    # `n` (UNKNOWN which dat1 runs). Off: the documented Aug-2025 build refuses n != 1 ("Only one completion choice
    # is allowed"). On: builds since Jan 2026 read `n` as an alias of `n_cmpl` (which wins): that many choices, each
    # its own slot, sampled with seed + i; more than n_parallel is a 400. The answer is choice 0's body with every
    # choice in `choices` (usage and timings stay choice 0's, as llama-server merges them); a stream carries each
    # choice's chunks and its own final chunk(s), then one [DONE].
    n_cmpl: bool = False
    # llama-server's --parallel (its slots; the newer builds' default -1 means 4), the bound on n with n_cmpl.
    n_parallel: int = Field(4, ge=1, le=1024)
    # UNKNOWN whether `timings` also appear on the open-ai route (the same llama-server answers it).
    openai_route_timings: bool = True
    # llama-server's sampling defaults, used where the request omits a value (or sends a wrong type).
    temperature: float = Field(0.8, ge=0, le=2)
    top_k: int = Field(40, ge=-1)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.05, ge=0, le=1)


def section(ctx: ServerContext) -> Dat1Settings:
    return section_of(ctx, NAME, Dat1Settings)
