"""dat1 with ``providers.dat1.n_cmpl`` (llama-server builds that read ``n`` as ``n_cmpl``), with ``requests`` on
invoke-chat and the OpenAI SDK on the open-ai route, against a live scripted server: ``n`` choices in llama-server's
merged body (usage and timings of choice 0), a stream carrying each choice's chunks and its own final chunk(s) per
era, ``n_cmpl`` winning over ``n``, the slot bound's 400, and the documented build's refusal when the switch is off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import requests

from routes.dat1.settings import Dat1Settings
from tests.cases.dat1 import INVOKE, OPENAI_BASE
from tests.contract import sse_payloads
from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server

KEY = {"X-API-Key": API_KEY}
REASON = [{"role": "user", "content": "reason"}]
ANSWER = "Hello! How can I help?"
THOUGHT = "User says hi. Reply politely."


def start(tmp: Path, **dat1: Any) -> Any:
    settings = scripted_settings(tmp)
    settings.providers.dat1 = Dat1Settings(**dat1)
    return threaded_server(settings)


def invoke(live: LiveServer, body: dict[str, Any]) -> requests.Response:
    return requests.post(live.base_url + INVOKE, json=body, headers=KEY, timeout=60)


def test_n_choices_in_llama_servers_merged_body(tmp_path: Path) -> None:
    with start(tmp_path, n_cmpl=True, stream_era="C") as live:
        one = invoke(live, {"messages": REASON}).json()
        r = invoke(live, {"messages": REASON, "n": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert list(body) == ["choices", "created", "model", "system_fingerprint", "object", "usage", "id", "timings"]
        assert [c["index"] for c in body["choices"]] == [0, 1, 2]
        for choice in body["choices"]:
            assert list(choice) == ["finish_reason", "index", "message"]
            assert choice["message"] == {"role": "assistant", "reasoning_content": THOUGHT, "content": ANSWER}
        assert body["usage"] == one["usage"]  # choice 0's, as llama-server merges the tasks' bodies
        assert body["timings"]["predicted_n"] == one["usage"]["completion_tokens"]
        r = invoke(live, {"messages": REASON, "n": 2, "n_cmpl": 1})  # n_cmpl wins
        assert len(r.json()["choices"]) == 1
        assert len(invoke(live, {"messages": REASON, "n": 0}).json()["choices"]) == 1  # below 1: one task
        client = openai.OpenAI(base_url=live.base_url + OPENAI_BASE, api_key=API_KEY, max_retries=0)
        answer = client.chat.completions.create(model="gpt-120-oss", messages=REASON, n=2)  # type: ignore[arg-type]
        assert [c.message.content for c in answer.choices] == [ANSWER, ANSWER]


def test_each_streamed_choice_ends_with_its_own_final_chunks(tmp_path: Path) -> None:
    with start(tmp_path, n_cmpl=True, stream_era="C") as live:
        body = {"messages": REASON, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
        r = invoke(live, body)
        payloads, blocks = sse_payloads(r.text)
        assert blocks[-1] == "data: [DONE]" and blocks.count("data: [DONE]") == 1
        usages = [p for p in payloads if p["choices"] == []]
        assert len(usages) == 2  # each task's own usage chunk, timings on it
        assert all("timings" in p and p["usage"]["completion_tokens"] > 0 for p in usages)
        for index in (0, 1):
            mine = [p["choices"][0] for p in payloads if p["choices"] and p["choices"][0]["index"] == index]
            assert mine[0]["delta"] == {"role": "assistant", "content": None}
            assert "".join(c["delta"].get("content") or "" for c in mine) == ANSWER
            assert "".join(c["delta"].get("reasoning_content", "") for c in mine) == THOUGHT
            assert [c["finish_reason"] for c in mine if c["finish_reason"]] == ["stop"]
    with start(tmp_path, n_cmpl=True) as live:  # era A: each choice's finish chunk carries its usage and timings
        payloads, _ = sse_payloads(invoke(live, {"messages": REASON, "n": 2, "stream": True}).text)
        finals = [p for p in payloads if p["choices"][0]["finish_reason"]]
        assert sorted(p["choices"][0]["index"] for p in finals) == [0, 1]
        assert all("usage" in p and "timings" in p for p in finals)


def test_the_slot_bound_and_the_documented_build(tmp_path: Path) -> None:
    with start(tmp_path, n_cmpl=True, n_parallel=2) as live:
        r = invoke(live, {"messages": REASON, "n": 3})
        assert r.status_code == 400
        assert r.json() == {
            "error": {
                "code": 400,
                "message": "n_cmpl cannot be greater than the number of slots, please increase -np",
                "type": "invalid_request_error",
            }
        }
    with start(tmp_path) as live:  # the default: the Aug-2025 build
        r = invoke(live, {"messages": REASON, "n": 2})
        assert r.status_code == 400 and r.json()["error"]["message"] == "Only one completion choice is allowed"
