"""vllm-router (``consistent_hash``) in front of two real replicas sharing PostgreSQL: what it forwards and how.

Found by running it (0.1.17), and pinned here so that a new version that behaves otherwise fails loudly:

- typed routes (its own request models): ``POST /v1/chat/completions`` and ``/v1/completions`` (the body parsed and
  written again: its defaults added, fields it does not know inside messages dropped), ``GET /v1/models``,
  ``GET /v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel``. These forward the client's headers, and a
  request whose replica refuses the connection is retried on another.
- every other path goes through its transparent proxy: the JSON body is forwarded, the client's headers and query
  string are not. The only credential a replica sees there is the router's own ``--api-key`` (as a Bearer token),
  whatever the client sent; without ``--api-key`` those requests are 401.
- ``DELETE /v1/responses/{id}`` is answered by the router itself (501); ``POST /v1/responses/input_tokens`` is 405.
- it replaces the replica's ``x-request-id`` with its own, adds permissive CORS headers, and sends a stream as
  ``text/event-stream`` without the replica's ``; charset=utf-8`` (the events themselves pass unchanged).
- affinity: the ``X-Session-ID`` header (then ``X-User-ID``, ``X-Tenant-ID``, ``X-Request-ID``, ...; then the body's
  ``session_params.session_id`` and ``user``), on typed and transparent paths alike, though one session id may land
  on one replica for the typed paths and on another for the transparent ones.
- a dead replica: typed routes retry on connection errors, but the retry follows the same hash until the replica's
  circuit breaker opens (``--cb-failure-threshold 1`` makes that the first failure) or a health check fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers import API_KEY, LiveServer
from tests.replicas import HEADERS, kill, logged, replica_pair, served_since, session_landings
from tests.test_responses import WEATHER_TOOL
from tests.vllm_router import Router, vllm_router

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = [{"role": "user", "content": "reason"}]
ANSWER = "Hello! How can I help?"
CHAT_BODY = {"model": "gpt-oss-120b", "messages": MESSAGES}
RESPONSE_BODY = {"model": "gpt-oss-120b", "input": "reason"}
EJECT = ("--cb-failure-threshold", "1", "--cb-timeout-duration-secs", "10")


@pytest.fixture(scope="module")
def replicas(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    with replica_pair(postgres_url, tmp_path_factory.mktemp("replicas")) as pair:
        yield pair


def start(folder: Path, pair: tuple[LiveServer, ...], *options: str) -> AbstractContextManager[Router]:
    return vllm_router(folder, [r.base_url for r in pair], "--policy", "consistent_hash", *options)


@pytest.fixture(scope="module")
def router(replicas: tuple[LiveServer, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """The router with ``--api-key``: the replicas' key for the paths it forwards without the client's headers."""
    with start(tmp_path_factory.mktemp("router"), replicas, "--api-key", API_KEY) as running:
        yield running


def session_on(router: Router, replicas: tuple[LiveServer, ...], index: int, path: str, body: dict) -> str:  # type: ignore[type-arg]
    """An ``X-Session-ID`` the router sends to ``replicas[index]`` on ``path``."""
    for n in range(64):
        session = f"session-{n}"
        before = logged(replicas, path)
        r = httpx.post(router.base_url + path, headers={**HEADERS, "X-Session-ID": session}, json=body, timeout=30)
        assert r.status_code == 200, r.text
        if served_since(replicas, path, before) == index:
            return session
    raise AssertionError(f"no session id of 64 landed on replica {index}")


# -- what it forwards -------------------------------------------------------------------------------------------------


def test_chat_completions_through_the_router_with_the_openai_sdk(router: Router) -> None:
    client = openai.OpenAI(base_url=router.base_url + "/v1", api_key=API_KEY)
    answer = client.chat.completions.create(model="gpt-oss-120b", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == ANSWER
    stream = client.chat.completions.create(model="gpt-oss-120b", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER
    assert [m.id for m in client.models.list()] == ["gpt-oss-120b"]


def test_the_stream_events_pass_unchanged(router: Router, replicas: tuple[LiveServer, ...]) -> None:
    body = {**CHAT_BODY, "stream": True}
    direct = httpx.post(replicas[0].base_url + CHAT, headers=HEADERS, json=body, timeout=30)
    routed = httpx.post(router.base_url + CHAT, headers=HEADERS, json=body, timeout=30)
    assert direct.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert routed.headers["content-type"] == "text/event-stream"  # its own, without the charset
    strip = [b.split('"created":')[1].split(",", 1)[1] for b in direct.text.split("\n\n") if b.startswith("data: {")]
    again = [b.split('"created":')[1].split(",", 1)[1] for b in routed.text.split("\n\n") if b.startswith("data: {")]
    assert again == strip  # every event equal past its id and clock
    assert routed.text.endswith("data: [DONE]\n\n")


def test_typed_routes_carry_the_clients_key_and_the_rest_carry_the_routers(router: Router) -> None:
    wrong = {"Authorization": "Bearer wrong-key"}
    assert httpx.post(router.base_url + CHAT, headers=wrong, json=CHAT_BODY, timeout=30).status_code == 401
    assert httpx.get(router.base_url + "/v1/models", headers=wrong, timeout=30).status_code == 401
    # transparent paths: the router's key stands in for any client's (keep the router off untrusted networks)
    assert httpx.post(router.base_url + RESPONSES, headers=wrong, json=RESPONSE_BODY, timeout=30).status_code == 200
    anthropic = {"x-api-key": "wrong-key", "anthropic-version": "2023-06-01"}
    messages = {"model": "gpt-oss-120b", "max_tokens": 100, "messages": MESSAGES}
    r = httpx.post(router.base_url + "/v1/messages?beta=true", headers=anthropic, json=messages, timeout=30)
    assert r.status_code == 200 and r.json()["content"][-1]["text"] == ANSWER


def test_without_its_api_key_the_transparent_paths_reach_the_replicas_unauthenticated(
    replicas: tuple[LiveServer, ...], tmp_path: Path
) -> None:
    with start(tmp_path, replicas) as bare:
        assert httpx.post(bare.base_url + CHAT, headers=HEADERS, json=CHAT_BODY, timeout=30).status_code == 200
        r = httpx.post(bare.base_url + RESPONSES, headers=HEADERS, json=RESPONSE_BODY, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("You didn't provide an API key")
        ollama = {"model": "gpt-oss-120b", "stream": False, "messages": MESSAGES}
        r = httpx.post(bare.base_url + "/api/chat", headers=HEADERS, json=ollama, timeout=30)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}


def test_paths_the_router_answers_itself(router: Router) -> None:
    assert httpx.delete(router.base_url + RESPONSES + "/resp_x", headers=HEADERS).status_code == 501
    assert httpx.post(router.base_url + RESPONSES + "/input_tokens", headers=HEADERS, json={}).status_code == 405
    r = httpx.post(router.base_url + CHAT, headers=HEADERS, json=CHAT_BODY, timeout=30)
    assert r.headers["x-request-id"].startswith("chatcmpl-")  # its own, not the replica's
    assert r.headers["access-control-allow-origin"] == "*"
    # the probes of deploy/kubernetes-replicas/router.yaml
    assert httpx.get(router.base_url + "/readiness").json()["healthy_workers"] == 2
    assert httpx.get(router.base_url + "/liveness").status_code == 200


# -- affinity and state across replicas -------------------------------------------------------------------------------


def test_one_session_id_keeps_to_one_replica_and_sessions_spread(
    router: Router, replicas: tuple[LiveServer, ...]
) -> None:

    def send(session: str) -> int:
        before = logged(replicas, CHAT)
        r = httpx.post(router.base_url + CHAT, headers={**HEADERS, "X-Session-ID": session}, json=CHAT_BODY)
        assert r.status_code == 200, r.text
        return served_since(replicas, CHAT, before)

    landed = session_landings(send)
    assert all(len(where) == 1 for where in landed.values()), landed
    assert set().union(*landed.values()) == {0, 1}, landed


def test_a_responses_conversation_continues_on_the_other_replica(
    router: Router, replicas: tuple[LiveServer, ...]
) -> None:
    on_a, on_b = (session_on(router, replicas, i, RESPONSES, RESPONSE_BODY) for i in (0, 1))
    before = logged(replicas, RESPONSES)
    first = httpx.post(router.base_url + RESPONSES, headers={**HEADERS, "X-Session-ID": on_a}, timeout=30, json={
        "model": "gpt-oss-120b", "input": "forecast", "tools": [WEATHER_TOOL]})  # fmt: skip
    assert first.status_code == 200, first.text
    assert served_since(replicas, RESPONSES, before) == 0
    call = first.json()["output"][-1]
    before = logged(replicas, RESPONSES)
    follow = httpx.post(router.base_url + RESPONSES, headers={**HEADERS, "X-Session-ID": on_b}, timeout=30, json={
        "model": "gpt-oss-120b", "previous_response_id": first.json()["id"], "tools": [WEATHER_TOOL],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})  # fmt: skip
    assert follow.status_code == 200, follow.text
    assert served_since(replicas, RESPONSES, before) == 1
    assert follow.json()["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."
    # a typed route, with the client's own key: the same owner as the router's key (one key here)
    got = httpx.get(f"{router.base_url}{RESPONSES}/{follow.json()['id']}", headers=HEADERS, timeout=30)
    assert got.status_code == 200 and got.json() == follow.json()


# -- a replica dies ---------------------------------------------------------------------------------------------------


def test_a_killed_replica_loses_no_request_sent_after_it_died(postgres_url: str, tmp_path: Path) -> None:
    """With ``--cb-failure-threshold 1`` the first refused connection opens the dead replica's circuit breaker and
    the typed route's retry goes to the other replica, streamed or not; from then on the transparent paths avoid it
    too. (A transparent path is never retried: a request that lands on the dead replica before a failed health
    check or a typed request's failure ejected it is a 502.)"""
    with replica_pair(postgres_url, tmp_path / "replicas") as pair, start(
        tmp_path / "router", pair, "--api-key", API_KEY, *EJECT
    ) as router:  # fmt: skip
        chat_on_a = session_on(router, pair, 0, CHAT, CHAT_BODY)
        responses_on_a = session_on(router, pair, 0, RESPONSES, RESPONSE_BODY)
        started = httpx.post(router.base_url + RESPONSES, headers={**HEADERS, "X-Session-ID": responses_on_a},
                             json=RESPONSE_BODY, timeout=30)  # fmt: skip
        kill(pair[0])
        for stream in (True, False, True, False):
            before = logged(pair, CHAT)
            body = {**CHAT_BODY, "stream": stream}
            r = httpx.post(router.base_url + CHAT, headers={**HEADERS, "X-Session-ID": chat_on_a}, json=body)
            assert r.status_code == 200, (stream, r.text)
            assert served_since(pair, CHAT, before) == 1
        follow = {**RESPONSE_BODY, "previous_response_id": started.json()["id"]}
        for _ in range(3):
            before = logged(pair, RESPONSES)
            headers = {**HEADERS, "X-Session-ID": responses_on_a}
            r = httpx.post(router.base_url + RESPONSES, headers=headers, json=follow, timeout=30)
            assert r.status_code == 200, r.text
            assert served_since(pair, RESPONSES, before) == 1


# -- load-aware policies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "polled"), [("power_of_two", "/get_load"), ("cache_aware", CHAT + "/render")])
def test_load_aware_policies_route_on_their_own_counts_when_a_replica_has_no_load_endpoint(
    replicas: tuple[LiveServer, ...], tmp_path: Path, policy: str, polled: str
) -> None:
    """power_of_two polls ``GET /get_load`` (vLLM's server load) and cache_aware tokenizes through ``POST
    /v1/chat/completions/render``: our replicas answer both 404 in the OpenAI envelope, and the router falls back to
    its in-flight counts and the request text. Neither reads ``/metrics``."""
    before = sum(logged(replicas, polled))
    with vllm_router(tmp_path, [r.base_url for r in replicas], "--policy", policy) as running:
        for _ in range(4):
            r = httpx.post(running.base_url + CHAT, headers=HEADERS, json=CHAT_BODY, timeout=30)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == ANSWER
    answered = [line for r in replicas for line in r.log_text().splitlines() if f'path="{polled}"' in line]
    assert len(answered) > before and all("status=404" in line for line in answered)


def test_replicas_publish_the_gauges_endpoint_pickers_read(replicas: tuple[LiveServer, ...]) -> None:
    """llm-d's inference scheduler (the Gateway API Inference Extension) scrapes these from each pod, by model."""
    for replica in replicas:
        text = httpx.get(replica.base_url + "/metrics", timeout=30).text
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
            assert f'{name}{{engine="0",model_name="gpt-oss-120b"}}' in text, name
