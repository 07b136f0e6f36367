"""One contract over every provider route: auth, validation, unknown model, stream framing, and the
non-streaming result equal to the fold of the stream."""

from __future__ import annotations

import pytest
import requests

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import LiveServer

CASES = all_cases()
MESSAGES = [{"role": "user", "content": "reason"}]


def post(server: LiveServer, case: ProviderCase, body: dict, key: str | None) -> requests.Response:  # type: ignore[type-arg]
    headers = case.auth_headers(key) if key is not None else {}
    return requests.post(server.base_url + case.chat_path, json=body, headers=headers, timeout=30)


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def test_ok(scripted_server: LiveServer, case: ProviderCase) -> None:
    r = post(scripted_server, case, case.body(MESSAGES, False, {}), scripted_server.api_key)
    assert r.status_code == 200, r.text
    assert case.text_of(r.json()) == "Hello! How can I help?"


def test_missing_key(scripted_server: LiveServer, case: ProviderCase) -> None:
    case.check_error(post(scripted_server, case, case.body(MESSAGES, False, {}), None), 401)


def test_wrong_key(scripted_server: LiveServer, case: ProviderCase) -> None:
    case.check_error(post(scripted_server, case, case.body(MESSAGES, False, {}), "wrong-key"), 401)


def test_invalid_body(scripted_server: LiveServer, case: ProviderCase) -> None:
    body = case.body(MESSAGES, False, case.invalid_fields)
    case.check_error(post(scripted_server, case, body, scripted_server.api_key), 400)


def test_missing_messages(scripted_server: LiveServer, case: ProviderCase) -> None:
    """A 400, or, where a missing field is its zero value (Ollama), the empty answer that only loads the model."""
    body = case.body(MESSAGES, False, {})
    body.pop(case.conversation_field, None)
    if "data" in body and isinstance(body["data"], dict):
        body["data"].pop(case.conversation_field, None)
    r = post(scripted_server, case, body, scripted_server.api_key)
    if case.zero_values:
        assert r.status_code == 200, r.text
        assert case.text_of(r.json()) == "" and case.reasoning_of(r.json()) == ""
    else:
        case.check_error(r, 400)


def test_unknown_model(scripted_server: LiveServer, case: ProviderCase) -> None:
    if case.unknown_model_fields is None:
        pytest.skip("this provider's body names no model, or any name is served")
    body = case.body(MESSAGES, False, case.unknown_model_fields)
    case.check_error(post(scripted_server, case, body, scripted_server.api_key), case.unknown_model_status)


def test_stream_terminator_and_fold(scripted_server: LiveServer, case: ProviderCase) -> None:
    r = post(scripted_server, case, case.body(MESSAGES, True, {}), scripted_server.api_key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(case.stream_media_type)
    raw = r.content.decode()
    payloads, blocks = case.split_stream(raw)
    assert case.ends_stream(blocks[-1])
    assert not any(case.ends_stream(b) for b in blocks[:-1])
    assert raw.endswith(case.stream_end)
    streamed = case.stream_text_of(payloads)
    full = post(scripted_server, case, case.body(MESSAGES, False, {}), scripted_server.api_key).json()
    assert streamed == case.text_of(full) == "Hello! How can I help?"


def _shape(value: object) -> object:
    """Keys (recursively) without values: the envelope, not its text."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("message", "detail", "title", "type", "code")}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_unknown_path_and_wrong_method_use_the_providers_envelope(
    scripted_server: LiveServer, case: ProviderCase
) -> None:
    base = scripted_server.base_url
    reference = post(scripted_server, case, case.body(MESSAGES, False, {}), None)  # 401 in the provider's envelope
    assert reference.status_code == 401
    wrong_method = requests.get(base + case.chat_path, headers=case.auth_headers(scripted_server.api_key), timeout=10)
    unknown = requests.post(base + case.path_with(case.unknown_path), timeout=10)
    for response, status in ((wrong_method, 405), (unknown, 404)):
        assert response.status_code == status, response.text
        assert _shape(response.json()) == _shape(reference.json()), (case.name, response.text, reference.text)
