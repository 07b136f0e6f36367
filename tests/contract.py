"""What the contract test needs to know about one provider route.

Each provider adds its cases in ``tests/cases/<provider>.py`` as ``CASES: list[ProviderCase]``; the
contract test (``test_contract.py``) runs the same checks over every case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """A tool call as a client sees it (``id`` as the provider wrote it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class TokenEntry:
    token: str
    logprob: float
    top: list[float]
    token_id: int | None = None  # when the body names it (llama-server's "id", vLLM's return_token_ids)


def openai_reasoning(r: dict[str, Any]) -> str:
    message = r["choices"][0]["message"]
    return str(message.get("reasoning_content") or message.get("reasoning") or "")


def openai_stream_reasoning(payloads: list[dict[str, Any]]) -> str:
    parts = []
    for p in payloads:
        for choice in p.get("choices") or []:
            delta = choice.get("delta") or {}
            parts.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
    return "".join(parts)


def openai_tool_calls(r: dict[str, Any]) -> list[Call]:
    calls = r["choices"][0]["message"].get("tool_calls") or []
    return [Call(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls]


def openai_stream_tool_calls(payloads: list[dict[str, Any]]) -> list[Call]:
    """Deltas folded by ``index``, as the OpenAI SDK folds them: id and name once, arguments appended."""
    calls: dict[int, dict[str, str]] = {}
    for p in payloads:
        for choice in p.get("choices") or []:
            for part in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                function = part.get("function") or {}
                call["id"] = part.get("id") or call["id"]
                call["name"] = function.get("name") or call["name"]
                call["arguments"] += function.get("arguments") or ""
    return [Call(**calls[i]) for i in sorted(calls)]


def openai_finish(r: dict[str, Any]) -> str | None:
    return r["choices"][0]["finish_reason"]  # type: ignore[no-any-return]


def openai_stream_finish(payloads: list[dict[str, Any]]) -> str | None:
    reasons = [c["finish_reason"] for p in payloads for c in p.get("choices") or [] if c.get("finish_reason")]
    return reasons[-1] if reasons else None


def openai_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def openai_logprobs_of(r: dict[str, Any]) -> list[TokenEntry]:
    choice = r["choices"][0]
    entries = (choice.get("logprobs") or {}).get("content") or []
    ids = choice.get("token_ids") or [e.get("id") for e in entries]
    return [
        TokenEntry(e["token"], e["logprob"], [t["logprob"] for t in e["top_logprobs"]], token_id)
        for e, token_id in zip(entries, ids, strict=True)
    ]


@dataclass(frozen=True)
class ProviderCase:
    name: str
    chat_path: str
    # key -> the headers that carry it (the provider's own auth header)
    auth_headers: Callable[[str], dict[str, str]]
    # (messages, stream, extra fields) -> request body
    body: Callable[[Messages, bool, dict[str, Any]], dict[str, Any]]
    # non-streaming JSON body -> answer text
    text_of: Callable[[dict[str, Any]], str]
    # the SSE events' JSON payloads (terminator excluded) -> answer text
    stream_text_of: Callable[[list[dict[str, Any]]], str]
    # asserts the provider's error envelope for the given status
    check_error: Callable[[requests.Response, int], None]
    # key -> another header the route also takes the key in (None: only ``auth_headers``)
    alternate_auth_headers: Callable[[str], dict[str, str]] | None = None
    # a body field set that is out of range for this provider
    invalid_fields: dict[str, Any] = field(default_factory=lambda: {"temperature": 99})
    # field set naming an unknown model; None when the provider's body has no model or any name is served
    unknown_model_fields: dict[str, Any] | None = field(default_factory=lambda: {"model": "no-such-model"})
    unknown_model_status: int = 404
    # a path under chat_path that no route serves (Responses serves every segment there: ``/responses/{id}``)
    unknown_path: str = "/no-such-endpoint"
    # the body's field holding the conversation; True where a plain string there is also valid (one user message)
    conversation_field: str = "messages"
    text_conversation: bool = False
    # False where messages have no ``name`` (a client's is ignored, so a wrongly typed one is no error)
    named_messages: bool = True
    # the stream's last event block; None where the stream has no terminator and its last event is the terminal
    # one (an ``event:`` line naming one of ``terminal_events``)
    terminator: str | None = "data: [DONE]"
    terminal_events: frozenset[str] = frozenset()
    # how a stream is framed: server-sent events, or newline-delimited JSON (one object a line; its last object
    # is the one ``is_last`` says ends the stream)
    stream_format: Literal["sse", "ndjson"] = "sse"
    is_last: Callable[[dict[str, Any]], bool] = lambda payload: False
    # True where the route reads a missing or null field as its zero value, as Go's encoding/json does: a request
    # without a conversation is answered (an empty answer), a message without content is empty
    zero_values: bool = False
    # "browsers" where a body is read as JSON whatever its Content-Type unless a browser sent it (Origin or
    # Sec-Fetch-Mode headers): then JSON is required (415), as everywhere else
    json_media_type: Literal["required", "browsers"] = "required"
    # ---- generation parity (tests/test_parity.py, tests/test_engine_parity.py) ----
    # pins the route module's ids and clocks (given pytest's monkeypatch) so golden files can hold exact bytes
    pin: Callable[[Any], None] | None = None
    # non-streaming JSON / SSE payloads -> reasoning text ("" when the body carries none)
    reasoning_of: Callable[[dict[str, Any]], str] = openai_reasoning
    stream_reasoning_of: Callable[[list[dict[str, Any]]], str] = openai_stream_reasoning
    # False where the provider's format has no reasoning field (then reasoning_of must give "")
    carries_reasoning: bool = True
    # non-streaming JSON / SSE payloads -> tool calls in order
    tool_calls_of: Callable[[dict[str, Any]], list[Call]] = openai_tool_calls
    stream_tool_calls_of: Callable[[list[dict[str, Any]]], list[Call]] = openai_stream_tool_calls
    # non-streaming JSON / SSE payloads -> finish reason (None where the format has none)
    finish_of: Callable[[dict[str, Any]], str | None] = openai_finish
    stream_finish_of: Callable[[list[dict[str, Any]]], str | None] = openai_stream_finish
    # base path for the `openai` SDK (it appends /chat/completions); None: not an OpenAI-shaped route
    sdk_base: str | None = None
    # engine features as this provider documents them; None: not documented (the engine test skips it)
    json_schema_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = field(
        default=lambda schema: {"response_format": openai_json_schema(schema)}
    )
    named_tool_fields: Callable[[str], dict[str, Any]] | None = field(
        default=lambda name: {"tool_choice": {"type": "function", "function": {"name": name}}}
    )
    required_tool_fields: dict[str, Any] | None = field(default_factory=lambda: {"tool_choice": "required"})
    # fields asking for logprobs with `n` alternatives, and the reader of (token, logprob, top logprobs) entries
    logprobs_fields: Callable[[int], dict[str, Any]] | None = None
    logprobs_of: Callable[[dict[str, Any]], list[TokenEntry]] | None = None
    # sampling fields that fix the output length (seed determinism); ignore_eos only where the route allows it
    length_fields: Callable[[int], dict[str, Any]] = field(default=lambda n: {"max_tokens": n})
    ignore_eos: bool = False
    # False where the provider's body has no seed (then no run can be repeated on purpose)
    seeded: bool = True
    # reasoning effort "high" in the provider's spelling
    effort_fields: dict[str, Any] = field(default_factory=lambda: {"reasoning_effort": "high"})
    # the documented sampling fields in the provider's spelling, and what the core must receive (SamplingOptions
    # attributes; "max_tokens" is the engine request's cap)
    sampling_fields: dict[str, Any] = field(default_factory=dict)
    expected_sampling: dict[str, Any] = field(default_factory=dict)
    # field sets outside the provider's documented ranges (each answered 400 in its envelope)
    range_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stream_media_type(self) -> str:
        return "application/x-ndjson" if self.stream_format == "ndjson" else "text/event-stream"

    @property
    def stream_suffix(self) -> str:
        """The file suffix of a stream's golden file."""
        return self.stream_format

    @property
    def stream_end(self) -> str:
        """What a complete stream's bytes end with."""
        return "\n" if self.stream_format == "ndjson" else "\n\n"

    def split_stream(self, raw: str) -> tuple[list[dict[str, Any]], list[str]]:
        """A stream's JSON payloads (the terminator excepted) and its blocks (SSE event blocks or NDJSON lines)."""
        if self.stream_format == "ndjson":
            return ndjson_payloads(raw)
        return sse_payloads(raw, self.terminator)

    def path_with(self, suffix: str = "", query: str = "") -> str:
        """``chat_path`` with ``suffix`` added to its path and ``query`` (``a=1&b=2``) to its query string."""
        path, _, own = self.chat_path.partition("?")
        params = "&".join(q for q in (own, query) if q)
        return path + suffix + (f"?{params}" if params else "")

    def ends_stream(self, block: str) -> bool:
        """Whether an SSE event block (an NDJSON line) is the end of this route's stream: its terminator, a terminal
        event, or the object that ends an NDJSON stream."""
        if self.stream_format == "ndjson":
            return self.is_last(json.loads(block))
        if self.terminator is not None:
            return block == self.terminator
        lines = block.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            return False
        kind = lines[0][len("event: ") :]
        return kind in self.terminal_events and json.loads(lines[1][len("data: ") :]).get("type") == kind


def sse_payloads(raw: str, terminator: str | None = "data: [DONE]") -> tuple[list[dict[str, Any]], list[str]]:
    """Split an SSE body into JSON payloads (the ``data:`` lines of every block, ``event:`` lines or not, the
    terminator excepted); returns (payloads, all event blocks)."""
    blocks = [b for b in raw.split("\n\n") if b]
    payloads = []
    for block in blocks:
        for line in block.split("\n"):
            if line.startswith("data: ") and line != terminator:
                payloads.append(json.loads(line[len("data: ") :]))
    return payloads, blocks


def ndjson_payloads(raw: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Split a newline-delimited JSON body into its objects; returns (objects, lines)."""
    lines = [line for line in raw.split("\n") if line]
    return [json.loads(line) for line in lines], lines


def openai_stream_text(payloads: list[dict[str, Any]]) -> str:
    return "".join((p["choices"][0]["delta"].get("content") or "") for p in payloads if p.get("choices"))
