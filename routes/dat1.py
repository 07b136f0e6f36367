"""dat1.co: gpt-oss-120b served by llama.cpp's ``llama-server`` behind dat1's gateway (wire spec section 1).

Two paths reach the same llama-server:

- ``POST /api/v1/collection/gpt-120-oss/invoke-chat`` with ``X-API-Key`` (dat1's documented route, called with
  ``requests``; the body names no model);
- ``POST /api/v1/collection/open-ai/chat/completions`` with ``Authorization: Bearer`` and
  ``"model": "gpt-120-oss"`` (the OpenAI SDK with ``base_url=.../api/v1/collection/open-ai``).

The body is read as llama-server reads it (``oaicompat_chat_params_parse`` then ``params_from_json_cmpl``): a known
key of the wrong type falls back to its default (``json_value``), unknown keys are ignored, numbers keep
llama-server's meaning (a negative temperature is greedy, ``top_k <= 0`` is off, ``max_tokens: -1`` is unlimited)
clamped into what the engine accepts, and ``n`` != 1 is refused. Answers are llama-server's bytes: its key orders,
``timings``, ``system_fingerprint``, 32-character ids, ``reasoning_content`` (whitespace-stripped, as its parser
does), a role chunk first, usage and timings on the final chunk (per build era, see ``Dat1Settings``), and its
error envelope ``{"error": {"code", "message", "type"}}`` with the HTTP status equal to ``code``.

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from routes import Provider
from routes.common import Ctx, complete, open_stream, random_alnum, token_text
from server.context import ServerContext
from server.errors import (
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)
from server.harmony.encoding import get_encoding
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.service import PreparedRequest
from server.settings import Dat1Settings
from server.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    Delta,
    Event,
    Finish,
    FinishReason,
    FunctionTool,
    ResponseFormat,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    ToolChoice,
)

log = logging.getLogger(__name__)

NAME = "dat1"
BASE = "/api/v1/collection"
OPENAI_PATH = BASE + "/open-ai/chat/completions"
JSON_TYPE = "application/json; charset=utf-8"  # llama-server's MIMETYPE_JSON
N_VOCAB = 201088
MAX_LOGPROBS = 20  # the engine's max_logprobs; llama-server itself has no bound
MAX_TOOLS = 128
MAX_LOGIT_BIAS = 1024
FLOAT_LOWEST = -3.4028234663852886e38  # llama-server writes log(0) as std::numeric_limits<float>::lowest()
# With reasoning_format "none" the analysis message stays in `content` as llama-server's raw harmony text.
RAW_REASONING_START = "<|channel|>analysis<|message|>"
RAW_REASONING_END = "<|end|>"


def now() -> int:
    """``created``: llama-server's ``time(0)``, read for every chunk (tests pin it)."""
    return int(time.time())


def new_id() -> str:
    """``chatcmpl-`` + 32 characters of [0-9A-Za-z] (llama-server's ``gen_chatcmplid``; tests pin it)."""
    return "chatcmpl-" + random_alnum(32)


def new_tool_call_id() -> str:
    """32 characters of [0-9A-Za-z] (llama-server's ``gen_tool_call_id``; tests pin it)."""
    return random_alnum(32)


def _settings(ctx: ServerContext) -> Dat1Settings:
    return ctx.settings.providers.dat1


# ---- error renderer ---------------------------------------------------------------------------------

# llama-server's `format_error_response`: type name for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}
CONTEXT_ERROR_A = (
    "the request exceeds the available context size. try increasing the context size or enable context shift"
)


class ParseError(InvalidRequestError):
    """Refused while llama-server parses the chat body (``oaicompat_chat_params_parse``, or the JSON itself).

    The Aug-2025 build lets these reach its exception handler (500 ``server_error``); the spec's table and newer
    builds answer 400. ``Dat1Settings.parse_errors_as_server_error`` picks."""


def error_info(exc: ServerError, settings: Dat1Settings) -> dict[str, Any]:
    """The ``error`` object: ``code`` (= HTTP status), ``message``, ``type`` (+ context numbers in era C)."""
    status = exc.status
    if isinstance(exc, ParseError) and settings.parse_errors_as_server_error:
        status = 500
    kind = ERROR_TYPES.get(status, exc.kind)
    message = exc.message
    if isinstance(exc, ContextLengthError):
        if settings.stream_era == "C":
            message = (
                f"request ({exc.prompt_tokens} tokens) exceeds the available context size ({exc.max_context} "
                "tokens), try increasing it"
            )
            return {
                "code": status,
                "message": message,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": exc.prompt_tokens,
                "n_ctx": exc.max_context,
            }
        message = CONTEXT_ERROR_A
    return {"code": status, "message": message, "type": kind}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = _settings(request.app.state.ctx) if request is not None else Dat1Settings()
    info = error_info(exc, settings)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitError) else None
    return Response(dumps({"error": info}), status_code=info["code"], media_type=JSON_TYPE, headers=headers)


# ---- auth -------------------------------------------------------------------------------------------


INVALID_KEY = "Invalid API Key"  # llama-server's 401 text; dat1's own gateway bodies are UNKNOWN


def authenticate_key(request: Request, ctx: Ctx) -> None:
    """invoke-chat: ``X-API-Key: <key>``."""
    keys = ctx.keys
    require_key(keys, request.headers.get("x-api-key"), missing=INVALID_KEY, invalid=INVALID_KEY)


def authenticate_bearer(request: Request, ctx: Ctx) -> None:
    """The open-ai route: ``Authorization: Bearer <key>``."""
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing=INVALID_KEY, invalid=INVALID_KEY)


# ---- request: llama-server's reading of the body ------------------------------------------------------


def type_name(value: Any) -> str:
    """nlohmann::json's ``type_name()``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "discarded")


def _wrong_type(key: str, default: Any) -> Any:
    log.debug("dat1: wrong type supplied for parameter '%s', using the default", key)
    return default


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def json_int(obj: Any, key: str, default: int) -> int:
    """llama-server's ``json_value<int>``: null/missing -> default; numbers and booleans convert as C++ casts do
    (int32 wrap-around, truncation toward zero); any other type -> default (a logged warning, never an error)."""
    value = _get(obj, key)
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return (value + 2**31) % 2**32 - 2**31
    if isinstance(value, float):
        return int(value) if -(2**31) <= value < 2**31 else -(2**31)
    return _wrong_type(key, default)  # type: ignore[no-any-return]


def json_float(obj: Any, key: str, default: float) -> float:
    value = _get(obj, key)
    if value is None:
        return default
    if isinstance(value, int | float):  # booleans included: C++ float accepts them
        return float(value)
    return _wrong_type(key, default)  # type: ignore[no-any-return]


def json_bool(obj: Any, key: str, default: bool) -> bool:
    value = _get(obj, key)
    if value is None:
        return default
    return value if isinstance(value, bool) else _wrong_type(key, default)


def json_str(obj: Any, key: str, default: str) -> str:
    value = _get(obj, key)
    if value is None:
        return default
    return value if isinstance(value, str) else _wrong_type(key, default)


def _type_error(expected: str, value: Any) -> str:
    return f"[json.exception.type_error.302] type must be {expected}, but is {type_name(value)}"


def _text_field(obj: dict[str, Any], key: str, where: str) -> str:
    """``obj.at(key)`` read as a string, with nlohmann's error texts."""
    if key not in obj:
        raise ParseError(f"{where}[json.exception.out_of_range.403] key '{key}' not found")
    value = obj[key]
    if not isinstance(value, str):
        raise ParseError(where + _type_error("string", value))
    return value


@dataclass(slots=True)
class Dat1Request:
    chat: ChatRequest
    stream: bool
    model: str  # echoed
    n_probs: int  # token probabilities per token; 0 = none
    timings_per_token: bool
    include_usage: bool  # era C: stream_options.include_usage
    raw_reasoning: bool  # the analysis text goes to `content` as raw harmony text


CONTENT_REF = (
    "(ref: https://github.com/ggml-org/llama.cpp/issues/8367 & https://github.com/ggml-org/llama.cpp/issues/12279)"
)
ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_messages(messages: Any) -> list[Any]:
    """The checks ``oaicompat_chat_params_parse`` makes before templating, with its messages."""
    if not isinstance(messages, list):
        raise ParseError("Expected 'messages' to be an array")
    for msg in messages:
        role = json_str(msg, "role", "")
        has_content = isinstance(msg, dict) and "content" in msg
        if role != "assistant" and not has_content:
            raise ParseError("All non-assistant messages must contain 'content'")
        if role == "assistant" and not has_content:
            if not (isinstance(msg, dict) and "tool_calls" in msg):
                raise ParseError("Assistant message must contain either 'content' or 'tool_calls'!")
            continue
        content = msg["content"]
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise ParseError("Expected 'content' to be a string or an array")
        for part in content:
            kind = json_str(part, "type", "")
            if kind == "image_url":
                raise ParseError(
                    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
                )
            if kind == "input_audio":
                raise ParseError(
                    "audio input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
                )
            if kind != "text":
                raise ParseError("unsupported content[].type")
    return messages


def parse_message(message: Any) -> ChatMessage:
    """``common_chat_msgs_parse_oaicompat`` for one message (its texts, prefixed "Failed to parse messages: ")."""
    where = "Failed to parse messages: "
    if not isinstance(message, dict):
        raise ParseError(f"{where}Expected 'message' to be an object, got {dumps(message).decode()}")
    if "role" not in message:
        raise ParseError(f"{where}Missing 'role' in message: {dumps(message).decode()}")
    role = message["role"]
    if not isinstance(role, str):
        raise ParseError(where + _type_error("string", role))
    if role not in ROLES:
        raise ParseError(f"{where}Unsupported role '{role}'")
    content = message.get("content")
    text: str | None = content if isinstance(content, str) else None
    if isinstance(content, list):
        parts = []
        for part in content:
            if "type" not in part:
                raise ParseError(f"{where}Missing content part type: {dumps(part).decode()}")
            parts.append(_text_field(part, "text", where))
        text = "".join(parts)
    calls: list[ToolCall] = []
    if "tool_calls" in message:
        raw_calls = message["tool_calls"]
        for call in raw_calls if isinstance(raw_calls, list) else [raw_calls]:
            dump = dumps(call).decode()
            if not isinstance(call, dict) or "type" not in call:
                raise ParseError(f"{where}Missing tool call type: {dump}")
            if call["type"] != "function":
                raise ParseError(f"{where}Unsupported tool call type: {dump}")
            function = call.get("function")
            if not isinstance(function, dict):
                raise ParseError(f"{where}Missing tool call function: {dump}")
            if "name" not in function:
                raise ParseError(f"{where}Missing tool call name: {dump}")
            name = _text_field(function, "name", where)
            arguments = _text_field(function, "arguments", where)
            call_id = _text_field(call, "id", where) if "id" in call else ""
            calls.append(ToolCall(call_id, name, arguments))
    if "content" not in message and "tool_calls" not in message:
        raise ParseError(f"{where}Expected 'content' or 'tool_calls' {CONTENT_REF}")
    optional = {
        k: _text_field(message, k, where) for k in ("reasoning_content", "name", "tool_call_id") if k in message
    }
    if text is None and (role != "assistant" or not calls):
        text = ""  # llama-server renders a null content as empty text
    return ChatMessage(
        role=role,  # type: ignore[arg-type]
        content=text,
        reasoning=optional.get("reasoning_content"),
        tool_calls=calls,
        tool_call_id=optional.get("tool_call_id"),
        name=optional.get("name"),
    )


def parse_tools(tools: Any) -> list[FunctionTool]:
    """``common_chat_tools_parse_oaicompat``. Like newer builds, ``description`` and ``parameters`` are optional
    (the Aug-2025 build required both); names must be plain identifiers (they are rendered into the prompt)."""
    if tools is None:
        return []

    def fail(reason: str) -> ParseError:
        return ParseError(f"Failed to parse tools: {reason}; tools = {dumps(tools).decode()}")

    if not isinstance(tools, list):
        raise fail(f"Expected 'tools' to be an array, got {dumps(tools).decode()}")
    if len(tools) > MAX_TOOLS:
        raise fail(f"at most {MAX_TOOLS} tools are allowed")
    out: list[FunctionTool] = []
    for tool in tools:
        dump = dumps(tool).decode()
        if not isinstance(tool, dict) or "type" not in tool:
            raise fail(f"Missing tool type: {dump}")
        if tool["type"] != "function":
            raise fail(f"Unsupported tool type: {dump}")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise fail(f"Missing tool function: {dump}")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise fail(f"Invalid function name: {dumps(name).decode()}")
        description = function.get("description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise fail(f"Invalid function parameters: {dump}")
        out.append(FunctionTool(name, description if isinstance(description, str) else None, parameters))
    return out


def parse_response_format(body: dict[str, Any]) -> ResponseFormat:
    schema = body.get("json_schema")
    if schema is not None and json_str(body, "grammar", ""):
        raise ParseError("Cannot use both json_schema and grammar")
    if "response_format" in body:
        response_format = body["response_format"]
        kind = json_str(response_format, "type", "")
        if kind == "json_object":
            schema = _get(response_format, "schema")
            schema = {} if schema is None else schema
        elif kind == "json_schema":
            schema = _get(_get(response_format, "json_schema"), "schema")
            schema = {} if schema is None else schema
        elif kind and kind != "text":
            raise ParseError(f'response_format type must be one of "text" or "json_object", but got: {kind}')
    if schema is None:
        return ResponseFormat()
    if not isinstance(schema, dict):
        raise ParseError(f"JSON schema conversion failed: expected an object, got {type_name(schema)}")
    return ResponseFormat("json_schema", schema) if schema else ResponseFormat("json_object")


def parse_logit_bias(value: Any) -> dict[int, float] | None:
    """llama-server's ``logit_bias``: ``[[token|text, bias], ...]`` or ``{"token"|"text": bias}``; a bias of
    ``false`` bans the token; malformed entries are skipped. Biases are clamped to the engine's [-100, 100]."""
    if isinstance(value, list):
        pairs = [(el[0], el[1]) for el in value if isinstance(el, list) and len(el) == 2]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return None
    if len(pairs) > MAX_LOGIT_BIAS:
        raise InvalidRequestError(f"logit_bias may hold at most {MAX_LOGIT_BIAS} entries.", param="logit_bias")
    out: dict[int, float] = {}
    for key, raw in pairs:
        if raw is False:
            bias = -100.0
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            bias = min(max(float(raw), -100.0), 100.0)
        else:
            continue
        if isinstance(key, int) and not isinstance(key, bool):
            tokens = [key] if 0 <= key < N_VOCAB else []
        elif isinstance(key, str):
            digits = key.lstrip("+-") if isinstance(value, dict) else ""
            if digits.isdigit():  # an object's key is a token id when strtol reads all of it
                tokens = [int(key)] if 0 <= int(key) < N_VOCAB else []
            else:
                tokens = get_encoding().encode(key, disallowed_special=())
        else:
            continue
        for token in tokens:
            out[token] = bias
    return out or None


def parse_stop(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    stops: list[str] = []
    for word in value:
        if word is None or word == [] or word == {}:
            continue  # nlohmann's empty()
        if not isinstance(word, str):
            raise InvalidRequestError(_type_error("string", word), param="stop")
        stops.append(word)
    return stops


def reasoning_effort(body: dict[str, Any], settings: Dat1Settings) -> Any:
    kwargs = body.get("chat_template_kwargs")
    effort = kwargs.get("reasoning_effort") if isinstance(kwargs, dict) else None
    if effort is None and settings.top_level_reasoning_effort:
        effort = body.get("reasoning_effort")
    # the template writes any value verbatim; the core knows the three levels (anything else: the default)
    return effort.lower() if isinstance(effort, str) and effort.lower() in ("low", "medium", "high") else None


def parse_request(body: dict[str, Any], settings: Dat1Settings, *, request_id: str) -> Dat1Request:
    """The body as llama-server reads it, in its order (so the same error wins), then clamped into the engine's
    ranges with llama-server's meaning kept."""
    era = settings.stream_era
    # -- oaicompat_chat_params_parse (ParseError) --
    tools_raw = body.get("tools")
    has_tools = isinstance(tools_raw, list) and bool(tools_raw)
    stream = json_bool(body, "stream", False)
    choice = json_str(body, "tool_choice", "auto")  # an object (a named function) is the wrong type: "auto"
    response_format = parse_response_format(body)
    if "messages" not in body:
        raise ParseError("'messages' is required")
    messages = [parse_message(m) for m in check_messages(body["messages"])]
    tools = parse_tools(tools_raw)
    if choice not in ("auto", "none", "required"):
        raise ParseError(f"Invalid tool_choice: {choice}")
    if len(messages) >= 2 and messages[-1].role == "assistant" and messages[-2].role == "assistant":
        raise ParseError("Cannot have 2 or more assistant messages at the end of the list.")
    if json_int(body, "n", 1) != 1:
        raise ParseError("Only one completion choice is allowed")
    n_probs: int | None = None
    if json_bool(body, "logprobs", False):
        if has_tools and stream:
            raise ParseError("logprobs is not supported with tools + stream")
        n_probs = json_int(body, "top_logprobs", 20)
    elif body.get("top_logprobs") is not None:
        raise ParseError("top_logprobs requires logprobs to be set to true")

    # -- params_from_json_cmpl (InvalidRequestError, 400 in every era) --
    if n_probs is None:
        n_probs = json_int(body, "n_probs", 0)
    if "logprobs" in body and n_probs == 0:
        n_probs = json_int(body, "logprobs", 0)
    max_tokens = json_int(body, "max_tokens", -1)
    if era == "C":
        max_tokens = json_int(body, "max_completion_tokens", max_tokens)
    n_predict = json_int(body, "n_predict", max_tokens)
    if json_int(body, "repeat_last_n", 64) < -1:
        raise InvalidRequestError("Error: repeat_last_n must be >= -1", param="repeat_last_n")
    reasoning_format: str = settings.reasoning_format
    if "reasoning_format" in body:
        value = body["reasoning_format"]
        if not isinstance(value, str):
            raise InvalidRequestError(_type_error("string", value), param="reasoning_format")
        if value not in ("none", "auto", "deepseek", "deepseek-legacy"):
            raise InvalidRequestError(f"Unknown reasoning format: {value}", param="reasoning_format")
        reasoning_format = value
    stops = parse_stop(body.get("stop"))
    logit_bias = parse_logit_bias(body.get("logit_bias"))
    seed = json_int(body, "seed", -1) % 2**32  # uint32; 0xFFFFFFFF is LLAMA_DEFAULT_SEED (random)
    model = json_str(body, "model", settings.model_name) if settings.echo_request_model else settings.model_name

    temperature = json_float(body, "temperature", settings.temperature)
    top_p = json_float(body, "top_p", settings.top_p)
    top_k = json_int(body, "top_k", settings.top_k)
    repeat_penalty = json_float(body, "repeat_penalty", 1.0)
    sampling = SamplingOptions(
        # -1: up to the context's end; 0 and other negatives: llama-server stops after one token
        max_tokens=None if n_predict == -1 else max(n_predict, 1),
        temperature=min(max(temperature, 0.0), 2.0),  # <= 0 is greedy in llama-server too
        top_p=1.0 if top_p >= 1.0 else max(top_p, 1e-9),  # top_p <= 0 keeps the one best token
        top_k=-1 if top_k <= 0 else min(top_k, N_VOCAB),
        min_p=min(max(json_float(body, "min_p", settings.min_p), 0.0), 1.0),
        seed=None if seed == 2**32 - 1 else seed,
        stop=stops,
        presence_penalty=min(max(json_float(body, "presence_penalty", 0.0), -2.0), 2.0),
        frequency_penalty=min(max(json_float(body, "frequency_penalty", 0.0), -2.0), 2.0),
        repetition_penalty=repeat_penalty if repeat_penalty > 0 and repeat_penalty != 1.0 else None,
        logit_bias=logit_bias,
        logprobs=n_probs > 0,
        top_logprobs=min(max(n_probs, 0), MAX_LOGPROBS),
        ignore_eos=json_bool(body, "ignore_eos", False),
    )
    tool_choice = ToolChoice("none") if not tools or choice == "none" else ToolChoice(choice)  # type: ignore[arg-type]
    chat = ChatRequest(
        messages=messages,
        sampling=sampling,
        reasoning_effort=reasoning_effort(body, settings),
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        request_id=request_id,
    )
    return Dat1Request(
        chat=chat,
        stream=stream,
        model=model,
        n_probs=max(n_probs, 0),
        timings_per_token=json_bool(body, "timings_per_token", False),
        include_usage=json_bool(_get(body, "stream_options"), "include_usage", False),
        raw_reasoning=reasoning_format == "none" or (reasoning_format == "deepseek-legacy" and stream),
    )


def prepare(ctx: ServerContext, chat: ChatRequest) -> PreparedRequest:
    """The core's prepare, except that llama-server never refuses ``max_tokens`` past the context: it generates
    up to the context's end (finish_reason ``length``)."""
    try:
        return ctx.service.prepare(chat)
    except ContextLengthError as exc:
        if exc.param != "max_tokens":
            raise
        chat.sampling.max_tokens = exc.max_context - exc.prompt_tokens
        return ctx.service.prepare(chat)


# ---- response builder -------------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    """C++ double division: x/0 is +-inf, 0/0 is nan (both serialise as null, as nlohmann writes them)."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _ms(value: float) -> float:
    """llama-server's durations are whole microseconds / 1e3."""
    return round(value * 1000.0) / 1e3


def timings_body(
    prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float, *, era: str, cache_n: int = 0
) -> dict[str, Any]:
    """``result_timings::to_json`` from measured durations (ms). ``prompt_n`` counts the prompt tokens evaluated
    (those not served from a cache); ``cache_n`` (eras B and C) the cached ones."""
    p_ms, g_ms = _ms(prompt_ms), _ms(predicted_ms)
    body: dict[str, Any] = {"cache_n": cache_n} if era != "A" else {}
    body["prompt_n"] = prompt_n
    body["prompt_ms"] = p_ms
    body["prompt_per_token_ms"] = _div(p_ms, prompt_n)
    body["prompt_per_second"] = _div(1e3, p_ms) * prompt_n
    body["predicted_n"] = predicted_n
    body["predicted_ms"] = g_ms
    body["predicted_per_token_ms"] = _div(g_ms, predicted_n)
    body["predicted_per_second"] = _div(1e3, g_ms) * predicted_n
    return body


def usage_body(prompt: int, completion: int, *, era: str, cache_n: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
    }
    if era == "C":
        body["prompt_tokens_details"] = {"cached_tokens": cache_n}
    return body


def finish_reason(reason: FinishReason) -> str:
    """llama-server: "stop" on EOS or a stop word ("tool_calls" when the message has calls), else "length"."""
    return reason if reason in ("stop", "tool_calls") else "length"


def strip_reasoning(text: str) -> str:
    """llama-server strips the reasoning with ``std::isspace`` (ASCII whitespace only)."""
    return text.strip(" \t\n\v\f\r")


def probs_body(entries: list[TokenLogprob]) -> dict[str, Any]:
    """``{"content": [...]}`` in llama-server's shape: ``id, token, bytes, logprob, top_logprobs``."""

    def one(token_id: int, logprob: float) -> dict[str, Any]:
        text = token_text(token_id)
        value = logprob if math.isfinite(logprob) else FLOAT_LOWEST
        return {"id": token_id, "token": text, "bytes": list(text.encode()), "logprob": value}

    return {
        "content": [{**one(e.token_id, e.logprob), "top_logprobs": [one(t, lp) for t, lp in e.top]} for e in entries]
    }


def message_body(result: ChatResult, *, raw_reasoning: bool) -> dict[str, Any]:
    """``common_chat_msg::to_json_oaicompat``: role, reasoning_content (only if non-empty), content (null when
    there are tool calls and no text), tool_calls (only if any; keys type, function, id)."""
    content = result.content or ""
    message: dict[str, Any] = {"role": "assistant"}
    if raw_reasoning:
        if result.reasoning:
            content = RAW_REASONING_START + result.reasoning + RAW_REASONING_END + content
    elif reasoning := strip_reasoning(result.reasoning or ""):
        message["reasoning_content"] = reasoning
    message["content"] = None if not content and result.tool_calls else content
    if result.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}, "id": new_tool_call_id()}
            for c in result.tool_calls
        ]
    return message


def completion_body(
    result: ChatResult,
    *,
    completion_id: str,
    model: str,
    settings: Dat1Settings,
    n_probs: int = 0,
    raw_reasoning: bool = False,
    timings: bool = True,
    cache_n: int = 0,
) -> dict[str, Any]:
    """``to_json_oaicompat_chat``: choices, created, model, system_fingerprint, object, usage, id, timings."""
    era = settings.stream_era
    choice: dict[str, Any] = {
        "finish_reason": finish_reason(result.finish_reason),
        "index": 0,
        "message": message_body(result, raw_reasoning=raw_reasoning),
    }
    if n_probs > 0 and result.logprobs:
        choice["logprobs"] = probs_body(result.logprobs)
    usage = result.usage
    body: dict[str, Any] = {
        "choices": [choice],
        "created": now(),
        "model": model,
        "system_fingerprint": settings.system_fingerprint,
        "object": "chat.completion",
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, era=era, cache_n=cache_n),
        "id": completion_id,
    }
    if timings:
        t = result.timings
        prompt_n = usage.prompt_tokens - cache_n
        body["timings"] = timings_body(
            prompt_n, t.prompt_ms, usage.completion_tokens, t.predicted_ms, era=era, cache_n=cache_n
        )
    return body


# ---- stream encoder ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamOptions:
    completion_id: str
    model: str
    prompt_tokens: int
    n_probs: int = 0
    raw_reasoning: bool = False
    timings: bool = True
    timings_per_token: bool = False
    include_usage: bool = False


def sse_bytes(payload: bytes, event_lines: bool) -> bytes:
    return (b"event: message\n" if event_lines else b"") + b"data: " + payload + b"\n\n"


async def encode_stream(
    events: AsyncIterator[Event], *, settings: Dat1Settings, opts: StreamOptions
) -> AsyncIterator[bytes]:
    """llama-server's chunks (``choices, created, id, model, system_fingerprint, object``): a role chunk
    ``{"role":"assistant","content":null}`` with the first token, one chunk per reasoning/content/tool-call diff,
    then the era's final chunk(s) with usage and timings, then ``data: [DONE]``."""
    era = settings.stream_era
    lines = settings.sse_event_lines

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "choices": [{"finish_reason": reason, "index": 0, "delta": delta}],
            "created": now(),
            "id": opts.completion_id,
            "model": opts.model,
            "system_fingerprint": settings.system_fingerprint,
            "object": "chat.completion.chunk",
        }

    started = False
    raw_state = 0  # raw reasoning: 0 not begun, 1 analysis open, 2 closed
    reasoning_raw, reasoning_sent = "", ""
    predicted_n = 0
    opened = time.time()
    first_token: float | None = None
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.token_ids:
                    predicted_n += len(event.token_ids)
                    first_token = first_token or time.time()
                deltas: list[dict[str, Any]] = []
                if not started:
                    deltas.append({"role": "assistant", "content": None})
                    started = True
                if event.reasoning and opts.raw_reasoning:
                    deltas.append({"content": (RAW_REASONING_START if raw_state == 0 else "") + event.reasoning})
                    raw_state = 1
                elif event.reasoning:
                    reasoning_raw += event.reasoning
                    stripped = strip_reasoning(reasoning_raw)
                    if len(stripped) > len(reasoning_sent):
                        deltas.append({"reasoning_content": stripped[len(reasoning_sent) :]})
                        reasoning_sent = stripped
                closing = ""
                if raw_state == 1 and (event.content or event.tool_calls):
                    closing, raw_state = RAW_REASONING_END, 2
                if event.content or closing:
                    deltas.append({"content": closing + event.content})
                for part in event.tool_calls:
                    call: dict[str, Any] = {"index": part.index}
                    if part.id is not None:
                        call["id"] = new_tool_call_id()
                        call["type"] = "function"
                        call["function"] = {"name": part.name, "arguments": part.arguments}
                    elif part.arguments:
                        call["function"] = {"arguments": part.arguments}
                    else:
                        continue
                    deltas.append({"tool_calls": [call]})
                if not deltas:
                    continue
                chunks = [chunk(d) for d in deltas]
                last = chunks[-1]
                if opts.n_probs > 0 and event.logprobs:
                    last["choices"][0]["logprobs"] = probs_body(event.logprobs)
                if opts.timings_per_token and opts.timings:
                    at = time.time()
                    first = first_token or at
                    last["timings"] = timings_body(
                        opts.prompt_tokens, (first - opened) * 1000.0, predicted_n, (at - first) * 1000.0, era=era
                    )
                for body in chunks:
                    yield sse_bytes(dumps(body), lines)
                continue
            finish: Finish = event
            if finish.reason == "error":
                info = {"code": 500, "message": finish.error or "Generation failed.", "type": "server_error"}
                if era == "C":  # a `data:` event with the envelope, and no [DONE]
                    yield sse_bytes(dumps({"error": info}), lines)
                    return
                yield b"error: " + dumps(info) + b"\n\n"
                break
            usage = finish.usage
            final = chunk({}, finish_reason(finish.reason))
            out = [final]
            usage_json = usage_body(usage.prompt_tokens, usage.completion_tokens, era=era)
            if era == "A":
                final["usage"] = usage_json
            elif era == "B" or opts.include_usage:
                out.append({**chunk({}), "choices": [], "usage": usage_json})
            if opts.timings:
                t = finish.timings
                out[-1]["timings"] = timings_body(
                    usage.prompt_tokens, t.prompt_ms, usage.completion_tokens, t.predicted_ms, era=era
                )
            if not started and usage.completion_tokens:
                out.insert(0, chunk({"role": "assistant", "content": None}))
            for body in out:
                yield sse_bytes(dumps(body), lines)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield sse_bytes(b"[DONE]", lines)


# ---- paths ------------------------------------------------------------------------------------------


async def chat(request: Request, ctx: ServerContext, *, openai_route: bool) -> Response:
    settings = _settings(ctx)
    try:
        body = await read_json_object(request, ctx.settings.limits.max_body_bytes)
    except InvalidRequestError as exc:  # not JSON, or not an object
        raise ParseError(exc.message) from None
    if openai_route:
        # the gateway picks the collection by `model`
        name = body.get("model")
        if isinstance(name, str) and name not in settings.openai_models:
            raise ModelNotFoundError(name)
    completion_id = new_id()
    parsed = parse_request(body, settings, request_id=completion_id)
    prepared = prepare(ctx, parsed.chat)
    timings = settings.openai_route_timings or not openai_route
    if parsed.stream:
        events = await open_stream(ctx, prepared)
        opts = StreamOptions(
            completion_id=completion_id,
            model=parsed.model,
            prompt_tokens=len(prepared.prompt_token_ids),
            n_probs=parsed.n_probs,
            raw_reasoning=parsed.raw_reasoning,
            timings=timings,
            timings_per_token=parsed.timings_per_token,
            include_usage=parsed.include_usage,
        )
        # llama-server's content type has no charset parameter
        headers = {"Content-Type": "text/event-stream"}
        return sse_response(encode_stream(events, settings=settings, opts=opts), headers=headers)
    result = await complete(ctx, request, prepared)
    payload = completion_body(
        result,
        completion_id=completion_id,
        model=parsed.model,
        settings=settings,
        n_probs=parsed.n_probs,
        raw_reasoning=parsed.raw_reasoning,
        timings=timings,
    )
    return Response(dumps(payload), media_type=JSON_TYPE)


def router(ctx: ServerContext) -> APIRouter:
    settings = _settings(ctx)
    api = APIRouter(route_class=error_route_class(render_error))

    @api.post(f"{BASE}/{settings.collection}/invoke-chat", dependencies=[Depends(authenticate_key)])
    async def invoke_chat(request: Request, ctx: Ctx) -> Response:
        return await chat(request, ctx, openai_route=False)

    if settings.openai_route:

        @api.post(OPENAI_PATH, dependencies=[Depends(authenticate_bearer)])
        async def openai_chat_completions(request: Request, ctx: Ctx) -> Response:
            return await chat(request, ctx, openai_route=True)

    return api


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.dat1.enabled,
    router=router,
    paths=f"{BASE}/gpt-120-oss/invoke-chat, {OPENAI_PATH}",
    prefixes=lambda ctx: (BASE,),
    render_error=render_error,
)
