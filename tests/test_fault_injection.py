"""Fault injection (``testing`` settings, ``server/faults/``): every wire API answers an injected fault as its service
answers the real one, and real clients' retry logic can be watched against it: the ``openai`` SDK on the
OpenAI-shaped routes, the ``anthropic`` SDK on the Messages API, ``requests`` on the others."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import requests

from routes import WIRE_APIS
from server.errors import ConfigError
from server.settings import CONFIG_DIR, Settings, load_settings
from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server

ANSWER = "Hello from the scripted engine, one token at a time."
RULES = [
    {
        "text": "<|channel|>analysis<|message|>Say hello.<|end|><|start|>assistant<|channel|>final<|message|>"
        f"{ANSWER}<|return|>"
    }
]
CASES: dict[str, ProviderCase] = {c.name: c for c in all_cases()}
ROUTES = [p.name for p in WIRE_APIS]
MESSAGES = [{"role": "user", "content": "Say hello."}]
# Anthropic's clients know our 503 as its 529 overloaded_error
STATUS = {("anthropic", 503): 529}
# each plan rule below fails the first request it sees; the header names the rule (one per test)
FAULTS = {"429": {"kind": "rate_limit", "retry_after": 1}, "503": {"kind": "unavailable", "retry_after": 1}}


def plan() -> list[dict[str, Any]]:
    return [
        {"name": f"{route}-{code}-{client}", "header_only": True, "first": 1, **fault}
        for route in ROUTES
        for code, fault in FAULTS.items()
        for client in ("raw", "sdk")
    ]


def settings_with(tmp: Path, testing: dict[str, Any]) -> Settings:
    base = scripted_settings(tmp, rules=RULES)
    return base.model_copy(update={"testing": type(base.testing).model_validate(testing)})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_with(tmp_path_factory.mktemp("faults"), {"faults_enabled": True, "faults": plan()})
    with threaded_server(settings) as live:
        yield live


def post(server: LiveServer, case: ProviderCase, fault: str | None, stream: bool = False, **kw: Any) -> Any:
    headers = {**case.auth_headers(API_KEY), **({"X-Fault": fault} if fault else {})}
    body = case.body(MESSAGES, stream, {})
    return requests.post(server.base_url + case.chat_path, json=body, headers=headers, timeout=60, stream=stream, **kw)


def check_wording(route: str, status: int, body: dict[str, Any]) -> None:
    """The service's own words for a 429 or a 503, where it has them."""
    if route == "aimlapi":
        assert body["message"] == {429: "Too Many Requests", 503: "Service unavailable"}[status]
    elif route == "oxen":
        kind = {429: "too_many_requests", 503: "unknown_error"}[status]
        assert body["error"]["type"] == kind and body["status_message"] == kind
    elif route == "dataoorts":
        assert body["errors"][0]["code"] == {429: 3040, 503: 3050}[status]
    elif route == "anthropic":
        assert body["error"]["type"] == {429: "rate_limit_error", 529: "overloaded_error"}[status]
    elif route == "e2e":
        assert body["error"]["type"] == {429: "Too Many Requests", 503: "Service Unavailable"}[status]
    elif route == "dat1" and status == 503:
        assert body["error"]["type"] == "unavailable_error"
    elif route in ("openai", "responses"):
        assert body["error"]["type"] == {429: "rate_limit_error", 503: "service_unavailable"}[status]


@pytest.mark.parametrize("code", FAULTS)
@pytest.mark.parametrize("route", ROUTES)
def test_an_injected_error_is_the_routes_own_then_the_retry_succeeds(server: LiveServer, route: str, code: str) -> None:
    """``requests``: the first request gets the status, envelope, wording and Retry-After; the same request again
    (a client's retry, the header unchanged) is answered."""
    case = CASES[route]
    status = STATUS.get((route, int(code)), int(code))
    first = post(server, case, f"{route}-{code}-raw")
    case.check_error(first, status)
    check_wording(route, status, first.json())
    assert first.headers["retry-after"] == "1"
    retry = post(server, case, f"{route}-{code}-raw")
    assert retry.status_code == 200, retry.text
    assert ANSWER in case.text_of(retry.json())


SDK_ROUTES = [r for r in ROUTES if CASES[r].sdk_base is not None or r in ("responses", "anthropic")]


@pytest.mark.parametrize("code", FAULTS)
@pytest.mark.parametrize("route", SDK_ROUTES)
def test_the_sdk_retries_past_an_injected_error(server: LiveServer, route: str, code: str) -> None:
    """The provider's SDK, with retries on, meets the fault once, retries (honouring Retry-After) and gets the
    answer: ``retries_taken`` is 1."""
    case = CASES[route]
    headers = {"X-Fault": f"{route}-{code}-sdk"}
    model = case.body(MESSAGES, False, {}).get("model", "gpt-oss-120b")
    raw: Any
    if route == "anthropic":
        claude = anthropic.Anthropic(base_url=server.base_url, api_key=API_KEY, max_retries=2, default_headers=headers)
        raw = claude.messages.with_raw_response.create(model=model, max_tokens=256, messages=MESSAGES)  # type: ignore[arg-type]
        text = "".join(b.text for b in raw.parse().content if b.type == "text")
    else:
        base = server.base_url + (case.sdk_base or "/v1")
        client = openai.OpenAI(base_url=base, api_key=API_KEY, max_retries=2, default_headers=headers)
        if route == "responses":
            raw = client.responses.with_raw_response.create(model=model, input="Say hello.")
            text = raw.parse().output_text
        else:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
            text = raw.parse().choices[0].message.content or ""
    assert raw.retries_taken == 1
    assert ANSWER in text


@pytest.mark.parametrize("route", [r for r in SDK_ROUTES if r != "anthropic"])
def test_the_openai_sdk_without_retries_raises_the_injected_status(server: LiveServer, route: str) -> None:
    case = CASES[route]
    base = server.base_url + (case.sdk_base or "/v1")
    model = case.body(MESSAGES, False, {}).get("model", "gpt-oss-120b")
    client = openai.OpenAI(base_url=base, api_key=API_KEY, max_retries=0, default_headers={"X-Fault": "rate_limit"})
    with pytest.raises(openai.RateLimitError) as caught:
        if route == "responses":
            client.responses.create(model=model, input="Say hello.")
        else:
            client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.response.headers["retry-after"] == "1"


def test_the_anthropic_sdk_raises_overloaded(server: LiveServer) -> None:
    client = anthropic.Anthropic(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, default_headers={"X-Fault": "overloaded"}
    )
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 529
    body: Any = caught.value.body
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert body["request_id"] == caught.value.response.headers["request-id"]


# ---- streams ------------------------------------------------------------------------------------------------------

STREAM_MESSAGE = "injected mid-stream failure"


def read_stream(response: requests.Response) -> tuple[bytes, Exception | None]:
    """The bytes a streaming client got, and the error that ended its read (None: the body was complete)."""
    got = b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            got += chunk
    except requests.exceptions.ChunkedEncodingError as exc:
        return got, exc
    return got, None


def is_complete(case: ProviderCase, raw: str) -> bool:
    """The stream ends as the route ends a stream: its terminator, or a terminal event (NDJSON: ``is_last``)."""
    payloads, blocks = case.split_stream(raw)
    if case.stream_format == "ndjson":
        return bool(payloads) and case.is_last(payloads[-1]) and raw.endswith(case.stream_end)
    if case.terminator is not None:
        return blocks[-1] == case.terminator
    return any(blocks[-1].startswith(f"event: {name}\n") for name in case.terminal_events)


@pytest.mark.parametrize("route", ROUTES)
def test_an_in_stream_error_is_the_routes_stream_error(server: LiveServer, route: str) -> None:
    """After 2 deltas the stream carries the route's error event with the fault's message, and ends properly."""
    case = CASES[route]
    fault = json.dumps({"kind": "internal", "after": 2, "message": STREAM_MESSAGE})
    response = post(server, case, fault, stream=True)
    assert response.status_code == 200
    raw, error = read_stream(response)
    assert error is None
    text = raw.decode()
    assert STREAM_MESSAGE in text or (route == "aimlapi" and "Internal server error" in text), text[-600:]
    assert is_complete(case, text), text[-600:]
    assert ANSWER not in case.stream_text_of(case.split_stream(text)[0])  # cut short


@pytest.mark.parametrize("route", ROUTES)
def test_a_cut_connection_ends_the_stream_without_its_terminator(server: LiveServer, route: str) -> None:
    case = CASES[route]
    response = post(server, case, "cut after=6", stream=True)  # past the reasoning (some routes send none)
    assert response.status_code == 200
    raw, error = read_stream(response)
    assert isinstance(error, requests.exceptions.ChunkedEncodingError)
    text = raw.decode()
    assert text, "the events before the cut arrive"
    assert not is_complete(case, text)
    # the next request on a new connection is served
    assert ANSWER in case.text_of(post(server, case, None).json())


def test_the_openai_sdk_sees_a_cut_stream_as_a_connection_error(server: LiveServer) -> None:
    client = openai.OpenAI(
        base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0, default_headers={"X-Fault": "cut after=1"}
    )
    stream = client.chat.completions.create(model="gpt-oss-120b", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        seen.extend(stream)
    cause = caught.value.__cause__ or caught.value.__context__
    # (the SDK's own HTTP client's RemoteProtocolError)
    assert type(cause).__name__ == "RemoteProtocolError" and "incomplete chunked read" in str(cause), repr(cause)
    assert seen, "chunks before the cut"


def test_the_anthropic_sdk_sees_an_overloaded_error_event(server: LiveServer) -> None:
    client = anthropic.Anthropic(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, default_headers={"X-Fault": "overloaded after=1"}
    )
    events: list[str] = []
    stream = client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events_in:
        events.extend(event.type for event in events_in)
    assert events[:1] == ["message_start"], events
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_a_non_streaming_cut_sends_a_head_and_no_body(server: LiveServer) -> None:
    case = CASES["openai"]
    headers = {**case.auth_headers(API_KEY), "X-Fault": "cut"}
    body = case.body(MESSAGES, False, {})
    response = requests.post(server.base_url + case.chat_path, json=body, headers=headers, timeout=60, stream=True)
    assert response.status_code == 200
    raw, error = read_stream(response)
    assert raw == b"" and isinstance(error, requests.exceptions.ChunkedEncodingError)


def test_an_in_stream_error_on_a_non_streaming_request_is_its_status(server: LiveServer) -> None:
    response = post(server, CASES["dat1"], "bad_gateway after=3")
    CASES["dat1"].check_error(response, 502)
    aiml = post(server, CASES["aimlapi"], "bad_gateway after=3")
    CASES["aimlapi"].check_error(aiml, 502)
    assert aiml.json()["message"] == "Bad Gateway"


def test_a_timeout_ends_as_the_deadline_does(server: LiveServer) -> None:
    openai_case, dataoorts = CASES["openai"], CASES["dataoorts"]
    response = post(server, openai_case, "timeout timeout_s=0.2")
    openai_case.check_error(response, 504)
    assert response.json()["error"]["message"] == "The request took longer than 0.2 seconds and was stopped."
    dataoorts.check_error(post(server, dataoorts, "timeout timeout_s=0.2"), 408)  # Cloudflare's timeout
    streamed = post(server, openai_case, "timeout timeout_s=0.2", stream=True)
    raw, error = read_stream(streamed)
    payloads, blocks = openai_case.split_stream(raw.decode())
    assert error is None and blocks[-1] == "data: [DONE]"
    assert openai_case.stream_finish_of(payloads) == "abort" and openai_case.stream_text_of(payloads) == ""


def test_slow_tokens_give_the_whole_answer_and_are_counted(server: LiveServer) -> None:
    def count() -> float:
        text = requests.get(server.base_url + "/metrics", timeout=10).text
        line = 'gptoss:injected_faults_total{api="ollama",kind="slow"} '
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    before = count()
    case = CASES["ollama"]
    response = post(server, case, "slow first_token_delay_s=0.05 token_delay_s=0.002", stream=True)
    raw, error = read_stream(response)
    assert error is None and case.stream_text_of(case.split_stream(raw.decode())[0]) == ANSWER
    assert count() == before + 1


def test_an_invalid_fault_header_is_a_400_in_the_routes_envelope(server: LiveServer) -> None:
    for route, value in (("oxen", "no-such-rule"), ("anthropic", "cut retry_after=2"), ("dat1", "{not json")):
        response = post(server, CASES[route], value)
        CASES[route].check_error(response, 400)
        assert "x-fault" in response.text.lower()


def test_injected_faults_are_logged(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server.faults"):
        post(server, CASES["e2e"], "internal")
    lines = [r.getMessage() for r in caplog.records if r.name == "server.faults"]
    assert any("fault internal (header)" in line and "e2e" in line for line in lines), lines


# ---- the plan without a header --------------------------------------------------------------------------------------


def test_rules_match_by_route_and_path_and_count(tmp_path: Path) -> None:
    """The first matching request of the oxen rule fails; every 2nd matching request of the dat1 path rule fails;
    other routes are untouched."""
    testing = {
        "faults_enabled": True,
        "faults": [
            {"route": "oxen", "first": 1, "kind": "rate_limit", "retry_after": 2},
            {"path": "/invoke-chat$", "every": 2, "kind": "internal"},
        ],
    }
    with threaded_server(settings_with(tmp_path, testing)) as live:
        oxen, dat1, dat1_openai = CASES["oxen"], CASES["dat1"], CASES["dat1-open-ai"]
        first = post(live, oxen, None)
        oxen.check_error(first, 429)
        assert first.headers["retry-after"] == "2"
        assert post(live, oxen, None).status_code == 200
        statuses = [post(live, dat1, None).status_code for _ in range(4)]
        assert statuses == [200, 500, 200, 500]
        assert post(live, dat1_openai, None).status_code == 200  # same wire API, another path
        assert post(live, CASES["openai"], None).status_code == 200


def test_with_faults_disabled_the_header_is_ignored_and_the_plan_inactive(tmp_path: Path) -> None:
    testing = {"faults_enabled": False, "faults": [{"kind": "internal"}]}
    with threaded_server(settings_with(tmp_path, testing)) as live:
        case = CASES["openai"]
        for value in ("rate_limit", "cut", "not a fault at all"):
            response = post(live, case, value)
            assert response.status_code == 200 and ANSWER in case.text_of(response.json())


# ---- settings -----------------------------------------------------------------------------------------------------

GPU_FAMILIES = ("h100", "h200", "a100", "b200")
PRODUCTION = ["cpu.yaml", "gpu.yaml", "gpu-dummy.yaml", "bench-gpu.yaml", *(f"gpu-{g}.yaml" for g in GPU_FAMILIES)]


@pytest.mark.parametrize("profile", PRODUCTION)
def test_production_profiles_refuse_faults_unless_allowed(profile: str) -> None:
    path = CONFIG_DIR / profile
    assert load_settings(path).testing.production
    with pytest.raises(ConfigError, match="allow_faults_in_production"):
        load_settings(path, {"testing": {"faults_enabled": True}})
    allowed = load_settings(path, {"testing": {"faults_enabled": True, "allow_faults_in_production": True}})
    assert allowed.testing.faults_enabled


def test_the_example_plan_loads_off_and_validates() -> None:
    example = load_settings(CONFIG_DIR / "faults-example.yaml")
    assert not example.testing.faults_enabled and not example.testing.production
    assert len(example.testing.faults) >= 5
    assert load_settings(CONFIG_DIR / "faults-example.yaml", {"testing": {"faults_enabled": True}}).testing.faults
    assert not load_settings(CONFIG_DIR / "scripted.yaml").testing.faults_enabled


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "rate_limit", "route": "nope"}, "no wire API"),
        ({"kind": "rate_limit", "path": "("}, "regex"),
        ({"kind": "rate_limit", "first": 1, "every": 2}, "not both"),
        ({"kind": "cut", "retry_after": 2}, "retry_after"),
        ({"kind": "slow"}, "needs first_token_delay_s"),
        ({"kind": "internal", "token_delay_s": 0.1}, "delays"),
        ({"kind": "slow", "token_delay_s": 0.1, "after": 1}, "after"),
        ({"kind": "rate_limit", "timeout_s": 1}, "timeout_s"),
        ({"kind": "internal", "header_only": True}, "needs a name"),
        ({"kind": "internal", "name": "cut"}, "no fault kind"),
        ({"kind": "internal", "unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_rules_are_refused(rule: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Settings(testing={"faults": [rule]})


def test_faults_need_one_api_process() -> None:
    with pytest.raises(ValueError, match="api_processes"):
        Settings(server={"api_processes": 2}, testing={"faults_enabled": True})


def test_rule_names_are_unique() -> None:
    rule = {"kind": "internal", "name": "same"}
    with pytest.raises(ValueError, match="unique"):
        Settings(testing={"faults": [rule, rule]})


def test_a_plan_passes_as_a_list_of_dicts_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = [{"name": "once", "route": "anthropic", "first": 1, "kind": "overloaded"}]
    monkeypatch.setenv("GPTOSS_TESTING__FAULTS_ENABLED", "true")
    monkeypatch.setenv("GPTOSS_TESTING__FAULTS", json.dumps(rules))
    settings = load_settings(CONFIG_DIR / "scripted.yaml")
    assert settings.testing.faults_enabled
    assert [r.model_dump(exclude_defaults=True) for r in settings.testing.faults] == rules


@pytest.mark.parametrize("stream", [False, True], ids=["polled", "streamed"])
def test_a_cut_background_response_ends_failed_in_the_store(server: LiveServer, stream: bool) -> None:
    """A background run is detached from any connection: a ``cut`` in it ends the response ``failed`` (stored, and
    the last event of its stream), never left in progress."""
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Fault": "cut after=3"}
    url = server.base_url + "/v1/responses"
    body = {"model": "gpt-oss-120b", "input": "Say hello.", "background": True, "stream": stream}
    r = requests.post(url, json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    if stream:
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        response_id = events[0]["response"]["id"]
    else:
        response_id = r.json()["id"]
        # following the run returns once it has ended
        follow = requests.get(f"{url}/{response_id}", params={"stream": "true"}, headers=headers, timeout=60)
        events = [json.loads(line[6:]) for line in follow.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"], events[-3:]
    stored = requests.get(f"{url}/{response_id}", headers=headers, timeout=60).json()
    assert stored["status"] == "failed"
    assert stored["error"] == {
        "code": "server_error",
        "message": "The server had an error while processing your request.",
    }
    assert stored["output"], "what came before the cut is kept"
    assert stored == events[-1]["response"]
