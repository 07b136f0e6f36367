"""Two server replicas sharing one PostgreSQL database (``store.url``) and one seal key: a tool loop started on one
continues on the other by ``previous_response_id``, and a response deleted on one is gone on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.helpers import API_KEY, scripted_settings, threaded_server
from tests.test_responses import WEATHER_TOOL

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def replica_settings(tmp: Path, url: str) -> Any:
    settings = scripted_settings(tmp)
    store = settings.store.model_copy(update={"url": url})
    return settings.model_copy(update={"store": store})


def test_a_tool_loop_moves_between_replicas_on_postgresql(tmp_path: Path, postgres_db_url: str) -> None:
    first_settings = replica_settings(tmp_path, postgres_db_url)
    with threaded_server(first_settings) as one, threaded_server(first_settings) as two:
        body = {"model": "gpt-oss-120b", "input": "forecast", "tools": [WEATHER_TOOL]}
        started = httpx.post(one.base_url + "/v1/responses", headers=HEADERS, timeout=30, json=body).json()
        call = started["output"][-1]
        assert call["type"] == "function_call"
        assert httpx.get(f"{two.base_url}/v1/responses/{started['id']}", headers=HEADERS).json() == started
        follow = httpx.post(two.base_url + "/v1/responses", headers=HEADERS, timeout=30, json={
            "model": "gpt-oss-120b", "previous_response_id": started["id"], "tools": [WEATHER_TOOL],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})  # fmt: skip
        assert follow.status_code == 200, follow.text
        assert follow.json()["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."
        assert httpx.delete(f"{one.base_url}/v1/responses/{follow.json()['id']}", headers=HEADERS).status_code == 200
        assert httpx.get(f"{two.base_url}/v1/responses/{follow.json()['id']}", headers=HEADERS).status_code == 404


def test_a_background_run_is_cancelled_through_another_replica(tmp_path: Path, postgres_db_url: str) -> None:
    settings = replica_settings(tmp_path, postgres_db_url)
    slow = settings.model_copy(
        update={"engine": settings.engine.model_copy(
            update={"scripted": settings.engine.scripted.model_copy(update={"token_delay_s": 0.05})})}
    )  # fmt: skip
    with threaded_server(slow) as one, threaded_server(settings) as two:
        body = {"model": "gpt-oss-120b", "input": "long", "background": True}
        queued = httpx.post(one.base_url + "/v1/responses", headers=HEADERS, timeout=30, json=body).json()
        cancelled = httpx.post(f"{two.base_url}/v1/responses/{queued['id']}/cancel", headers=HEADERS, timeout=30)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        again = httpx.get(f"{one.base_url}/v1/responses/{queued['id']}", headers=HEADERS).json()
        assert again["status"] == "cancelled" and again["output"][-1]["status"] == "incomplete"
