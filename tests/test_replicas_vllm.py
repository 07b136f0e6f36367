"""The nginx recipe in front of two replicas on the real vLLM engine (the tiny checkpoint), sharing PostgreSQL and a
seal key, each replica's engine on a core of its own: every wire API answers through the proxy from both replicas,
a Responses conversation started on one continues on the other, and once one is killed with SIGKILL every request
sent after is answered by the other."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer
from tests.nginx import Nginx, nginx_proxy
from tests.replicas import HEADERS, kill, port_of, replica_pair, served_by

CASES = all_cases()
MESSAGES = [{"role": "user", "content": "Name a colour."}]
# A first turn long enough that a follow-up's prompt shows whether it was rendered: 20 x 4 tokens and its header.
FIRST_TURN = "Name a colour. " * 20
FIRST_TURN_TOKENS = 80


@pytest.fixture(scope="module")
def replicas(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    with replica_pair(postgres_url, tmp_path_factory.mktemp("vllm-replicas"), real_engine=True) as pair:
        yield pair


@pytest.fixture(scope="module")
def proxy(replicas: tuple[LiveServer, LiveServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx_proxy(tmp_path_factory.mktemp("nginx-vllm"), [f"127.0.0.1:{port_of(r)}" for r in replicas]) as running:
        yield running


def post(base_url: str, case: ProviderCase, stream: bool) -> requests.Response:
    body = case.body(MESSAGES, stream, case.length_fields(8))
    return requests.post(base_url + case.chat_path, json=body, headers=case.auth_headers(API_KEY), timeout=120)


def check_answered(case: ProviderCase, response: requests.Response, stream: bool) -> None:
    """A complete answer in the route's own format (the tiny model's words are random; its framing is not)."""
    assert response.status_code == 200, response.text
    if not stream:
        case.text_of(response.json())  # the envelope holds an answer where the provider puts one
        return
    assert response.headers["content-type"].startswith(case.stream_media_type)
    raw = response.content.decode()
    payloads, blocks = case.split_stream(raw)
    assert payloads, raw
    assert case.ends_stream(blocks[-1]) and raw.endswith(case.stream_end), raw[-500:]


def respond(base_url: str, **fields: object) -> httpx.Response:
    """A Responses turn of a few tokens, answered 200."""
    body = {"model": "gpt-oss-120b", "max_output_tokens": 8, **fields}
    r = httpx.post(base_url + "/v1/responses", headers=HEADERS, json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r


def input_tokens(response: dict[str, object]) -> int:
    usage = response["usage"]
    assert isinstance(usage, dict)
    return int(usage["input_tokens"])


def test_every_wire_api_answers_through_the_proxy_from_both_replicas(
    proxy: Nginx, replicas: tuple[LiveServer, LiveServer]
) -> None:
    """Without a session id nginx spreads requests round-robin: both real replicas serve."""
    served: set[int] = set()
    for case in CASES:
        for stream in (False, True):
            r = post(proxy.base_url, case, stream)
            check_answered(case, r, stream)
            served.add(served_by(replicas, r))
    assert served == {0, 1}


def test_a_responses_conversation_continues_on_the_other_replica(replicas: tuple[LiveServer, LiveServer]) -> None:
    one, two = replicas
    started = respond(one.base_url, input=FIRST_TURN).json()
    retrieved = httpx.get(f"{two.base_url}/v1/responses/{started['id']}", headers=HEADERS, timeout=30)
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json() == started
    follow = respond(two.base_url, input="And another one.", previous_response_id=started["id"]).json()
    alone = respond(two.base_url, input="And another one.").json()
    assert follow["previous_response_id"] == started["id"]
    # the other replica rendered the first turn, read from PostgreSQL, before the new input
    assert input_tokens(follow) - input_tokens(alone) >= FIRST_TURN_TOKENS, (follow["usage"], alone["usage"])


def test_a_killed_replica_costs_no_request_sent_after(proxy: Nginx, replicas: tuple[LiveServer, LiveServer]) -> None:
    """SIGKILL one replica (its port then refuses connections): nginx passes each request the dead one would
    have had to the other, so every route still answers, and a conversation the dead replica stored goes on."""
    one, two = replicas
    started = respond(one.base_url, input="Name a colour.").json()
    kill(one)
    for case in CASES:
        for stream in (False, True):
            r = post(proxy.base_url, case, stream)
            check_answered(case, r, stream)
            assert served_by((two,), r) == 0
    follow = respond(proxy.base_url, input="Go on.", previous_response_id=started["id"])
    assert served_by((two,), follow) == 0
