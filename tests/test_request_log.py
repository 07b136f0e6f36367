"""X-Request-Id on every route and one log line per request with tokens and latency, never prompt text or keys."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer

CASES = all_cases()
SECRET_TEXT = "the-secret-prompt-text"


def _wait_for_line(caplog: pytest.LogCaptureFixture, wanted: str) -> str:
    for _ in range(500):
        for rec in list(caplog.records):
            if rec.name == "server.requests" and wanted in (message := rec.getMessage()):
                return message
        time.sleep(0.01)
    raise AssertionError(f"no request line with {wanted}")


def _post(live: LiveServer, case: ProviderCase, stream: bool, headers: dict[str, str]) -> requests.Response:
    body = case.body([{"role": "user", "content": SECRET_TEXT}], stream, {})
    return requests.post(
        live.base_url + case.chat_path, json=body, headers={**case.auth_headers(API_KEY), **headers}, timeout=30
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_request_id_round_trips_and_the_line_has_tokens(
    scripted_server: LiveServer, case: ProviderCase, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    wanted = f'request_id="req-{case.name}-{stream}"'
    with caplog.at_level(logging.INFO, logger="server.requests"):
        r = _post(scripted_server, case, stream, {"X-Request-Id": f"req-{case.name}-{stream}"})
        assert r.status_code == 200
        line = _wait_for_line(caplog, wanted)  # written once the server has finished sending
    assert r.headers["x-request-id"] == f"req-{case.name}-{stream}"
    for part in ("status=200", "prompt_tokens=", "completion_tokens=", "duration_ms=", "ttft_ms=", "finish_reason="):
        assert part in line, line
    assert f'api="{case.name.split("-")[0]}"' in line
    assert SECRET_TEXT not in line and API_KEY not in line


def test_errors_and_unknown_paths_get_an_id_too(scripted_server: LiveServer) -> None:
    r = requests.post(scripted_server.base_url + "/v1/chat/completions", json={}, timeout=10)
    assert r.status_code == 401 and len(r.headers["x-request-id"]) == 32
    r = requests.get(scripted_server.base_url + "/nowhere", headers={"X-Request-Id": "bad id"}, timeout=10)
    assert r.status_code == 404 and r.headers["x-request-id"] != "bad id"  # not echoed: replaced by a fresh id


def test_probes_are_not_logged_and_json_lines_parse(
    scripted_server: LiveServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with caplog.at_level(logging.INFO, logger="server.requests"):
        assert requests.get(scripted_server.base_url + "/live", timeout=10).status_code == 200
        assert requests.get(scripted_server.base_url + "/health", timeout=10).status_code == 200
    assert not [rec for rec in caplog.records if rec.name == "server.requests"]
    from server import requestlog
    from server.requestlog import RequestRecord

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="server.requests"):
        requestlog.emit(RequestRecord("abc", "POST", '/v1/x"\nforged'), "json")
        requestlog.emit(RequestRecord("abc", "POST", '/v1/x"\nforged'), "text")
    as_json, as_text = (rec.getMessage() for rec in caplog.records)
    assert json.loads(as_json)["path"] == '/v1/x"\nforged'
    assert "\n" not in as_text and '"/v1/x\\"\\nforged"' in as_text  # quoted: a path cannot forge a line
