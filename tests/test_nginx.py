"""The nginx recipe (``deploy/nginx/gptoss.conf``) in front of two real replicas sharing PostgreSQL: every wire API's
routes through it (auth headers, query strings, streams unbuffered), session affinity by ``X-Session-ID``, a
Responses conversation moving between replicas, and a replica killed with SIGKILL costing no request sent after."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from routes import WIRE_APIS
from server.app import create_app
from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer, scripted_settings
from tests.nginx import RECIPE, Nginx, check_config, nginx_binary, nginx_proxy, write_config
from tests.replicas import (
    HEADERS,
    active_requests,
    kill,
    port_of,
    replica_pair,
    served_by,
    session_landing_on,
    session_landings,
)
from tests.test_responses import WEATHER_TOOL

CASES = all_cases()
MESSAGES = [{"role": "user", "content": "reason"}]
ANSWER = "Hello! How can I help?"
# Headers that belong to one hop (RFC 9110 7.6.1) and the framing nginx may choose anew.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "date"}


@pytest.fixture(scope="module")
def replicas(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    # a small delay per token, so that a stream can be read while the engine still writes it
    with replica_pair(postgres_url, tmp_path_factory.mktemp("replicas"), token_delay_s=0.01) as pair:
        yield pair


@pytest.fixture(scope="module")
def proxy(replicas: tuple[LiveServer, LiveServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    upstreams = [f"127.0.0.1:{port_of(r)}" for r in replicas]
    with nginx_proxy(tmp_path_factory.mktemp("nginx"), upstreams) as running:
        yield running


def post(base_url: str, case: ProviderCase, stream: bool, key: str | None = API_KEY) -> requests.Response:
    headers = case.auth_headers(key) if key is not None else {}
    return requests.post(base_url + case.chat_path, json=case.body(MESSAGES, stream, {}), headers=headers, timeout=60)


# -- the recipe -------------------------------------------------------------------------------------------------------


def test_the_recipe_passes_nginx_t(tmp_path: Path) -> None:
    checked = check_config(nginx_binary(), write_config(tmp_path, ["127.0.0.1:8001", "127.0.0.1:8002"], 8000))
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_every_route_of_every_wire_api_is_under_a_proxied_location(tmp_path: Path) -> None:
    """The recipe proxies whole paths: each route the app serves (every wire API's, and /health, /metrics) lies
    under a ``location`` that passes to the replicas."""
    locations = re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", RECIPE.read_text())
    proxied = [prefix for prefix, body in locations if "proxy_pass http://gptoss_replicas;" in body]
    assert proxied
    app = create_app(scripted_settings(tmp_path))
    paths = {route.path for route in app.routes}  # type: ignore[attr-defined]
    app.state.ctx.service.close()
    assert len({p.name for p in WIRE_APIS}) == len(WIRE_APIS) >= 9
    unproxied = sorted(p for p in paths if not any(p.startswith(prefix) for prefix in proxied))
    assert not unproxied


def test_the_recipe_streams_unbuffered_with_long_timeouts_and_retries_only_unsent_requests() -> None:
    text = RECIPE.read_text()
    assert re.search(r"^\s*proxy_buffering off;", text, re.MULTILINE)
    assert re.search(r"^\s*proxy_next_upstream error timeout;", text, re.MULTILINE)  # never non_idempotent
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = re.findall(rf"^\s*{directive} (\d+)s;", text, re.MULTILINE)
        assert int(value) >= 3600
    assert re.search(r"^\s*hash \$http_x_session_id consistent;", text, re.MULTILINE)
    assert re.findall(r"^\s*server \S+ max_fails=1 fail_timeout=\d+s;", text, re.MULTILINE)


# -- every route through the proxy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_provider_route_answers_through_the_proxy(proxy: Nginx, case: ProviderCase) -> None:
    r = post(proxy.base_url, case, stream=False)
    assert r.status_code == 200, r.text
    assert case.text_of(r.json()) == ANSWER
    streamed = post(proxy.base_url, case, stream=True)
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith(case.stream_media_type)
    raw = streamed.content.decode()
    payloads, blocks = case.split_stream(raw)
    assert case.ends_stream(blocks[-1]) and raw.endswith(case.stream_end)
    assert case.stream_text_of(payloads) == ANSWER
    case.check_error(post(proxy.base_url, case, stream=False, key=None), 401)
    case.check_error(post(proxy.base_url, case, stream=False, key="wrong-key"), 401)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_proxy_passes_the_replicas_headers_as_they_are(
    proxy: Nginx, replicas: tuple[LiveServer, ...], case: ProviderCase
) -> None:
    """The same header names as straight from a replica, streamed or not, and the same values where two direct
    answers agree (ids and clocks differ per request)."""
    for stream in (False, True):
        direct, again = post(replicas[0].base_url, case, stream), post(replicas[0].base_url, case, stream)
        proxied = post(proxy.base_url, case, stream)
        names = {k.lower() for k in direct.headers} - HOP_HEADERS
        assert names == {k.lower() for k in proxied.headers} - HOP_HEADERS
        fixed = {n for n in names if direct.headers[n] == again.headers[n]}
        assert {"server", "content-type"} <= fixed
        for name in fixed:
            assert proxied.headers[name] == direct.headers[name], name


OTHER_PATHS = [
    ("GET", "/v1/models", {"Authorization": f"Bearer {API_KEY}"}),
    ("GET", "/v1/models", {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}),  # Anthropic's claim
    ("GET", "/openai/v1/models/gpt-oss-120b", {"Authorization": f"Bearer {API_KEY}"}),
    ("GET", "/api/tags", {"Authorization": f"Bearer {API_KEY}"}),
    ("HEAD", "/", {}),
    ("GET", "/api/version", {"Authorization": f"Bearer {API_KEY}"}),
    ("GET", "/api/ai/models", {"Authorization": f"Bearer {API_KEY}"}),
    ("GET", "/project/p-1/genai/gpt_oss_120b/v1/models", {"Authorization": f"Bearer {API_KEY}"}),
    ("GET", "/health", {}),
    ("GET", "/live", {}),
    ("GET", "/metrics", {}),
]


@pytest.mark.parametrize(("method", "path", "headers"), OTHER_PATHS)
def test_the_other_endpoints_answer_through_the_proxy_as_directly(
    proxy: Nginx, replicas: tuple[LiveServer, ...], method: str, path: str, headers: dict[str, str]
) -> None:
    direct = httpx.request(method, replicas[0].base_url + path, headers=headers, timeout=30)
    proxied = httpx.request(method, proxy.base_url + path, headers=headers, timeout=30)
    assert direct.status_code == 200, direct.text
    assert proxied.status_code == direct.status_code
    assert proxied.headers.get("content-type") == direct.headers.get("content-type")


def test_query_strings_and_every_auth_header_reach_the_replica(proxy: Nginx) -> None:
    """Claude Code's ``?beta=true`` and ``x-api-key``; Ollama's bodies whatever their Content-Type."""
    body = {"model": "gpt-oss-120b", "max_tokens": 100, "messages": MESSAGES}
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    r = httpx.post(proxy.base_url + "/v1/messages?beta=true", headers=headers, json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["content"][-1]["text"] == ANSWER
    raw = b'{"model":"gpt-oss-120b","stream":false,"messages":[{"role":"user","content":"reason"}]}'
    r = httpx.post(
        proxy.base_url + "/api/chat", headers={**HEADERS, "Content-Type": "text/plain"}, content=raw, timeout=30
    )
    assert r.status_code == 200, r.text
    assert r.json()["message"]["content"] == ANSWER


def test_a_stream_reaches_the_client_while_the_engine_still_generates_it(
    proxy: Nginx, replicas: tuple[LiveServer, ...]
) -> None:
    body = {"model": "gpt-oss-120b", "stream": True, "messages": [{"role": "user", "content": "slow stream"}]}
    with httpx.stream("POST", proxy.base_url + "/v1/chat/completions", headers=HEADERS, json=body, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if '"content":"tick' in line)
        assert first.startswith("data: ")
        assert active_requests(replicas) >= 1  # the first tokens came through before the last was generated


# -- affinity and state across replicas -------------------------------------------------------------------------------


def test_one_session_id_keeps_to_one_replica_and_sessions_spread(
    proxy: Nginx, replicas: tuple[LiveServer, ...]
) -> None:
    body = {"model": "gpt-oss-120b", "messages": MESSAGES}

    def send(session: str) -> int:
        r = httpx.post(proxy.base_url + "/v1/chat/completions", headers={**HEADERS, "X-Session-ID": session}, json=body)
        assert r.status_code == 200, r.text
        return served_by(replicas, r)

    landed = session_landings(send)
    assert all(len(where) == 1 for where in landed.values()), landed
    assert set().union(*landed.values()) == {0, 1}, landed


def test_a_responses_conversation_continues_on_the_other_replica(
    proxy: Nginx, replicas: tuple[LiveServer, ...]
) -> None:
    on_a, on_b = (session_landing_on(proxy.base_url, replicas, i) for i in (0, 1))
    url = proxy.base_url + "/v1/responses"
    first = httpx.post(url, headers={**HEADERS, "X-Session-ID": on_a}, timeout=30, json={
        "model": "gpt-oss-120b", "input": "forecast", "tools": [WEATHER_TOOL]})  # fmt: skip
    assert first.status_code == 200, first.text
    assert served_by(replicas, first) == 0
    call = first.json()["output"][-1]
    assert call["type"] == "function_call"
    follow = httpx.post(url, headers={**HEADERS, "X-Session-ID": on_b}, timeout=30, json={
        "model": "gpt-oss-120b", "previous_response_id": first.json()["id"], "tools": [WEATHER_TOOL],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})  # fmt: skip
    assert follow.status_code == 200, follow.text
    assert served_by(replicas, follow) == 1
    assert follow.json()["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."
    items = httpx.get(f"{url}/{follow.json()['id']}/input_items", headers={**HEADERS, "X-Session-ID": on_a})
    assert items.status_code == 200 and served_by(replicas, items) == 0
    assert httpx.delete(f"{url}/{follow.json()['id']}", headers={**HEADERS, "X-Session-ID": on_a}).status_code == 200
    gone = httpx.get(f"{url}/{follow.json()['id']}", headers={**HEADERS, "X-Session-ID": on_b})
    assert gone.status_code == 404 and served_by(replicas, gone) == 1


# -- a replica dies ---------------------------------------------------------------------------------------------------


def test_a_killed_replica_loses_no_request_sent_after_it_died(postgres_url: str, tmp_path: Path) -> None:
    """SIGKILL the replica a session is pinned to: every request sent afterwards (that session's, streams, a
    conversation the dead replica started) is answered by the other one."""
    with replica_pair(postgres_url, tmp_path / "replicas") as pair:
        upstreams = [f"127.0.0.1:{port_of(r)}" for r in pair]
        with nginx_proxy(tmp_path / "nginx", upstreams) as proxy:
            pinned = session_landing_on(proxy.base_url, pair, 0)
            headers = {**HEADERS, "X-Session-ID": pinned}
            started = httpx.post(proxy.base_url + "/v1/responses", headers=headers, timeout=30,
                                 json={"model": "gpt-oss-120b", "input": "reason"})  # fmt: skip
            assert started.status_code == 200 and served_by(pair, started) == 0
            kill(pair[0])
            for case in CASES:
                for stream in (False, True):
                    headers = {**case.auth_headers(API_KEY), "X-Session-ID": pinned}
                    body = case.body(MESSAGES, stream, {})
                    r = requests.post(proxy.base_url + case.chat_path, json=body, headers=headers, timeout=60)
                    assert r.status_code == 200, (case.name, stream, r.text)
                    assert served_by(pair, r) == 1
            headers = {**HEADERS, "X-Session-ID": pinned}
            follow = httpx.post(proxy.base_url + "/v1/responses", headers=headers, timeout=30, json={
                "model": "gpt-oss-120b", "input": "reason", "previous_response_id": started.json()["id"]})  # fmt: skip
            assert follow.status_code == 200, follow.text
            assert served_by(pair, follow) == 1
            # the dead replica was tried and passed over, not avoided by chance
            assert re.search(
                rf"connect\(\) failed .*upstream: \"http://127\.0\.0\.1:{port_of(pair[0])}/", proxy.error_log()
            )
