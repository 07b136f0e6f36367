"""The chat body read as llama-server reads it (``oaicompat_chat_params_parse``, ``params_from_json_cmpl``)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from routes.dat1.constraint import to_ebnf
from routes.dat1.errors import ParseError
from routes.dat1.settings import Dat1Settings
from server.errors import InvalidRequestError
from server.harmony.encoding import get_encoding
from server.http.jsonio import dumps
from server.types import (
    ChatMessage,
    ChatRequest,
    FunctionTool,
    OutputConstraint,
    SamplingOptions,
    ToolCall,
    ToolChoice,
)

log = logging.getLogger(__name__)

N_VOCAB = 201088

MAX_LOGPROBS = 20  # the engine's max_logprobs; llama-server itself has no bound

MAX_TOOLS = 128
MAX_LOGIT_BIAS = 1024

# A text key of logit_bias is tokenized on the event loop (BPE is quadratic in a word's length: a 100k-letter key
# stalls every request for seconds, a million letters crash the tokenizer); llama-server has no bound.
MAX_BIAS_TEXT = 256
TOKEN_ID_KEY = re.compile(r"[+-]?([0-9]+)")  # an object key that strtol reads whole


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


def json_text(value: Any) -> str:
    """``value`` as JSON for an error message (nlohmann's ``dump()``); one nested past 255 levels is only named."""
    try:
        return dumps(value).decode()
    except TypeError:  # orjson's JSONEncodeError: recursion limit
        return "<a value nested too deeply to show>"


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
    n: int = 1  # choices (`n_cmpl`, with Dat1Settings.n_cmpl)


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
        raise ParseError(f"{where}Expected 'message' to be an object, got {json_text(message)}")
    if "role" not in message:
        raise ParseError(f"{where}Missing 'role' in message: {json_text(message)}")
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
                raise ParseError(f"{where}Missing content part type: {json_text(part)}")
            parts.append(_text_field(part, "text", where))
        text = "".join(parts)
    calls: list[ToolCall] = []
    if "tool_calls" in message:
        raw_calls = message["tool_calls"]
        for call in raw_calls if isinstance(raw_calls, list) else [raw_calls]:
            if not isinstance(call, dict) or "type" not in call:
                raise ParseError(f"{where}Missing tool call type: {json_text(call)}")
            if call["type"] != "function":
                raise ParseError(f"{where}Unsupported tool call type: {json_text(call)}")
            function = call.get("function")
            if not isinstance(function, dict):
                raise ParseError(f"{where}Missing tool call function: {json_text(call)}")
            if "name" not in function:
                raise ParseError(f"{where}Missing tool call name: {json_text(call)}")
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
        return ParseError(f"Failed to parse tools: {reason}; tools = {json_text(tools)}")

    if not isinstance(tools, list):
        raise fail(f"Expected 'tools' to be an array, got {json_text(tools)}")
    if len(tools) > MAX_TOOLS:
        raise fail(f"at most {MAX_TOOLS} tools are allowed")
    out: list[FunctionTool] = []
    for tool in tools:
        if not isinstance(tool, dict) or "type" not in tool:
            raise fail(f"Missing tool type: {json_text(tool)}")
        if tool["type"] != "function":
            raise fail(f"Unsupported tool type: {json_text(tool)}")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise fail(f"Missing tool function: {json_text(tool)}")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise fail(f"Invalid function name: {json_text(name)}")
        description = function.get("description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise fail(f"Invalid function parameters: {json_text(tool)}")
        out.append(FunctionTool(name, description if isinstance(description, str) else None, parameters))
    return out


def parse_response_format(body: dict[str, Any]) -> OutputConstraint:
    """``response_format``'s schema over a top-level ``json_schema``, else a GBNF ``grammar`` (a string; any other
    type, or "", is none). ASSUMED (llama-server's parsing, not a capture): a schema wins over a grammar."""
    schema = body.get("json_schema")
    grammar = json_str(body, "grammar", "")
    if schema is not None and grammar:
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
        return OutputConstraint("grammar", grammar=to_ebnf(grammar)) if grammar else OutputConstraint()
    if not isinstance(schema, dict):
        raise ParseError(f"JSON schema conversion failed: expected an object, got {type_name(schema)}")
    return OutputConstraint("json_schema", schema) if schema else OutputConstraint("json_object")


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
            number = TOKEN_ID_KEY.fullmatch(key) if isinstance(value, dict) else None
            if number is not None:  # an object's key is a token id when strtol reads all of it (ASCII digits)
                digits = number[1].lstrip("0") or "0"
                token = int(digits) if len(digits) <= 6 else N_VOCAB  # longer: past the vocabulary (strtol saturates)
                tokens = [token] if token < N_VOCAB and (token == 0 or not key.startswith("-")) else []
            elif len(key) > MAX_BIAS_TEXT:
                raise InvalidRequestError(
                    f"logit_bias text keys may be at most {MAX_BIAS_TEXT} characters long.", param="logit_bias"
                )
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
    if tools and choice != "none" and "grammar" in body:
        raise ParseError("Cannot use custom grammar constraints with tools.")
    if len(messages) >= 2 and messages[-1].role == "assistant" and messages[-2].role == "assistant":
        raise ParseError("Cannot have 2 or more assistant messages at the end of the list.")
    if not settings.n_cmpl and json_int(body, "n", 1) != 1:
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
    if (n_cmpl := json_int(body, "n_cmpl", json_int(body, "n", 1)) if settings.n_cmpl else 1) > settings.n_parallel:
        raise InvalidRequestError("n_cmpl cannot be greater than the number of slots, please increase -np", param="n")

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
        n=max(n_cmpl, 1),  # below 1: one task, no children
    )
