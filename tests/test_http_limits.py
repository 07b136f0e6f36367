"""HTTP limits at the socket, the JSON media type and CORS, against the production server on 127.0.0.1.

The attack tests run ``python -m server serve`` (``subprocess_server``); the others the session's threaded server,
built by the same ``build_server``. Raw sockets send what an HTTP client would refuse to. While each attack runs, a
probe keeps asking ``GET /live`` on fresh connections: every probe must answer 200 within a 10 s socket timeout (a
generous bound: the guarded server answers in milliseconds), and the latencies are printed, never asserted
(``pytest -s`` shows them). Every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import http.client
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from requests.structures import CaseInsensitiveDict

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer, scripted_settings, subprocess_server, threaded_server

HOST = "127.0.0.1"
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEP_ALIVE_S = 1.0
CAP = 16
# How long the server may take to close a connection past its deadline before the test calls it held open.
CLOSE_SLACK_S = 30.0
PROBE_TIMEOUT_S = 10.0

CASES = all_cases()
MESSAGES = [{"role": "user", "content": "reason"}]
AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


def _config(**server: Any) -> dict[str, Any]:
    return {
        "engine": {"kind": "scripted", "scripted": {"mode": "echo"}},
        "server": {"log_level": "warning", **server},
    }


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default header limits (32 KiB, 100 fields) and connection cap; short timeouts."""
    config = _config(
        header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S, keep_alive_timeout_s=KEEP_ALIVE_S
    )
    with subprocess_server(config, tmp_path_factory.mktemp("limits"), ready_timeout=120) as live:
        yield live


@pytest.fixture(scope="module")
def cap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = _config(max_connections=CAP, header_timeout_s=60, keep_alive_timeout_s=60)
    with subprocess_server(config, tmp_path_factory.mktemp("cap"), ready_timeout=120) as live:
        yield live


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("cors"))
    section = settings.server.model_copy(update={"cors_allow_origins": ["http://allowed.example"]})
    with threaded_server(settings.model_copy(update={"server": section})) as live:
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


# ---- raw HTTP ------------------------------------------------------------------------------------------------


def connect(server: LiveServer, timeout: float = 30) -> socket.socket:
    return socket.create_connection((HOST, port_of(server)), timeout=timeout)


def read_until_close(
    sock: socket.socket, timeout: float, started: float | None = None
) -> tuple[bytes, bool, float | None]:
    """(bytes read, whether the server closed, seconds from ``started`` to the first byte) within ``timeout``."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    started = time.monotonic() if started is None else started
    first: float | None = None
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False, first
        except OSError:  # a reset: closed
            return data, True, first
        if not chunk:
            return data, True, first
        if first is None:
            first = time.monotonic() - started
        data += chunk
    return data, False, first


def read_one_response(sock: socket.socket, timeout: float = 30) -> tuple[int, bytes]:
    """One response with a Content-Length (the connection stays open)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return int(head.split()[1]), body


def status_of(raw: bytes) -> int | None:
    return int(raw.split()[1]) if raw.startswith(b"HTTP/1.1 ") else None


def as_response(raw: bytes, url: str) -> requests.Response:
    """A raw response as ``requests`` would have built it, for the cases' ``check_error``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    response = requests.Response()
    response.status_code = int(lines[0].split()[1])
    response.headers = CaseInsensitiveDict(
        {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    )
    response._content = body
    response.url = url
    response.request = requests.Request("POST", url).prepare()
    return response


def send_quietly(sock: socket.socket, parts: list[bytes], chunk: int = 1 << 20) -> None:
    """Send without waiting for an answer, until done or the server closes."""
    with contextlib.suppress(OSError):
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), chunk):
                sock.sendall(view[start : start + chunk])


def wait_closed(socks: list[socket.socket], timeout: float) -> list[tuple[bytes, bool]]:
    """For each socket: (bytes the server sent, whether it closed) once all closed or ``timeout`` passed."""
    out: dict[int, tuple[bytes, bool]] = {}
    data = {i: b"" for i in range(len(socks))}
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout
        while len(out) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                i = key.data
                try:
                    chunk = socks[i].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    data[i] += chunk
                else:
                    out[i] = (data[i], True)
                    selector.unregister(socks[i])
    return [out.get(i, (data[i], False)) for i in range(len(socks))]


class LiveProbe:
    """``GET /live`` on a fresh connection every 20 ms in a thread, while the ``with`` block runs."""

    def __init__(self, server: LiveServer, name: str, max_probes: int = 2000) -> None:
        self.port = port_of(server)
        self.name = name
        self.max_probes = max_probes
        self.results: list[tuple[int | None, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _probe(self) -> tuple[int | None, float]:
        started = time.monotonic()
        connection = http.client.HTTPConnection(HOST, self.port, timeout=PROBE_TIMEOUT_S)
        try:
            connection.request("GET", "/live")
            response = connection.getresponse()
            response.read()
            return response.status, time.monotonic() - started
        except OSError:
            return None, time.monotonic() - started
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.results) < self.max_probes:
            self.results.append(self._probe())
            self._stop.wait(0.02)

    def __enter__(self) -> LiveProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.results:  # at least one probe during the attack
            self.results.append(self._probe())
        self._stop.set()
        self._thread.join(PROBE_TIMEOUT_S + 5)
        latencies = [t * 1000 for _, t in self.results]
        print(
            f"\n[/live during {self.name}] n={len(latencies)} p50={statistics.median(latencies):.1f} ms "
            f"max={max(latencies):.1f} ms"
        )

    def check(self) -> None:
        statuses = [status for status, _ in self.results]
        assert statuses and all(status == 200 for status in statuses), statuses


# ---- header size and count -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1 << 20, 96 << 20], ids=["1MiB", "96MiB"])
def test_huge_header_is_refused_at_once(limits_server: LiveServer, size: int) -> None:
    """A header value of 1 or 96 MiB, sent without waiting: 431 after the first 32 KiB, the rest never parsed."""
    parts = [b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ", b"a" * size]
    with LiveProbe(limits_server, f"a {size >> 20} MiB header") as probe:
        sock = connect(limits_server)
        sender = threading.Thread(target=send_quietly, args=(sock, parts), daemon=True)
        started = time.monotonic()
        sender.start()
        raw, closed, first = read_until_close(sock, timeout=60, started=started)
        sender.join(60)
        sent = time.monotonic() - started
        sock.close()
    print(f"\n[{size >> 20} MiB header] answered after {(first or 0) * 1000:.1f} ms; sending took {sent:.2f} s")
    assert status_of(raw) == 431, raw[:200]
    assert closed
    assert b"connection: close" in raw.lower()
    probe.check()


def test_too_many_headers(limits_server: LiveServer) -> None:
    head = b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    with LiveProbe(limits_server, "2,000 headers") as probe:
        sock = connect(limits_server)
        send_quietly(sock, [head])
        raw, closed, _ = read_until_close(sock, timeout=30)
        sock.close()
    assert status_of(raw) == 431, raw[:200]
    assert b"Too many header fields" in raw and closed
    probe.check()


def test_headers_within_the_limits_are_served(limits_server: LiveServer) -> None:
    headers = {f"X-H{i}": "v" * 200 for i in range(90)}  # 90 fields, ~20 KiB
    r = requests.get(limits_server.base_url + "/live", headers=headers, timeout=30)
    assert r.status_code == 200


# ---- slow and stalled requests -------------------------------------------------------------------------------


def test_slowloris_connections_are_closed(limits_server: LiveServer) -> None:
    """300 connections: two thirds send part of a head and stall, a third send nothing. All are closed after
    ``header_timeout_s`` (408 when part of a head came), and ``/live`` answers meanwhile."""
    socks: list[socket.socket] = []
    try:
        with LiveProbe(limits_server, "300 slowloris connections") as probe:
            for i in range(300):
                sock = connect(limits_server)
                if i % 3:
                    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                socks.append(sock)
            outcomes = wait_closed(socks, HEADER_TIMEOUT_S + CLOSE_SLACK_S)
    finally:
        for sock in socks:
            sock.close()
    assert all(closed for _, closed in outcomes), sum(not closed for _, closed in outcomes)
    for i, (raw, _) in enumerate(outcomes):
        assert status_of(raw) == (408 if i % 3 else None), raw[:200]
    probe.check()


def _stalled_body(server: LiveServer, framing: str) -> tuple[bytes, bool]:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + AUTH
    sock = connect(server)
    stop = threading.Event()
    try:
        if framing == "content-length":
            sock.sendall(head + b"Content-Length: 1000\r\n\r\n" + b'{"model": "gpt-oss-120b", ')
        elif framing == "chunked":
            sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b'10\r\n{"model": "gpt-o')
        else:  # a byte every 100 ms: each read is on time, the body as a whole is not

            def drip() -> None:
                with contextlib.suppress(OSError):
                    for _ in range(600):
                        if stop.wait(0.1):
                            return
                        sock.sendall(b" ")

            sock.sendall(head + b"Content-Length: 100000\r\n\r\n{")
            threading.Thread(target=drip, daemon=True).start()
        raw, closed, _ = read_until_close(sock, timeout=BODY_TIMEOUT_S + CLOSE_SLACK_S)
        return raw, closed
    finally:
        stop.set()
        sock.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "drip"])
def test_stalled_body_is_cut(limits_server: LiveServer, framing: str) -> None:
    with LiveProbe(limits_server, f"a stalled body ({framing})") as probe:
        raw, closed = _stalled_body(limits_server, framing)
    assert status_of(raw) == 408, raw[:300]
    assert b"Request body timeout." in raw and closed
    probe.check()


def test_idle_keep_alive_connection_is_closed(limits_server: LiveServer) -> None:
    sock = connect(limits_server)
    try:
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_one_response(sock) == (200, b'{"status":"alive"}')
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # kept alive: a second request is served
        assert read_one_response(sock)[0] == 200
        raw, closed, _ = read_until_close(sock, timeout=KEEP_ALIVE_S + CLOSE_SLACK_S)
    finally:
        sock.close()
    assert closed and raw == b""


# ---- connection cap ------------------------------------------------------------------------------------------


def test_connection_cap(cap_server: LiveServer) -> None:
    """``max_connections`` open (each has been served once, so the server holds them): the next ones are answered
    503 and closed; once some close, new connections are served again."""
    held: list[socket.socket] = []
    extra: list[socket.socket] = []
    try:
        for _ in range(CAP):
            sock = connect(cap_server)
            sock.sendall(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_one_response(sock)[0] == 200
            held.append(sock)
        for _ in range(5):
            sock = connect(cap_server)
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            extra.append(sock)
        outcomes = wait_closed(extra, CLOSE_SLACK_S)
        for raw, closed in outcomes:
            assert closed and status_of(raw) in (503, None), raw[:200]
        assert any(status_of(raw) == 503 for raw, _ in outcomes)
        for sock in held[:4]:
            sock.close()
        statuses = []
        for _ in range(100):  # the server notices the closes asynchronously
            with contextlib.suppress(requests.ConnectionError):
                statuses.append(requests.get(cap_server.base_url + "/live", timeout=10).status_code)
            if statuses and statuses[-1] == 200:
                break
            time.sleep(0.1)
        assert statuses and statuses[-1] == 200, statuses
    finally:
        for sock in held + extra:
            sock.close()


# ---- malformed framing ---------------------------------------------------------------------------------------


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def _raw_post(server: LiveServer, case: ProviderCase, extra_head: bytes, body: bytes) -> requests.Response:
    auth = "".join(f"{k}: {v}\r\n" for k, v in case.auth_headers(server.api_key).items()).encode()
    head = f"POST {case.chat_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
    sock = connect(server)
    try:
        sock.sendall(head + auth + extra_head + b"\r\n" + body)
        raw, closed, _ = read_until_close(sock, timeout=30)
    finally:
        sock.close()
    assert closed, raw[:300]  # the connection is not reused after malformed framing
    return as_response(raw, server.base_url + case.chat_path)


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: abc\r\n",
        b"Content-Length: 5\r\nContent-Length: 7\r\n",
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
    ],
    ids=["bogus-length", "two-lengths", "length-and-chunked", "unknown-coding"],
)
def test_malformed_head_in_the_routes_envelope(scripted_server: LiveServer, case: ProviderCase, framing: bytes) -> None:
    r = _raw_post(scripted_server, case, framing, b"{}")
    case.check_error(r, 400)
    assert "Malformed HTTP request" in r.text


def test_invalid_chunked_body_in_the_routes_envelope(scripted_server: LiveServer, case: ProviderCase) -> None:
    body = orjson.dumps(case.body(MESSAGES, False, {}))
    r = _raw_post(scripted_server, case, b"Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\nzz\r\n" % (10, body[:10]))
    case.check_error(r, 400)
    assert "Malformed HTTP request: Invalid character in chunk size." in r.text


def test_valid_chunked_body_is_served(scripted_server: LiveServer, case: ProviderCase) -> None:
    body = orjson.dumps(case.body(MESSAGES, False, {}))
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    head = f"POST {case.chat_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
    auth = "".join(f"{k}: {v}\r\n" for k, v in case.auth_headers(scripted_server.api_key).items()).encode()
    sock = connect(scripted_server)
    try:
        sock.sendall(head + auth + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
        raw, _, _ = read_until_close(sock, timeout=30)
    finally:
        sock.close()
    assert status_of(raw) == 200, raw[:300]


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET /live HTTP/9\r\n\r\n", b"GET /li ve x HTTP/1.1\r\n\r\n"])
def test_malformed_request_line_is_a_plain_400(scripted_server: LiveServer, line: bytes) -> None:
    sock = connect(scripted_server)
    try:
        sock.sendall(line)
        raw, closed, _ = read_until_close(sock, timeout=30)
    finally:
        sock.close()
    assert status_of(raw) == 400 and closed, raw[:300]
    assert b"content-type: text/plain" in raw.lower()


# ---- Content-Type --------------------------------------------------------------------------------------------


def _post(
    server: LiveServer, case: ProviderCase, content_type: str | None, browser: dict[str, str] | None = None
) -> requests.Response:
    headers = {**case.auth_headers(server.api_key), **(browser or {})}
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = orjson.dumps(case.body(MESSAGES, False, {}))
    return requests.post(server.base_url + case.chat_path, data=body, headers=headers, timeout=30)


BROWSERS = [{"Origin": "http://evil.example"}, {"Sec-Fetch-Mode": "no-cors"}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(scripted_server: LiveServer, case: ProviderCase, content_type: str) -> None:
    """415 (a browser can send these to any origin without a preflight); where the provider reads any body as JSON
    (Ollama), a client that is no browser is served, and a browser still gets the 415."""
    if case.json_media_type == "browsers":
        r = _post(scripted_server, case, content_type)
        assert r.status_code == 200 and case.text_of(r.json()) == "Hello! How can I help?", r.text
        for browser in BROWSERS:
            case.check_error(_post(scripted_server, case, content_type, browser), 415)
        return
    r = _post(scripted_server, case, content_type)
    if content_type is None:
        assert "Content-Type" not in r.request.headers
    case.check_error(r, 415)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/x+json"]
)
def test_json_content_types_are_served(scripted_server: LiveServer, case: ProviderCase, content_type: str) -> None:
    r = _post(scripted_server, case, content_type)
    assert r.status_code == 200, r.text
    assert case.text_of(r.json()) == "Hello! How can I help?"


def test_get_routes_need_no_content_type(scripted_server: LiveServer) -> None:
    r = requests.get(scripted_server.base_url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200


# ---- CORS ----------------------------------------------------------------------------------------------------

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_cors_is_off_by_default(scripted_server: LiveServer) -> None:
    url = scripted_server.base_url + "/v1/chat/completions"
    origin = {"Origin": "http://evil.example"}
    body = {"model": "gpt-oss-120b", "messages": MESSAGES}
    r = requests.post(url, json=body, headers={**origin, "Authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = requests.options(url, headers={**origin, **PREFLIGHT}, timeout=30)
    assert r.status_code != 200 and "access-control-allow-origin" not in r.headers


def test_cors_allow_list(cors_server: LiveServer) -> None:
    url = cors_server.base_url + "/v1/chat/completions"
    body = {"model": "gpt-oss-120b", "messages": MESSAGES}
    auth = {"Authorization": f"Bearer {API_KEY}"}
    allowed = {"Origin": "http://allowed.example"}
    r = requests.post(url, json=body, headers={**allowed, **auth}, timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://allowed.example"
    r = requests.options(url, headers={**allowed, **PREFLIGHT}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "http://allowed.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= {
        h.strip() for h in r.headers["access-control-allow-headers"].split(",")
    }
    other = {"Origin": "http://evil.example"}
    r = requests.post(url, json=body, headers={**other, **auth}, timeout=30)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = requests.options(url, headers={**other, **PREFLIGHT}, timeout=30)
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_settings_defaults() -> None:
    from server.settings import ServerSettings

    s = ServerSettings()
    assert (s.max_header_bytes, s.max_headers, s.header_timeout_s, s.body_timeout_s) == (32768, 100, 10.0, 60.0)
    assert (s.keep_alive_timeout_s, s.max_connections, s.cors_allow_origins) == (5.0, 1024, [])
