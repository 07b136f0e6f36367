"""One settings tree, filled from (lowest to highest priority) defaults, a YAML file, environment
variables (``GPTOSS_`` prefix, ``__`` between levels, e.g. ``GPTOSS_SERVER__PORT=9000``) and CLI flags.

Secrets never live in YAML: the YAML names the environment variable or file that holds API keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import yaml
from pydantic import Field, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from server.errors import ConfigError
from server.faults.plan import FaultRule, check_plan
from server.section import ProviderSection, Section

if TYPE_CHECKING:
    from routes.provider import Provider

# The profiles ship inside the package: server/configs (in a checkout, a link to the top-level configs/ folder).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Seconds to let in-flight requests finish on shutdown before they are aborted.
    drain_timeout_s: float = Field(30.0, ge=0)
    # Run as a small supervising parent that owns the process tree (server/supervisor.py): nothing is left behind
    # however the server ends. Off: the server runs in the calling process (its engine processes are its children).
    supervise: bool = True
    # When the engine fails to start or dies, fail in-flight requests and exit non-zero (an orchestrator restarts
    # the service). Off: stay up with /health at 503.
    exit_on_engine_failure: bool = True
    # API server processes on the one port (server/multiproc.py): with vLLM, N engine clients of one set of engine
    # cores, as `vllm serve --api-server-count N`; with the scripted engine, N processes with an engine each.
    api_processes: int = Field(1, ge=1, le=64)
    # Serve FastAPI's interactive docs (/docs, /redoc) and its OpenAPI document (/openapi.json).
    docs: bool = False
    # One line per request (logger "server.requests"): key=value text or one JSON object. Probes are not logged
    # unless log_probes.
    log_format: Literal["text", "json"] = "text"
    log_probes: bool = False
    # GET /metrics without a key (as vLLM serves it); off: any API key as a Bearer token.
    metrics_public: bool = True
    # HTTP limits at the socket (server/http/protocol.py); refusals are plain text and close the connection.
    # Largest request head (request line and headers) in bytes: past it, 431 without reading the rest.
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Most header fields in one request: past it, 431.
    max_headers: int = Field(100, ge=8, le=10_000)
    # Seconds to send a complete request head, from connecting (or from the first byte of a later request on a
    # kept-alive connection): then 408 and close (a connection that sent nothing is just closed).
    header_timeout_s: float = Field(10.0, gt=0)
    # Seconds for a request body to arrive completely after its head: then 408 and close.
    body_timeout_s: float = Field(60.0, gt=0)
    # Seconds an idle kept-alive connection stays open between requests.
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    # Open connections at once; one more is answered 503 and closed. The open-file limit is raised to fit.
    max_connections: int = Field(1024, ge=1)
    # Browser origins allowed to call the API (CORS), e.g. ["https://app.example.com"]; "*" allows any.
    # Empty (the default): no CORS headers, so browsers refuse cross-origin reads and preflights fail.
    cors_allow_origins: list[str] = Field(default_factory=list)


class ScriptToolCall(Section):
    """One tool call of a scripted turn: ``name`` (``NAMESPACE.NAME`` for a tool of a named group) and its
    arguments (a mapping is written as compact JSON, a string as it is)."""

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = Field(default_factory=dict)

    @property
    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


class ScriptRule(Section):
    """One scripted assistant turn, and when it applies.

    The turn is either ``text`` (harmony completion text, as the model would write it after ``<|start|>assistant``)
    or high-level parts, rendered with the harmony encoding: ``reasoning`` (the analysis channel), ``content`` (the
    final answer; with tool calls, the commentary preamble said before them) and ``tool_calls``.

    It applies when every condition given holds (none: always): ``match``, a regex searched in the last user
    message; ``turn``, the number of user messages in the conversation so far (1 for the first request); and
    ``tool_output``, a regex searched in the tool result the prompt ends with (the prompt must end with one). A tool
    loop's next turn (call, result, answer) is scripted by a second rule with the same ``match`` or ``turn`` and a
    ``tool_output``, listed first."""

    match: str | None = None
    turn: int | None = Field(None, ge=1)
    tool_output: str | None = None
    text: str | None = None
    reasoning: str | None = None
    content: str | None = None
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_form(self) -> ScriptRule:
        parts = self.reasoning is not None or self.content is not None or bool(self.tool_calls)
        if (self.text is None) == (not parts):
            raise ValueError("a script rule holds either harmony `text` or reasoning/content/tool_calls, not both")
        return self


class ScriptedSettings(Section):
    # echo: answer with the last user message; replay: the first rule that matches (else echo); recording: the
    # token streams of a recording folder (``recording_dir``, made by ``serve --record``), by request hash.
    mode: Literal["echo", "replay", "recording"] = "echo"
    rules: list[ScriptRule] = Field(default_factory=list)
    # YAML or JSON file with a list of rules (or a mapping with a ``rules`` list), appended to ``rules``.
    rules_file: Path | None = None
    recording_dir: Path | None = None
    token_delay_s: float = Field(0.0, ge=0, le=10)
    # Report prompt tokens shared with earlier prompts (whole 16-token blocks) as cached, as a prefix cache would.
    prefix_cache: bool = False
    max_model_len: int = Field(131072, ge=16)

    @model_validator(mode="after")
    def _recording_named(self) -> ScriptedSettings:
        if self.mode == "recording" and self.recording_dir is None:
            raise ValueError("engine.scripted.mode `recording` needs engine.scripted.recording_dir")
        return self


class VllmSettings(Section):
    # A local folder or hub id. None: the tiny random-weight gpt-oss checkpoint, built on first use.
    model: str | None = None
    tiny_seed: int = 0
    tokenizer: str | None = None
    max_model_len: int | None = 4096
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # CPU backend only: KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE).
    cpu_kvcache_space_gib: float | None = None
    enforce_eager: bool = False
    load_format: str = "auto"
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    async_scheduling: bool | None = None
    # None: vLLM's default (on). vLLM's gpt-oss recipe turns it off only to benchmark on synthetic prompts.
    enable_prefix_caching: bool | None = None
    # Largest batch captured as a CUDA graph (vLLM's --max-cudagraph-capture-size); None: vLLM's default.
    max_cudagraph_capture_size: int | None = Field(None, ge=1)
    # vLLM's --stream-interval: the engine hands over a request's tokens every N tokens (the first at once). Larger
    # values cut the API process's work per token; 1 streams every token.
    stream_interval: int | None = Field(None, ge=1)
    # vLLM's --kv-cache-dtype ("auto", "fp8", ...); None: vLLM's default.
    kv_cache_dtype: str | None = None
    # vLLM's data parallelism: this many engine cores, each a whole copy of the model, behind one AsyncLLM.
    data_parallel_size: int = Field(1, ge=1)
    # Environment variables for vLLM and its processes (kernel switches such as VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8),
    # set before vLLM is imported unless the environment already sets them.
    env: dict[str, str] = Field(default_factory=dict)
    # vLLM's stat logging, which fills its Prometheus metrics (served on /metrics).
    log_stats: bool = True
    # Seconds vLLM gives its engine core and workers to stop at shutdown before it kills them.
    shutdown_timeout_s: float = Field(2.0, ge=0)
    # The JSON grammar may not insert free whitespace (keeps small models from looping on spaces).
    structured_outputs_disable_any_whitespace: bool = True
    # Anything else AsyncEngineArgs accepts.
    extra_args: dict[str, Any] = Field(default_factory=dict)


class EngineSettings(Section):
    kind: Literal["vllm", "scripted"] = "vllm"
    # The model name the server reports and accepts on its OpenAI-compatible route.
    served_model_name: str = "gpt-oss-120b"
    vllm: VllmSettings = Field(default_factory=VllmSettings)
    scripted: ScriptedSettings = Field(default_factory=ScriptedSettings)
    # Record every request's prompt token ids and the engine's token stream in this folder (``serve --record``),
    # for the scripted engine to replay (``engine.scripted.mode: recording``).
    record_dir: Path | None = None


class HarmonySettings(Section):
    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    knowledge_cutoff: str = "2024-06"
    # None: today's date; "YYYY-MM-DD" pins it (reproducible prompts, prefix caching).
    conversation_start_date: str | None = None
    default_reasoning_effort: Literal["low", "medium", "high"] = "medium"

    @field_validator("conversation_start_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            import datetime as dt

            dt.date.fromisoformat(value)
        return value


class KeyLimits(Section):
    """Limits for one named API key (429 with Retry-After in the route's envelope past either)."""

    max_concurrent_requests: int | None = Field(None, ge=1)
    # prompt + completion tokens in any 60-second window
    tokens_per_minute: int | None = Field(None, ge=1)


class AuthSettings(Section):
    # Serving on a non-loopback address with no API keys is refused unless this says it is meant.
    allow_unauthenticated: bool = False
    # Per-key limits, by key name (``name:key`` in the keys file or variable; unnamed keys are key-1, key-2, ...).
    key_limits: dict[str, KeyLimits] = Field(default_factory=dict)
    # Comma- or newline-separated keys in this environment variable...
    api_keys_env: str = "GPTOSS_API_KEYS"
    # ...and/or one key per line in this file. No keys anywhere: auth is off.
    api_keys_file: Path | None = None


class LimitsSettings(Section):
    # Request body size. 2 MiB holds several full 131k-token contexts of text; parsing a body this size that is all
    # tiny JSON objects takes ~45 ms on the event loop, twice that at 4 MiB.
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    # Requests admitted at once (queued in the engine included); more get 429 with Retry-After.
    max_concurrent_requests: int = Field(256, ge=1)
    # Prompt tokens of admitted requests still waiting for their first token (prefill backlog); a request that
    # would pass it gets 429 with Retry-After. None: no bound beyond the request count.
    max_queued_prompt_tokens: int | None = Field(1_048_576, ge=1)
    # Output cap when the request names none (never past the rest of the context window); None: the rest of it.
    default_max_tokens: int | None = Field(4096, ge=1)
    # Hard cap on the output a request may ask for (400 above it; routes that clamp, clamp to it). None: the
    # rest of the context window.
    max_output_tokens: int | None = Field(32768, ge=1)
    # A request still running after this many seconds is aborted; its answer ends as truncated in the route's
    # own way (non-streaming: 504). None: no deadline.
    request_timeout_s: float | None = Field(1800.0, gt=0)
    # Work bounded before anything expensive runs: messages, tools and characters of prompt text per request.
    max_messages: int = Field(4096, ge=1)
    max_tools: int = Field(128, ge=0)
    max_prompt_chars: int = Field(1_048_576, ge=1024)
    # Prompts with more characters than this are rendered in a worker process (harmony's tokenizer holds the
    # GIL for the whole call, so a thread would still stall the event loop); smaller ones render inline.
    render_inline_chars: int = Field(16384, ge=0)
    # Memory, in bytes, for the tokens of long message texts (1024 characters and more) that each API process (and
    # each render worker) remembers, so that a conversation sent again on every turn is tokenized only where it is
    # new (English text: ~2 bytes a character, texts and tokens together). 0: off.
    render_cache_bytes: int = Field(32 * 1024 * 1024, ge=0)
    # Choices one request may ask for (``n``; a batch of prompts counts each prompt's): each is an engine request
    # holding an admission slot, so one request takes at most this share of max_concurrent_requests. Over it: 400.
    max_n: int = Field(16, ge=1, le=1024)
    # Engine requests one request may start: prompts x n of a completions batch (each prompt's n choices). Each holds
    # an admission slot, so 64 keeps one batch to a quarter of the default max_concurrent_requests (a batch is
    # admitted whole or refused with 429, never left waiting half-admitted) while still fitting 4 prompts x the
    # largest n, or 64 single prompts. Over it: 400.
    max_batch_requests: int = Field(64, ge=1, le=4096)
    # Engine steps batched into one streamed event (like vLLM's --stream-interval).
    stream_interval: int = Field(1, ge=1, le=1024)
    max_stop_sequences: int = Field(16, ge=0)
    max_stop_length: int = Field(256, ge=1)
    # Longest run of letters/digits without a break accepted in prompt text (tokenizing one is quadratic).
    max_word_chars: int = Field(4096, ge=64)
    # JSON schemas (response_format, tool parameters) larger than this are refused with a 400.
    max_schema_bytes: int = Field(64 * 1024, ge=256)
    # Constrained requests (json_schema, a named or required tool): reasoning tokens allowed before the grammar
    # closes the analysis and opens the answer itself. None: unbounded (up to max_tokens).
    constrained_reasoning_budget: int | None = Field(None, ge=1)


STORE_URL_SCHEMES = ("sqlite://", "postgresql://", "postgres://")


class StoreSettings(Section):
    # Where stored documents live (kept responses, background runs): None, the SQLite file state.sqlite3 in the
    # cache folder; "sqlite:///abs/path.sqlite3"; "memory" (gone on exit); "postgresql://user@host:port/db" for
    # several replicas sharing state (the `postgres` extra installs the driver).
    url: str | None = None
    # Documents older than this are removed (and no longer read).
    max_age_days: float = Field(30.0, gt=0)
    # Past this many bytes of encoded documents, the oldest are removed until under 90% of it.
    max_bytes: int = Field(1024**3, ge=1024)
    # Both bounds are applied on open, then by a write at most this often (seconds).
    evict_interval_s: float = Field(60.0, ge=0)
    # Seconds one read or write may take; past it the request fails with 503.
    op_timeout_s: float = Field(5.0, gt=0)
    # The key that seals payloads handed to clients (base64 of 32 bytes): this environment variable, else this file,
    # else one generated once in the cache folder (seal.key). Replicas must share it.
    seal_key_file: Path | None = None
    seal_key_env: str = "GPTOSS_SEAL_KEY"

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str | None) -> str | None:
        if value is None or value == "memory" or value.startswith(STORE_URL_SCHEMES):
            return value
        raise ValueError(f'store.url must be "memory" or start with one of {list(STORE_URL_SCHEMES)}, not {value!r}')

    @property
    def max_age_s(self) -> float:
        return self.max_age_days * 86400


class TestingSettings(Section):
    """``testing``: the offline testing kit. Fault injection (``server/faults/``) is off unless ``faults_enabled``;
    with it on, the plan's rules hit the generation requests they match, and a request's fault header may name a
    rule or spell a fault (see ``FaultRule``). With it off the header is ignored: nothing reads it."""

    faults_enabled: bool = False
    # The plan: a list of rules, each a fault and the requests it hits (server/faults/plan.py documents the fields).
    faults: list[FaultRule] = Field(default_factory=list)
    # The request header naming a rule or holding a fault inline (case-insensitive).
    fault_header: str = Field("x-fault", pattern=r"^[A-Za-z0-9-]{1,64}$")
    # This profile serves real clients (the shipped CPU and GPU profiles say so): faults_enabled is refused at
    # start-up unless allow_faults_in_production says it is meant.
    production: bool = False
    allow_faults_in_production: bool = False

    @model_validator(mode="after")
    def _not_in_production(self) -> TestingSettings:
        if self.faults_enabled and self.production and not self.allow_faults_in_production:
            raise ValueError(
                "testing.faults_enabled is refused in a production profile (testing.production: true): any client "
                "could make the server fail. Set testing.allow_faults_in_production: true "
                "(GPTOSS_TESTING__ALLOW_FAULTS_IN_PRODUCTION=true) if this is intended."
            )
        return self


class ProvidersSettings(Section):
    """``providers.<name>``: one section per registered wire API (``compose_settings`` adds them)."""

    # Several wire APIs use /v1/chat/completions and /v1/models: this names the one answering there (the others
    # keep their own paths). Unset: the first registered wire API that can.
    v1_owner: str | None = None

    v1_candidates: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _resolve_v1_owner(self) -> ProvidersSettings:
        candidates = type(self).v1_candidates
        if self.v1_owner is None:
            self.v1_owner = candidates[0] if candidates else None
        elif self.v1_owner not in candidates:
            raise ValueError(f"providers.v1_owner must be one of {list(candidates)}, not {self.v1_owner!r}")
        return self

    def section(self, name: str) -> ProviderSection:
        """The settings section of the wire API called ``name``."""
        value = getattr(self, name, None)
        if not isinstance(value, ProviderSection):
            raise KeyError(f"no wire API named {name!r} is registered")
        return value


class CoreSettings(BaseSettings):
    """The core's sections. ``compose_settings`` adds ``providers`` with every registered wire API's section."""

    model_config = SettingsConfigDict(
        env_prefix="GPTOSS_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    harmony: HarmonySettings = Field(default_factory=HarmonySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    testing: TestingSettings = Field(default_factory=TestingSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)

    @model_validator(mode="after")
    def _fault_routes(self) -> CoreSettings:
        """Fault rules name registered wire APIs (``providers.<name>``)."""
        routes = set(type(self.providers).model_fields) - set(ProvidersSettings.model_fields)
        check_plan(self.testing.faults, routes)
        if self.testing.faults_enabled and self.server.api_processes > 1:
            raise ValueError(
                "testing.faults_enabled needs server.api_processes: 1 (each process would count the plan's "
                "`first`/`every` on its own)."
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (CLI flags, already merged over the YAML) > env > defaults; see load_settings.
        return (init_settings, env_settings)


def compose_settings(wire_apis: Sequence[Provider]) -> type[CoreSettings]:
    """The settings class for ``wire_apis``: the core's sections plus ``providers.<name>`` for each, in registry
    order. YAML keys and environment variables (``GPTOSS_PROVIDERS__<NAME>__<FIELD>``) follow the same tree."""
    sections: dict[str, Any] = {p.name: (p.settings, Field(default_factory=p.settings)) for p in wire_apis}
    providers = create_model("ProvidersSettings", __base__=ProvidersSettings, **sections)
    providers.v1_candidates = tuple(p.name for p in wire_apis if p.settings.shares_v1)
    return create_model("Settings", __base__=CoreSettings, providers=(providers, Field(default_factory=providers)))


if TYPE_CHECKING:
    Settings = CoreSettings
else:
    from routes import WIRE_APIS

    Settings = compose_settings(WIRE_APIS)
    """The settings tree of this server: the core's sections and every registered wire API's."""


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping at top level.")
    return data


def _env_overrides(settings_cls: type[CoreSettings]) -> dict[str, Any]:
    """Values from ``GPTOSS_*`` environment variables alone (they sit between YAML and flags)."""
    return EnvSettingsSource(settings_cls)()


def resolve_config_file(path: Path) -> Path:
    """``path`` itself when it exists; else a relative ``configs/<name>`` names the packaged profile of that name,
    so ``--config configs/cpu.yaml`` works from an installed package as well as from a checkout."""
    if path.exists() or path.is_absolute() or path.parts[:1] != ("configs",):
        return path
    packaged = CONFIG_DIR.joinpath(*path.parts[1:])
    return packaged if packaged.is_file() else path


def profile_choice() -> tuple[Path, str]:
    """The default profile and why it was chosen: gpt-oss-120b on GPU when a GPU and CUDA vLLM are present, else the
    CPU profile."""
    from server.engine.detect import gpu_family, gpu_present, gpus, installed_vllm

    dist, gpu = installed_vllm(), gpu_present()
    if dist == "vllm" and gpu:
        found = gpus()
        family = gpu_family(found[0]) if found else None
        profile = CONFIG_DIR / f"gpu-{family}.yaml"
        if family is not None and profile.is_file():
            return profile, f"auto: CUDA vLLM on {found[0].name} (compute {found[0].compute_capability})"
        return CONFIG_DIR / "gpu.yaml", "auto: a GPU and CUDA vLLM are present"
    missing = "no GPU found" if not gpu else f"CUDA vLLM not installed ({dist or 'no vLLM'} is)"
    return CONFIG_DIR / "cpu.yaml", f"auto: {missing}"


def default_profile() -> Path:
    return profile_choice()[0]


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    settings_cls: type[CoreSettings] | None = None,
) -> Settings:
    """YAML < env < overrides. ``config_file=None`` picks the default profile; ``settings_cls`` defaults to this
    server's tree (``Settings``)."""
    cls = settings_cls or Settings
    path = resolve_config_file(config_file) if config_file else default_profile()
    data = read_yaml(path)
    data = _deep_merge(data, _env_overrides(cls))
    data = _deep_merge(data, overrides or {})
    try:
        return cls(**data)
    except ValueError as exc:
        raise ConfigError(f"Invalid settings ({path}): {exc}") from exc
