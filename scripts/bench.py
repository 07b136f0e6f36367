#!/usr/bin/env python3
"""Serving benchmark: drive concurrent chat requests at one or more targets and report latency/throughput.

Targets are our server's routes (OpenAI ``/v1`` and every provider route) or vLLM's own OpenAI server. A per-route
adapter (``ROUTES``) knows each route's path, auth header, request body and stream shape.

Metric definitions (as ``vllm bench serve`` and GuideLLM use them, so figures are comparable):

- **TTFT**: request sent -> first streamed event that carries output (non-empty text, reasoning or tool-call
  arguments). Role-only chunks do not count: our server sends its role chunk before prefill, vLLM after the first
  token, so counting it would flatter us.
- **ITL** (inter-token latency): the gaps between successive output-bearing events of a request, pooled over all
  requests. A server that batches several tokens into one event shows fewer, longer gaps.
- **TPOT**: ``(e2e - ttft) / (output_tokens - 1)`` per request (requests with more than one output token).
- **E2E**: request sent -> last event (the terminator) received.
- **requests/s** = successful requests / benchmark duration; **output tokens/s** = total output tokens / benchmark
  duration, where the duration runs from the first request sent to the last response finished (warm-up excluded).
- Output tokens are the route's ``usage.completion_tokens`` when it reports one, else the o200k token count of
  the streamed text (an estimate: that text excludes harmony control tokens).
- Percentiles use linear interpolation between closest ranks (numpy's default).

Subcommands: ``run`` (load one or more targets), ``ceiling`` (front-end ceiling: our server with the scripted engine
against a bare FastAPI SSE app, CPU-normalised). ``python scripts/bench.py run --help`` lists the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Messages = list[dict[str, Any]]
Json = dict[str, Any]

# ---- route adapters -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What one SSE payload (or a non-streaming body) says: output text, token count if given, done, error."""

    text: str = ""
    completion_tokens: int | None = None
    done: bool = False
    error: str | None = None


def openai_delta_text(delta: Json) -> str:
    """Output text of an OpenAI-style delta or message: content, reasoning and tool-call arguments."""
    parts = [delta.get("content") or "", delta.get("reasoning") or "", delta.get("reasoning_content") or ""]
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") or {}
        parts.append((fn.get("name") or "") + (fn.get("arguments") or ""))
    return "".join(parts)


def _usage_tokens(payload: Json) -> int | None:
    usage = payload.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return int(usage["completion_tokens"])
    return None


def _error_of(payload: Json) -> str | None:
    err = payload.get("error")
    if err is None:
        return None
    return str(err.get("message") if isinstance(err, dict) else err)


def parse_openai_event(payload: Json) -> EventInfo:
    """One OpenAI-style chunk (OpenAI, vLLM, E2E, AI/ML API, Oxen, dat1)."""
    error = _error_of(payload)
    text = ""
    done = False
    for choice in payload.get("choices") or ():
        text += openai_delta_text(choice.get("delta") or {})
        done = done or choice.get("finish_reason") is not None
    return EventInfo(text, _usage_tokens(payload), done, error)


def parse_openai_body(body: Json) -> EventInfo:
    text = "".join(openai_delta_text(c.get("message") or {}) for c in body.get("choices") or ())
    return EventInfo(text, _usage_tokens(body), True, _error_of(body))


def parse_dataoorts_event(payload: Json) -> EventInfo:
    """Workers AI style: ``{"response": text}`` events, a final ``{"response": "", "usage": ...}``."""
    errors = payload.get("errors")
    error = str(errors[0].get("message")) if errors and payload.get("success") is False else _error_of(payload)
    text = (payload.get("response") or "") + (payload.get("reasoning") or "")
    for call in payload.get("tool_calls") or ():
        text += str(call.get("name") or "") + str(call.get("arguments") or "")
    tokens = _usage_tokens(payload)
    return EventInfo(text, tokens, tokens is not None, error)


def parse_dataoorts_body(body: Json) -> EventInfo:
    result = body.get("result") or {}
    info = parse_dataoorts_event(result)
    errors = body.get("errors") or []
    error = str(errors[0].get("message")) if errors else None
    return EventInfo(info.text, info.completion_tokens, True, error)


@dataclass(frozen=True, slots=True)
class Route:
    """How to talk to one chat route."""

    name: str
    path: str
    model: str | None  # the body's model name; None when the route takes none
    auth_header: Callable[[str], dict[str, str]]
    # (messages, stream, max_tokens) -> body, asking for exactly max_tokens tokens where the route allows it
    body: Callable[[Messages, bool, int], Json]
    parse_event: Callable[[Json], EventInfo]
    parse_body: Callable[[Json], EventInfo]
    exact_tokens: bool  # honours ignore_eos/min_tokens: every request yields exactly max_tokens
    terminator: bytes = b"[DONE]"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


def _openai_like(model: str | None, *, exact: bool, usage: bool = True) -> Callable[[Messages, bool, int], Json]:
    def build(messages: Messages, stream: bool, max_tokens: int) -> Json:
        body: Json = {} if model is None else {"model": model}
        body.update(messages=messages, stream=stream, max_tokens=max_tokens)
        if exact:
            body.update(ignore_eos=True, min_tokens=max_tokens)
        if stream and usage:
            body["stream_options"] = {"include_usage": True}
        return body

    return build


# Some routes apply their provider's sampling defaults (dat1: llama-server's temperature 0.8, top_k 40, top_p 0.95,
# min_p 0.05; Dataoorts: temperature 0.6). Top-k/top-p/min-p make vLLM's sampler much slower on the CPU, which is
# not a front-end cost: the bench pins the OpenAI defaults so every route runs the same sampler.
NEUTRAL_SAMPLING: Json = {"temperature": 1.0, "top_p": 1.0}
DAT1_NEUTRAL_SAMPLING: Json = {**NEUTRAL_SAMPLING, "top_k": 0, "min_p": 0.0}  # llama-server: top_k <= 0 is off


def _dat1_body(messages: Messages, stream: bool, max_tokens: int) -> Json:
    # llama-server honours ignore_eos (no min_tokens); include_usage: the usage chunk in every build era
    body: Json = {"messages": messages, "stream": stream, "max_tokens": max_tokens, "ignore_eos": True}
    body.update(DAT1_NEUTRAL_SAMPLING)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _dataoorts_body(messages: Messages, stream: bool, max_tokens: int) -> Json:
    data = {"messages": messages, "stream": stream, "max_tokens": max_tokens, **NEUTRAL_SAMPLING}
    return {"model": "openai/gpt-oss-120b", "data": data}


E2E_BASE = "/project/p-5915/genai/gpt_oss_120b/v1"

ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("openai", "/v1/chat/completions", "gpt-oss-120b", bearer,
              _openai_like("gpt-oss-120b", exact=True), parse_openai_event, parse_openai_body, True),
        # vLLM's own OpenAI server (the peer): same wire as ours
        Route("vllm", "/v1/chat/completions", "gpt-oss-120b", bearer,
              _openai_like("gpt-oss-120b", exact=True), parse_openai_event, parse_openai_body, True),
        Route("dat1", "/api/v1/collection/gpt-120-oss/invoke-chat", None, x_api_key,
              _dat1_body, parse_openai_event, parse_openai_body, True),
        Route("aimlapi", "/chat/completions", "openai/gpt-oss-120b", bearer,
              _openai_like("openai/gpt-oss-120b", exact=False), parse_openai_event, parse_openai_body, False),
        Route("e2e", E2E_BASE + "/chat/completions", "gpt_oss_120b", bearer,
              _openai_like("gpt_oss_120b", exact=False), parse_openai_event, parse_openai_body, False),
        Route("dataoorts", "/api/v1", "openai/gpt-oss-120b", bearer,
              _dataoorts_body, parse_dataoorts_event, parse_dataoorts_body, False),
        Route("oxen", "/api/ai/chat/completions", "gpt-oss-120b", bearer,
              _openai_like("gpt-oss-120b", exact=False), parse_openai_event, parse_openai_body, False),
    )
}  # fmt: skip
PROVIDER_ROUTES = ("dat1", "aimlapi", "e2e", "dataoorts", "oxen")


def iter_sse_payloads(buffer: bytearray) -> Iterator[bytes]:
    """Pop complete SSE events from ``buffer``; yields each event's ``data`` (``error:`` lines as JSON too)."""
    while True:
        buffer[:] = buffer.replace(b"\r\n", b"\n") if b"\r" in buffer else buffer
        end = buffer.find(b"\n\n")
        if end < 0:
            return
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        data = [line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            yield b"\n".join(data)
        elif block.startswith(b"error:"):
            yield b'{"error": ' + block[6:].strip() + b"}"


# ---- prompts --------------------------------------------------------------------------------------------------

_WORD_TEXT = (
    "river stone lantern orchard violet ember harbor quiet meadow copper falcon willow granite saffron thunder "
    "compass velvet marble juniper cobalt prairie cedar glacier amber beacon canyon dune fern gravel hollow ivory "
    "jasmine kestrel lagoon mosaic nectar opal pebble quartz raven sierra tundra umber valley walnut yarrow zephyr"
)
_WORDS = tuple(_WORD_TEXT.split())


@functools.cache
def exact_prompt(n_tokens: int, seed: int = 0) -> str:
    """A user text that is exactly ``n_tokens`` tokens in the o200k_harmony encoding (varied by ``seed``)."""
    from server.harmony.encoding import get_encoding

    encoding = get_encoding()
    rng = random.Random(seed)
    words = [f"Request {seed}:", *(rng.choice(_WORDS) for _ in range(n_tokens + 8))]
    tokens = encoding.encode(" ".join(words))
    for cut in range(n_tokens, max(n_tokens - 8, 0), -1):
        text = encoding.decode(tokens[:cut])
        count = len(encoding.encode(text))
        for _ in range(16):
            if count >= n_tokens:
                break
            text += " " + rng.choice(_WORDS)
            count = len(encoding.encode(text))
        if count == n_tokens:
            return text
    raise ValueError(f"could not build a prompt of exactly {n_tokens} tokens")


def count_tokens(text: str) -> int:
    from server.harmony.encoding import get_encoding

    return len(get_encoding().encode(text, disallowed_special=())) if text else 0


# ---- metrics --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(slots=True)
class RequestResult:
    ok: bool
    start: float  # perf_counter at send
    end: float = 0.0
    ttft: float | None = None
    first_chunk: float | None = None  # first event with non-empty ``choices`` (vllm bench serve's TTFT)
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    exact_tokens_reported: bool = False  # output_tokens came from the route's usage
    text_events: int = 0
    error: str | None = None
    text: str = ""

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


@dataclass(slots=True)
class Summary:
    requests: int
    successes: int
    errors: int
    duration_s: float
    requests_per_s: float
    output_tokens: int
    output_tokens_per_s: float
    mean_output_tokens: float
    ttft_ms: dict[str, float]
    first_chunk_ms: dict[str, float]
    itl_ms: dict[str, float]
    tpot_ms: dict[str, float]
    e2e_ms: dict[str, float]
    events_per_request: float
    first_errors: list[str]


def _ms(values: Sequence[float], qs: Sequence[int]) -> dict[str, float]:
    out = {f"p{q}": round(percentile(values, q) * 1000.0, 3) for q in qs}
    out["mean"] = round(sum(values) / len(values) * 1000.0, 3) if values else math.nan
    return out


def summarize(results: Sequence[RequestResult]) -> Summary:
    """Aggregate per-request results; duration runs from the first send to the last finished response."""
    good = [r for r in results if r.ok]
    duration = max(r.end for r in results) - min(r.start for r in results) if results else 0.0
    tokens = sum(r.output_tokens for r in good)
    rate = (lambda x: x / duration) if duration > 0 else (lambda x: math.nan)
    return Summary(
        requests=len(results),
        successes=len(good),
        errors=len(results) - len(good),
        duration_s=round(duration, 4),
        requests_per_s=rate(len(good)),
        output_tokens=tokens,
        output_tokens_per_s=rate(tokens),
        mean_output_tokens=tokens / len(good) if good else math.nan,
        ttft_ms=_ms([r.ttft for r in good if r.ttft is not None], (50, 90, 99)),
        first_chunk_ms=_ms([r.first_chunk for r in good if r.first_chunk is not None], (50, 99)),
        itl_ms=_ms([gap for r in good for gap in r.itl], (50, 99)),
        tpot_ms=_ms([t for r in good if (t := r.tpot) is not None], (50, 99)),
        e2e_ms=_ms([r.e2e for r in good], (50, 99)),
        events_per_request=sum(r.text_events for r in good) / len(good) if good else math.nan,
        first_errors=[r.error or "?" for r in results if not r.ok][:3],
    )


# ---- load generator -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    base_url: str
    route: Route
    api_key: str = ""


def parse_target(spec: str, default_key: str = "") -> Target:
    """``[label=]route@http://host:port`` -> Target (label defaults to the route name)."""
    label, _, rest = spec.rpartition("=") if "=" in spec.split("@", 1)[0] else ("", "", spec)
    route_name, _, url = rest.partition("@")
    if route_name not in ROUTES or not url:
        raise ValueError(f"bad target {spec!r}: want [label=]ROUTE@URL with ROUTE in {sorted(ROUTES)}")
    return Target(label or route_name, url.rstrip("/"), ROUTES[route_name], default_key)


async def one_request(session: Any, target: Target, prompt: str, max_tokens: int, stream: bool) -> RequestResult:
    """Send one chat request and time its stream."""
    import aiohttp

    route = target.route
    body = orjson.dumps(route.body([{"role": "user", "content": prompt}], stream, max_tokens))
    headers = {"Content-Type": "application/json", **route.auth_header(target.api_key)}
    start = time.perf_counter()
    result = RequestResult(ok=False, start=start)
    text_parts: list[str] = []
    last_event: float | None = None
    try:
        async with session.post(target.base_url + route.path, data=body, headers=headers) as resp:
            if resp.status != 200:
                result.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                result.end = time.perf_counter()
                return result
            if not stream:
                info = route.parse_body(orjson.loads(await resp.read()))
                result.end = time.perf_counter()
                text_parts.append(info.text)
                result.ttft = result.end - start
                result.error = info.error
                if info.completion_tokens is not None:
                    result.output_tokens, result.exact_tokens_reported = info.completion_tokens, True
            else:
                buffer = bytearray()
                terminated = False
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    buffer += chunk
                    for data in iter_sse_payloads(buffer):
                        if data.strip() == route.terminator:
                            terminated = True
                            continue
                        payload = orjson.loads(data)
                        if result.first_chunk is None and (payload.get("choices") or "response" in payload):
                            result.first_chunk = now - start
                        info = route.parse_event(payload)
                        if info.error is not None:
                            result.error = info.error
                        if info.completion_tokens is not None:
                            result.output_tokens, result.exact_tokens_reported = info.completion_tokens, True
                        if info.text:
                            text_parts.append(info.text)
                            result.text_events += 1
                            if result.ttft is None:
                                result.ttft = now - start
                            elif last_event is not None:
                                result.itl.append(now - last_event)
                            last_event = now
                result.end = time.perf_counter()
                if not terminated and result.error is None and route.terminator:
                    result.error = "stream ended without its terminator"
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        result.error = f"{exc.__class__.__name__}: {exc}"
        result.end = time.perf_counter()
        return result
    result.text = "".join(text_parts)
    if not result.exact_tokens_reported:
        result.output_tokens = count_tokens(result.text)
    result.ok = result.error is None
    return result


@dataclass(slots=True)
class Scenario:
    concurrency: int
    num_requests: int
    prompt_tokens: int = 128
    output_tokens: int = 64
    stream: bool = True
    warmup: int = 2
    time_limit_s: float = 300.0  # stop sending new requests after this


async def run_scenario(target: Target, sc: Scenario, *, progress: bool = True, seed: int = 0) -> list[RequestResult]:
    """Warm up, then ``num_requests`` requests with at most ``concurrency`` in flight (bounded in time)."""
    import aiohttp

    prompts = [exact_prompt(sc.prompt_tokens, seed + i) for i in range(sc.num_requests + sc.warmup)]
    timeout = aiohttp.ClientTimeout(total=sc.time_limit_s + 120)
    connector = aiohttp.TCPConnector(limit=max(sc.concurrency, 1) + 4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        if sc.warmup:
            warm = [one_request(session, target, p, sc.output_tokens, sc.stream) for p in prompts[: sc.warmup]]
            await asyncio.gather(*warm)
        bar = _progress(sc.num_requests, f"{target.label} c={sc.concurrency}", progress)
        sem = asyncio.Semaphore(sc.concurrency)
        deadline = time.perf_counter() + sc.time_limit_s
        results: list[RequestResult] = []

        async def worker(prompt: str) -> None:
            async with sem:
                if time.perf_counter() > deadline:
                    return
                results.append(await one_request(session, target, prompt, sc.output_tokens, sc.stream))
                bar.update(1)

        await asyncio.gather(*(worker(p) for p in prompts[sc.warmup :]))
        bar.close()
    return results


def run_frugal(
    target: Target, sc: Scenario, *, seed: int = 0, poll_s: float = 0.01, spread: float = 0.0
) -> list[RequestResult]:
    """A load generator that spends as little CPU as it can, for CPU-bound front-end measurements on few cores.

    One thread, plain non-blocking sockets, one ``Connection: close`` request per connection. It reads every
    ``poll_s`` whatever each socket holds (several events per ``recv``), and parses only at the end: the HTTP status,
    ``[DONE]``, the usage chunk's ``completion_tokens`` and the number of content/reasoning events. No TTFT or ITL
    (a lazy reader cannot time events); what it measures is throughput, with the cores left to the server.

    ``spread`` (0..1) varies the requests' lengths, deterministically by index, between ``(1 - spread) *
    output_tokens`` and ``output_tokens``: requests of one length that start together also end together, and a
    process then idles until the lazy client notices and sends the next ones.
    """
    import re
    import selectors
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(target.base_url)
    address = (url.hostname or "127.0.0.1", url.port or 80)

    def length(i: int) -> int:
        span = int(sc.output_tokens * spread)
        return sc.output_tokens - (i * 7919) % span if span > 0 else sc.output_tokens

    def raw(prompt: str, max_tokens: int) -> bytes:
        body = orjson.dumps(target.route.body([{"role": "user", "content": prompt}], True, max_tokens))
        head = {"Host": f"{address[0]}:{address[1]}", "Content-Type": "application/json", "Connection": "close",
                "Content-Length": str(len(body)), **target.route.auth_header(target.api_key)}  # fmt: skip
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        return f"POST {target.route.path} HTTP/1.1\r\n{lines}\r\n".encode() + body

    def finish(result: RequestResult, chunks: list[bytes]) -> RequestResult:
        data = b"".join(chunks)
        result.end = time.perf_counter()
        usage = re.findall(rb'"completion_tokens":(\d+)', data[-4096:])
        if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")) or target.route.terminator not in data[-256:]:
            result.error = data[:300].decode("utf-8", "replace")
        elif not usage:
            result.error = "no usage chunk"
        else:
            result.ok, result.output_tokens, result.exact_tokens_reported = True, int(usage[-1]), True
            result.text_events = data.count(b'"delta":{"content":') + data.count(b'"delta":{"reasoning')
        return result

    count = sc.warmup + sc.num_requests
    requests = [raw(exact_prompt(sc.prompt_tokens, seed + i), length(i)) for i in range(count)]
    selector = selectors.DefaultSelector()
    results: list[RequestResult] = []
    deadline = time.perf_counter() + sc.time_limit_s

    def drive(batch: list[bytes], keep: bool) -> None:
        queue = iter(batch)
        live: dict[socket.socket, tuple[RequestResult, list[bytes]]] = {}

        def start() -> None:
            while (request := next(queue, None)) is not None and time.perf_counter() <= deadline:
                result = RequestResult(ok=False, start=time.perf_counter())
                try:
                    sock = socket.create_connection(address, timeout=10)
                    sock.sendall(request)
                except OSError as exc:  # refused, reset: this request failed, the next one takes its place
                    result.end, result.error = time.perf_counter(), f"{type(exc).__name__}: {exc}"
                    if keep:
                        results.append(result)
                    continue
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
                live[sock] = (result, [])
                return

        for _ in range(sc.concurrency):
            start()
        while live:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                result, chunks = live[sock]
                try:  # readable: one recv takes what has come (what is left over is there next round)
                    data = sock.recv(1 << 16)
                except OSError as exc:
                    data, result.error = b"", f"{type(exc).__name__}: {exc}"
                chunks.append(data)
                if not data:
                    selector.unregister(sock)
                    sock.close()
                    del live[sock]
                    done = finish(result, chunks) if result.error is None else result
                    if keep:
                        results.append(done)
                    start()
            time.sleep(poll_s)

    drive(requests[: sc.warmup], keep=False)
    drive(requests[sc.warmup :], keep=True)
    selector.close()
    return results


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def check_token_counts(results: Sequence[RequestResult], route: Route, expected: int) -> str | None:
    """A warning when a route that promises exact output lengths did not deliver them."""
    good = [r for r in results if r.ok]
    off = [r.output_tokens for r in good if r.output_tokens != expected]
    if route.exact_tokens and off:
        return f"{len(off)}/{len(good)} requests did not produce exactly {expected} tokens (e.g. {off[:5]})"
    if not route.exact_tokens and off:
        return f"route cannot force the length: {len(off)}/{len(good)} requests ended before {expected} tokens"
    return None


# ---- process helpers (servers started as child processes) -----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


@contextlib.contextmanager
def child_server(
    argv: list[str], health_url: str, log_path: Path, env: dict[str, str] | None = None, ready_timeout: float = 900
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (own session), wait for its health URL, terminate it (and its group) at exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_ready(health_url, ready_timeout, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and all its descendants (live ones)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
    except psutil.Error:
        pass
    return total


# ---- output ---------------------------------------------------------------------------------------------------


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if not callable(v) and k != "api_key"}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def bar_chart(path: Path, title: str, panels: dict[str, dict[str, dict[str, float]]]) -> None:
    """One panel per metric; groups on the x axis (e.g. concurrency), one bar per series (e.g. target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (metric, series) in zip(axes[0], panels.items(), strict=True):
        groups = sorted({g for values in series.values() for g in values}, key=_natural)
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            xs = [j + i * width for j in range(len(groups))]
            ax.bar(xs, [values.get(g, math.nan) for g in groups], width, label=name)
        ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))], groups)
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _natural(value: str) -> tuple[int, str]:
    digits = "".join(ch for ch in value if ch.isdigit())
    return (int(digits) if digits else 0, value)


def format_row(label: str, concurrency: int, s: Summary) -> str:
    return (
        f"{label:<18} c={concurrency:<3} ok={s.successes:<4} err={s.errors:<3} req/s={s.requests_per_s:7.2f} "
        f"tok/s={s.output_tokens_per_s:8.1f} ttft p50/p90/p99={s.ttft_ms['p50']:.0f}/{s.ttft_ms['p90']:.0f}/"
        f"{s.ttft_ms['p99']:.0f}ms itl p50/p99={s.itl_ms['p50']:.1f}/{s.itl_ms['p99']:.1f}ms "
        f"e2e p50/p99={s.e2e_ms['p50']:.0f}/{s.e2e_ms['p99']:.0f}ms tok/req={s.mean_output_tokens:.1f}"
    )


# ---- `run` ----------------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    targets = [parse_target(spec, args.api_key) for spec in args.target]
    out: dict[str, Any] = {"config": config_of(args), "results": []}
    panels: dict[str, dict[str, dict[str, float]]] = {"output tokens/s": {}, "TTFT p50 (ms)": {}, "ITL p50 (ms)": {}}
    for concurrency in args.concurrency:
        for target in targets:
            n = args.num_requests or max(16, args.requests_per_concurrency * concurrency)
            sc = Scenario(
                concurrency, n, args.prompt_tokens, args.output_tokens, not args.no_stream, args.warmup, args.time_limit
            )
            results = asyncio.run(run_scenario(target, sc, progress=not args.no_progress))
            summary = summarize(results)
            warning = check_token_counts(results, target.route, args.output_tokens)
            print(format_row(target.label, concurrency, summary) + (f"  [{warning}]" if warning else ""))
            out["results"].append(
                {"target": target.label, "route": target.route.name, "concurrency": concurrency,
                 "summary": asdict(summary), "warning": warning}
            )  # fmt: skip
            panels["output tokens/s"].setdefault(target.label, {})[f"c={concurrency}"] = summary.output_tokens_per_s
            panels["TTFT p50 (ms)"].setdefault(target.label, {})[f"c={concurrency}"] = summary.ttft_ms["p50"]
            panels["ITL p50 (ms)"].setdefault(target.label, {})[f"c={concurrency}"] = summary.itl_ms["p50"]
    out_dir = Path(args.out_dir)
    write_json(out_dir / f"{args.name}.json", out)
    bar_chart(out_dir / f"{args.name}.png", f"{args.name}: {args.prompt_tokens} in / {args.output_tokens} out", panels)
    print(f"wrote {out_dir / (args.name + '.json')} and .png")
    return 0


# ---- `ceiling` ------------------------------------------------------------------------------------------------

CEILING_CONFIG = """\
engine:
  kind: scripted
  served_model_name: gpt-oss-120b
  scripted:
    mode: echo
    token_delay_s: 0.0
    max_model_len: 1000000
limits:
  stream_interval: 1
  max_concurrent_requests: 4096
  # every repetition sends the same prompts and the bare app tokenizes each one: so does ours (no token cache)
  render_cache_bytes: 0
auth:
  api_keys_env: GPTOSS_BENCH_UNUSED_KEYS
"""


def ceiling_target(label: str, url: str) -> Target:
    return Target(label, url, ROUTES["openai"])


def measure_ceiling(
    label: str, url: str, pid: int, sc: Scenario, progress: bool, poll_s: float | None, spread: float = 0.0
) -> tuple[Summary, float, float, float]:
    """Run one scenario: its summary, the server's and the client's CPU seconds during it (warm-up excluded), and
    the fraction of the machine's cores that were busy meanwhile. ``poll_s``: the frugal client's poll interval
    (None: the timing client), ``spread`` its variation of request lengths."""
    target = ceiling_target(label, url)
    warm = Scenario(sc.concurrency, sc.warmup or 1, sc.prompt_tokens, sc.output_tokens, True, 0, sc.time_limit_s)
    measured = Scenario(**{**asdict(sc), "warmup": 0})

    def load(scenario: Scenario, show: bool) -> list[RequestResult]:
        if poll_s is not None:
            return run_frugal(target, scenario, poll_s=poll_s, spread=spread)
        return asyncio.run(run_scenario(target, scenario, progress=show))

    load(warm, False)
    for i in range(measured.num_requests):
        exact_prompt(measured.prompt_tokens, i)  # built (and cached) before the clocks start
    cpu0, client0, machine0 = cpu_seconds(pid), time.process_time(), machine_busy()
    results = load(measured, progress)
    busy = tuple(b - a for a, b in zip(machine0, machine_busy(), strict=True))
    return summarize(results), cpu_seconds(pid) - cpu0, time.process_time() - client0, busy[0] / max(busy[1], 1e-9)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from ``/proc/stat``."""
    import psutil

    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle, sum(t)


def ceiling_servers(tmp: Path, api_processes: Sequence[int]) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, base URL): the bare app, and our server once per API-process count (``ours``, ``ours-2p``...)."""
    py = sys.executable
    port = free_port()
    servers = {"bare": ([py, str(REPO / "scripts" / "bare_sse.py"), "--port", str(port)], f"http://127.0.0.1:{port}")}
    for count in api_processes:
        name = "ours" if count == 1 else f"ours-{count}p"
        config = tmp / f"{name}.yaml"
        config.write_text(CEILING_CONFIG + (f"server:\n  api_processes: {count}\n" if count > 1 else ""))
        port = free_port()
        argv = [py, "-m", "server", "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
        servers[name] = (argv, f"http://127.0.0.1:{port}")
    return servers


def cmd_ceiling(args: argparse.Namespace) -> int:
    """Our server (scripted engine, no model compute) vs a bare FastAPI SSE app streaming the same bytes."""
    out_dir = Path(args.out_dir)
    servers = ceiling_servers(Path(tempfile.mkdtemp(prefix="bench-ceiling-")), args.api_processes)
    poll_s = args.poll_ms / 1000.0 if args.client == "frugal" else None
    report: dict[str, Any] = {"config": config_of(args), "runs": []}
    with contextlib.ExitStack() as stack:
        procs = {
            name: stack.enter_context(child_server(argv, url + "/health", out_dir / f"ceiling-{name}.log", None, 120))
            for name, (argv, url) in servers.items()
        }
        for rep in range(args.repetitions):
            for concurrency in args.concurrency:
                for name in servers:
                    n = args.num_requests or max(args.min_requests, args.requests_per_concurrency * concurrency)
                    sc = Scenario(concurrency, n, args.output_tokens, args.output_tokens, True, 2, args.time_limit)
                    progress = not args.no_progress
                    summary, cpu, client_cpu, busy = measure_ceiling(
                        name, servers[name][1], procs[name].pid, sc, progress, poll_s, args.spread
                    )
                    per_core = summary.output_tokens / cpu if cpu > 0 else math.nan
                    print(
                        f"rep {rep} {name:<7} c={concurrency:<3} tok/s={summary.output_tokens_per_s:8.0f} "
                        f"server cpu={cpu:6.2f}s tok/s/core={per_core:8.0f} client cpu={client_cpu:5.2f}s "
                        f"cores busy={busy:.0%} "
                        f"events/req={summary.events_per_request:.1f} tok/req={summary.mean_output_tokens:.0f} "
                        f"err={summary.errors}"
                    )
                    report["runs"].append(
                        {"rep": rep, "server": name, "concurrency": concurrency, "server_cpu_s": cpu,
                         "client_cpu_s": client_cpu, "machine_busy": busy, "tokens_per_cpu_s": per_core,
                         "summary": asdict(summary)}
                    )  # fmt: skip
    report["medians"] = ceiling_medians(report["runs"])
    for c, row in report["medians"].items():
        for name in servers:
            if name == "bare":
                continue
            line = (
                f"c={c}: {name} {row[f'{name}_tok_per_core']:.0f} tok/s/core, bare {row['bare_tok_per_core']:.0f} "
                f"-> {name}/bare {row[f'{name}_ratio_per_core']:.3f}; wall tok/s {name} {row[f'{name}_tok_s']:.0f} "
                f"bare {row['bare_tok_s']:.0f}"
            )
            if name != "ours" and "ours_tok_s" in row:
                line += f"; {name}/ours wall tok/s (median of paired reps) {row[f'{name}_scaling']:.2f}x"
            print(line)
    write_json(out_dir / "ceiling.json", report)
    panels = {
        "tokens/s per server core": {
            name: {f"c={c}": row[f"{name}_tok_per_core"] for c, row in report["medians"].items()} for name in servers
        },
        "tokens/s (wall)": {
            name: {f"c={c}": row[f"{name}_tok_s"] for c, row in report["medians"].items()} for name in servers
        },
    }
    bar_chart(out_dir / "ceiling.png", "front-end ceiling: scripted engine vs bare FastAPI SSE", panels)
    print(f"wrote {out_dir / 'ceiling.json'} and .png")
    return 0


def ceiling_medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per concurrency and server: median tokens per server-CPU-second and wall tokens/s; ratios to bare (per
    core) and, for ``ours-Np``, the median over repetitions of its wall tokens/s over ``ours`` (one API process)."""
    out: dict[str, dict[str, float]] = {}
    names = list(dict.fromkeys(r["server"] for r in runs))
    for c in sorted({r["concurrency"] for r in runs}):
        row: dict[str, float] = {}
        # wall tokens/s by (server, repetition): the scaling is paired by repetition (each pair ran back to back, so
        # a drift in machine load hits both alike)
        wall = {
            (r["server"], r.get("rep", 0)): r["summary"]["output_tokens_per_s"] for r in runs if r["concurrency"] == c
        }
        for name in names:
            sel = [r for r in runs if r["concurrency"] == c and r["server"] == name]
            row[f"{name}_tok_per_core"] = percentile([r["tokens_per_cpu_s"] for r in sel], 50)
            row[f"{name}_tok_s"] = percentile([r["summary"]["output_tokens_per_s"] for r in sel], 50)
        for name in names:
            if name != "bare" and "bare" in names:
                row[f"{name}_ratio_per_core"] = row[f"{name}_tok_per_core"] / row["bare_tok_per_core"]
                row[f"{name}_ratio_tok_s"] = row[f"{name}_tok_s"] / row["bare_tok_s"]
            if name.startswith("ours-") and "ours" in names:
                pairs = [v / wall[("ours", rep)] for (n, rep), v in wall.items() if n == name and ("ours", rep) in wall]
                row[f"{name}_scaling"] = percentile(pairs, 50)
        out[str(c)] = row
    return out


# ---- CLI ------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
        q.add_argument("--num-requests", type=int, default=0, help="per scenario; 0: max(16, k * concurrency)")
        q.add_argument("--requests-per-concurrency", type=int, default=4, help="k above")
        q.add_argument("--time-limit", type=float, default=300.0, help="seconds per scenario before sending stops")
        q.add_argument("--out-dir", default="bench-results")
        q.add_argument("--no-progress", action="store_true")

    run = sub.add_parser("run", help="load one or more targets")
    run.add_argument(
        "--target", action="append", required=True,
        help=f"[label=]ROUTE@URL, ROUTE in {sorted(ROUTES)}; repeat to compare (e.g. vllm@http://127.0.0.1:8001)",
    )  # fmt: skip
    run.add_argument("--api-key", default=os.environ.get("BENCH_API_KEY", ""))
    run.add_argument("--prompt-tokens", type=int, default=128)
    run.add_argument("--output-tokens", type=int, default=64)
    run.add_argument("--warmup", type=int, default=2)
    run.add_argument("--no-stream", action="store_true")
    run.add_argument("--name", default="bench")
    common(run)
    run.set_defaults(func=cmd_run)

    ceil = sub.add_parser("ceiling", help="front-end ceiling: scripted engine vs a bare FastAPI SSE app")
    ceil.add_argument("--output-tokens", type=int, default=512, help="tokens per request (one per event)")
    ceil.add_argument("--repetitions", type=int, default=3)
    common(ceil)
    ceil.add_argument("--min-requests", type=int, default=48)
    ceil.add_argument(
        "--api-processes", type=int, nargs="+", default=[1],
        help="our server's server.api_processes; several (e.g. 1 2): one server each, compared",
    )  # fmt: skip
    ceil.add_argument(
        "--client", choices=("frugal", "full"), default="frugal",
        help="frugal: a lazy raw-socket reader that leaves the cores to the servers (throughput only); "
        "full: the timing client of `run` (TTFT/ITL), which costs the server CPU on a small machine",
    )  # fmt: skip
    ceil.add_argument("--poll-ms", type=float, default=10.0, help="the frugal client's poll interval")
    ceil.add_argument(
        "--spread", type=float, default=0.5,
        help="frugal client: request lengths vary between (1 - spread) and 1 times --output-tokens (0: all equal)",
    )  # fmt: skip
    ceil.set_defaults(func=cmd_ceiling, concurrency=[1, 8, 32], requests_per_concurrency=16)
    return p


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the servers this process started are stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
