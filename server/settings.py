"""One settings tree, filled from (lowest to highest priority) defaults, a YAML file, environment
variables (``GPTOSS_`` prefix, ``__`` between levels, e.g. ``GPTOSS_SERVER__PORT=9000``) and CLI flags.

Secrets never live in YAML: the YAML names the environment variable or file that holds API keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from server.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Seconds to let in-flight requests finish on shutdown before they are aborted.
    drain_timeout_s: float = Field(30.0, ge=0)


class ScriptRule(_Section):
    """Replay ``text`` (harmony completion text, as the model would write it after
    ``<|start|>assistant``) when the last user message matches ``match`` (a regex; none = always)."""

    match: str | None = None
    text: str


class ScriptedSettings(_Section):
    # echo: answer with the last user message; replay: the first rule that matches (else echo).
    mode: Literal["echo", "replay"] = "echo"
    rules: list[ScriptRule] = Field(default_factory=list)
    # YAML or JSON file with a list of rules, appended to ``rules``.
    rules_file: Path | None = None
    token_delay_s: float = Field(0.0, ge=0, le=10)
    max_model_len: int = Field(131072, ge=16)


class VllmSettings(_Section):
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
    # The JSON grammar may not insert free whitespace (keeps small models from looping on spaces).
    structured_outputs_disable_any_whitespace: bool = True
    # Anything else AsyncEngineArgs accepts.
    extra_args: dict[str, Any] = Field(default_factory=dict)


class EngineSettings(_Section):
    kind: Literal["vllm", "scripted"] = "vllm"
    # The model name the server reports and accepts on its OpenAI-compatible route.
    served_model_name: str = "gpt-oss-120b"
    vllm: VllmSettings = Field(default_factory=VllmSettings)
    scripted: ScriptedSettings = Field(default_factory=ScriptedSettings)


class HarmonySettings(_Section):
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


class AuthSettings(_Section):
    # Comma- or newline-separated keys in this environment variable...
    api_keys_env: str = "GPTOSS_API_KEYS"
    # ...and/or one key per line in this file. No keys anywhere: auth is off.
    api_keys_file: Path | None = None


class LimitsSettings(_Section):
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Requests admitted at once (queued in the engine included); more get 429 with Retry-After.
    max_concurrent_requests: int = Field(256, ge=1)
    # Output cap when the request names none; None: the rest of the context window.
    default_max_tokens: int | None = Field(None, ge=1)
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


class OpenAIRouteSettings(_Section):
    enabled: bool = True
    # Extra model names accepted as aliases of the served model.
    model_aliases: list[str] = Field(default_factory=lambda: ["openai/gpt-oss-120b", "gpt-oss"])
    owned_by: str = "vllm"


# ---- provider routes: one section each (fields documented in the provider's module) ----------------


class Dat1Settings(_Section):
    """dat1.co: llama.cpp's llama-server behind dat1's gateway (wire spec section 1)."""

    enabled: bool = True
    # POST /api/v1/collection/<collection>/invoke-chat (X-API-Key; the body names no model).
    collection: str = Field("gpt-120-oss", pattern=r"^[A-Za-z0-9._-]+$")
    # POST /api/v1/collection/open-ai/chat/completions (Bearer; OpenAI SDK) and the `model` names it accepts.
    openai_route: bool = True
    openai_models: list[str] = Field(default_factory=lambda: ["gpt-120-oss"])
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
    # UNKNOWN whether `timings` also appear on the open-ai route (the same llama-server answers it).
    openai_route_timings: bool = True
    # llama-server's sampling defaults, used where the request omits a value (or sends a wrong type).
    temperature: float = Field(0.8, ge=0, le=2)
    top_k: int = Field(40, ge=-1)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.05, ge=0, le=1)


class AimlapiSettings(_Section):
    enabled: bool = True
    # The one value of the request's `model` enum, echoed in responses.
    model_id: str = "openai/gpt-oss-120b"
    # INFERRED: `model` is an enum, so an unknown one is a 400 body-validation error (404 is the alternative).
    unknown_model_status: Literal[400, 404] = 400
    # UNKNOWN how validation detail is carried: True appends it to "Body validation error!" in `message`.
    validation_detail_in_message: bool = True
    # The spec types `message.content` as a non-null string: "" (default) or null when only tools were called.
    tool_call_content: Literal["empty", "null"] = "empty"
    # INFERRED stream shape: a final `choices: []` usage chunk even without stream_options.include_usage.
    stream_usage_always: bool = True
    # The spec's chunk schema requires `role` and `content` in every delta (OpenRouter sends both each time).
    stream_role_every_chunk: bool = True
    # The spec's chunk schema requires id/type/name on every tool-call delta: send each call whole.
    stream_whole_tool_calls: bool = True
    # UNKNOWN mid-stream error: OpenRouter's chunk with `error` + finish_reason "error" (default), or the envelope.
    stream_error_style: Literal["openrouter", "envelope"] = "openrouter"
    # `meta.usage {credits_used, usd_spent}` on the body and the last chunk (2026 docs), priced as below.
    include_meta: bool = True
    usd_per_million_prompt_tokens: float = Field(0.0, ge=0)
    usd_per_million_completion_tokens: float = Field(0.0, ge=0)
    credits_per_usd: float = Field(2_000_000.0, ge=0)
    # Also answer GET /models and GET /api/v1/models (documented aliases of /v1/models).
    models_aliases: bool = True
    model_name: str = "GPT OSS 120B"
    model_developer: str = "OpenAI"
    model_context_length: int = Field(128000, ge=1)


class E2ESettings(_Section):
    enabled: bool = True
    # The model name in the URL and in the body (echoed in responses).
    model_name: str = "gpt_oss_120b"
    # vLLM era (INFERRED): `reasoning_content` (older, default) or `reasoning` (newer) for the reasoning text.
    reasoning_key: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    # vLLM era (INFERRED): empty `tool_calls` is `[]` (older, default) or omitted (newer).
    empty_tool_calls: Literal["list", "omit"] = "list"
    # vLLM >= 0.11-ish adds `choices[].token_ids` (null unless return_token_ids); off matches the E2E field list.
    choice_token_ids: bool = False
    # vLLM >= 0.10 nests errors as {"error": {...}}; older vLLM used a flat {"object": "error", ...}.
    error_style: Literal["nested", "flat"] = "nested"
    # UNKNOWN gateway 401 body: vLLM's error envelope (default) or Envoy's plain-text "Jwt verification fails".
    auth_error: Literal["vllm", "envoy"] = "vllm"
    owned_by: str = "vllm"
    system_fingerprint: str | None = None
    # INFERRED: GET .../v1/models is routed through the gateway.
    models_route: bool = True


class DataoortsSettings(_Section):
    enabled: bool = True
    # The catalogue name clients send at top level (Cloudflare's name minus "@cf/"), plus accepted aliases.
    model_name: str = "openai/gpt-oss-120b"
    model_aliases: list[str] = Field(default_factory=lambda: ["@cf/openai/gpt-oss-120b"])
    # Cloudflare's schema defaults, applied when `data` omits them (None: the engine's own default).
    default_max_tokens: int | None = Field(256, ge=1)
    default_temperature: float | None = Field(0.6, ge=0, le=5)
    # INFERRED: `result` is the documented {response, tool_calls, usage}; "chat_completion" returns the
    # newer Cloudflare-native OpenAI chat.completion object inside the envelope instead.
    result_shape: Literal["envelope", "chat_completion"] = "envelope"
    # UNKNOWN whether reasoning is returned; True adds it (result.reasoning / "reasoning" stream events).
    include_reasoning: bool = False
    # INFERRED stream form: classic `{"response": ...}` events; True adds Cloudflare's random "p" padding key.
    stream_padding: bool = False
    # INFERRED error envelope key order: Cloudflare's (result, success, errors, messages) or alphabetical.
    error_key_order: Literal["cloudflare", "alphabetical"] = "cloudflare"


class OxenSettings(_Section):
    enabled: bool = True
    # The model id clients send and that is echoed back, plus accepted aliases.
    model_name: str = "gpt-oss-120b"
    model_aliases: list[str] = Field(default_factory=list)
    # Identity of the model object on /api/ai/models.
    display_name: str = "GPT-OSS 120B"
    description: str = "OpenAI's open-weight 120B reasoning model for production, general purpose, high reasoning use."
    summary: str = "Open-weight reasoning model"
    developer_name: str = "OpenAI"
    developer_logo: str | None = None
    model_created: int = 1754352000
    released_at: str | None = "2025-08-05T00:00:00Z"
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # INFERRED: keys alphabetical in stream chunks only ("stream"), everywhere ("all"), or nowhere ("none").
    sort_keys: Literal["stream", "all", "none"] = "stream"
    # UNKNOWN whether reasoning is returned: None omits it; a name (e.g. "reasoning_content") adds that field.
    reasoning_field: str | None = None
    # UNKNOWN stream edges: a role-only first chunk; a usage chunk when stream_options.include_usage is set.
    stream_role_chunk: bool = False
    stream_usage: bool = True


class ProvidersSettings(_Section):
    # AI/ML API and plain OpenAI both use /v1/chat/completions and /v1/models: this picks who answers
    # there (AI/ML API also keeps /chat/completions, and OpenAI stays reachable at /openai/v1/...).
    v1_owner: Literal["openai", "aimlapi"] = "openai"
    openai: OpenAIRouteSettings = Field(default_factory=OpenAIRouteSettings)
    dat1: Dat1Settings = Field(default_factory=Dat1Settings)
    aimlapi: AimlapiSettings = Field(default_factory=AimlapiSettings)
    e2e: E2ESettings = Field(default_factory=E2ESettings)
    dataoorts: DataoortsSettings = Field(default_factory=DataoortsSettings)
    oxen: OxenSettings = Field(default_factory=OxenSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GPTOSS_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    harmony: HarmonySettings = Field(default_factory=HarmonySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)

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


def _env_overrides() -> dict[str, Any]:
    """Values from ``GPTOSS_*`` environment variables alone (they sit between YAML and flags)."""
    return EnvSettingsSource(Settings)()


def default_profile() -> Path:
    """gpt-oss-120b on GPU when a GPU and CUDA vLLM are present, else the CPU profile."""
    from server.engine.detect import cuda_vllm_available

    return CONFIG_DIR / ("gpu.yaml" if cuda_vllm_available() else "cpu.yaml")


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """YAML < env < overrides. ``config_file=None`` picks the default profile."""
    path = config_file or default_profile()
    data = read_yaml(path)
    data = _deep_merge(data, _env_overrides())
    data = _deep_merge(data, overrides or {})
    try:
        return Settings(**data)
    except ValueError as exc:
        raise ConfigError(f"Invalid settings ({path}): {exc}") from exc
