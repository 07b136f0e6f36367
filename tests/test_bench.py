"""The benchmark harness (scripts/bench.py): route adapters against the scripted server, metrics on known data."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import aiohttp
import pytest

from server.harmony.encoding import get_encoding
from tests.helpers import SCRIPT_RULES, LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench

MAX_TOKENS = 40
LONG_SCRIPT = next(rule["text"] for rule in SCRIPT_RULES if rule["match"] == "^long$")


def expected_output(max_tokens: int) -> tuple[str, int]:
    """The answer text of the scripted ``long`` reply cut at ``max_tokens``, and its number of text tokens."""
    enc = get_encoding()
    ids = enc.encode(LONG_SCRIPT, allowed_special="all")
    header = len(enc.encode("<|channel|>final<|message|>", allowed_special="all"))
    return enc.decode(ids[header:max_tokens]), max_tokens - header


def request(live: LiveServer, route: str, stream: bool) -> bench.RequestResult:
    target = bench.Target(route, live.base_url, bench.ROUTES[route], live.api_key)

    async def go() -> bench.RequestResult:
        async with aiohttp.ClientSession() as session:
            return await bench.one_request(session, target, "long", MAX_TOKENS, stream)

    return asyncio.run(go())


@pytest.mark.parametrize("route", sorted(bench.ROUTES))
def test_stream_adapter_counts_tokens_and_text(scripted_server: LiveServer, route: str) -> None:
    text, text_tokens = expected_output(MAX_TOKENS)
    result = request(scripted_server, route, stream=True)
    assert result.ok, result.error
    assert result.text == text
    assert result.exact_tokens_reported  # every route reports usage when streaming
    assert result.output_tokens == MAX_TOKENS
    assert result.text_events == text_tokens  # one event per token (stream_interval 1)
    assert len(result.itl) == text_tokens - 1
    assert result.ttft is not None and result.first_chunk is not None
    assert 0 < result.ttft <= result.e2e


@pytest.mark.parametrize("route", sorted(bench.ROUTES))
def test_non_stream_adapter(scripted_server: LiveServer, route: str) -> None:
    text, _ = expected_output(MAX_TOKENS)
    result = request(scripted_server, route, stream=False)
    assert result.ok, result.error
    assert result.text == text
    assert result.output_tokens == MAX_TOKENS


def test_wrong_key_is_an_error(scripted_server: LiveServer) -> None:
    target = bench.Target("openai", scripted_server.base_url, bench.ROUTES["openai"], "wrong-key")

    async def go() -> bench.RequestResult:
        async with aiohttp.ClientSession() as session:
            return await bench.one_request(session, target, "long", 8, True)

    result = asyncio.run(go())
    assert not result.ok
    assert result.error is not None and result.error.startswith("HTTP 401")


def test_run_scenario_bounded_count(scripted_server: LiveServer) -> None:
    target = bench.Target("openai", scripted_server.base_url, bench.ROUTES["openai"], scripted_server.api_key)
    sc = bench.Scenario(concurrency=3, num_requests=5, prompt_tokens=16, output_tokens=8, warmup=1)
    results = asyncio.run(bench.run_scenario(target, sc, progress=False))
    assert len(results) == 5
    summary = bench.summarize(results)
    assert summary.successes == 5 and summary.errors == 0
    assert summary.output_tokens == 5 * 8  # the echoed 16-token prompt, cut at 8 tokens
    assert bench.check_token_counts(results, target.route, 8) is None
    assert "exactly 9" in (bench.check_token_counts(results, target.route, 9) or "")


def test_frugal_client_counts_what_the_timing_client_counts(scripted_server: LiveServer) -> None:
    target = bench.Target("openai", scripted_server.base_url, bench.ROUTES["openai"], scripted_server.api_key)
    sc = bench.Scenario(concurrency=3, num_requests=7, prompt_tokens=24, output_tokens=12, warmup=2)
    frugal = bench.run_frugal(target, sc, poll_s=0.002)
    timed = asyncio.run(bench.run_scenario(target, sc, progress=False))
    assert len(frugal) == 7 and all(r.ok for r in frugal), [r.error for r in frugal]
    assert [r.output_tokens for r in frugal] == [12] * 7  # the usage chunk's completion_tokens
    assert sorted(r.text_events for r in frugal) == sorted(r.text_events for r in timed)
    assert all(0 < r.start < r.end for r in frugal)
    summary = bench.summarize(frugal)
    assert summary.successes == 7 and summary.output_tokens == 7 * 12 and summary.output_tokens_per_s > 0


def test_frugal_client_reports_http_errors(scripted_server: LiveServer) -> None:
    target = bench.Target("openai", scripted_server.base_url, bench.ROUTES["openai"], "wrong-key")
    results = bench.run_frugal(target, bench.Scenario(concurrency=2, num_requests=3, output_tokens=4, warmup=0))
    assert len(results) == 3 and not any(r.ok for r in results)
    assert all((r.error or "").startswith("HTTP/1.1 401") for r in results)


def test_frugal_client_reports_a_refused_connection() -> None:
    target = bench.Target("openai", f"http://127.0.0.1:{bench.free_port()}", bench.ROUTES["openai"])
    results = bench.run_frugal(target, bench.Scenario(concurrency=2, num_requests=3, output_tokens=4, warmup=1))
    assert len(results) == 3 and not any(r.ok for r in results)
    assert all((r.error or "").startswith("ConnectionRefusedError") for r in results)


def test_ceiling_medians_ratios_and_scaling() -> None:
    def run(rep: int, server: str, per_core: float, tok_s: float) -> dict[str, object]:
        return {"rep": rep, "server": server, "concurrency": 32, "tokens_per_cpu_s": per_core,
                "summary": {"output_tokens_per_s": tok_s}}  # fmt: skip

    runs = [run(0, "bare", 100.0, 90.0), run(1, "bare", 120.0, 100.0), run(2, "bare", 110.0, 95.0)]
    runs += [run(0, "ours", 50.0, 40.0), run(1, "ours", 60.0, 50.0), run(2, "ours", 55.0, 45.0)]
    runs += [run(0, "ours-2p", 55.0, 60.0), run(1, "ours-2p", 57.0, 95.0), run(2, "ours-2p", 56.0, 90.0)]
    row = bench.ceiling_medians(runs)["32"]
    assert row["bare_tok_per_core"] == 110.0 and row["ours_tok_per_core"] == 55.0
    assert row["ours_ratio_per_core"] == 0.5 and row["ours_ratio_tok_s"] == 45.0 / 95.0
    assert row["ours-2p_scaling"] == 1.9  # per repetition: 1.5, 1.9, 2.0 (not the ratio of medians, 90 / 45)
    assert "bare_scaling" not in row and "ours_scaling" not in row


# ---- pure functions -------------------------------------------------------------------------------------------


def test_percentile_linear_interpolation() -> None:
    data = [4.0, 1.0, 3.0, 2.0]
    assert bench.percentile(data, 0) == 1.0
    assert bench.percentile(data, 100) == 4.0
    assert bench.percentile(data, 50) == 2.5
    assert bench.percentile(data, 90) == pytest.approx(3.7)
    assert bench.percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert bench.percentile([7.0], 99) == 7.0
    assert math.isnan(bench.percentile([], 50))


def test_summarize_known_results() -> None:
    a = bench.RequestResult(ok=True, start=0.0, end=2.0, ttft=0.5, itl=[0.1, 0.2], output_tokens=11)
    b = bench.RequestResult(ok=True, start=1.0, end=4.0, ttft=1.0, itl=[0.3], output_tokens=21)
    c = bench.RequestResult(ok=False, start=1.5, end=1.6, error="HTTP 500")
    s = bench.summarize([a, b, c])
    assert (s.requests, s.successes, s.errors) == (3, 2, 1)
    assert s.duration_s == 4.0
    assert s.requests_per_s == 0.5
    assert s.output_tokens == 32 and s.output_tokens_per_s == 8.0
    assert s.ttft_ms["p50"] == pytest.approx(750.0)
    assert s.itl_ms["p50"] == pytest.approx(200.0)  # pooled gaps 0.1, 0.2, 0.3
    assert s.e2e_ms["p50"] == pytest.approx(2500.0)
    # TPOT = (e2e - ttft) / (tokens - 1): a = 1.5/10, b = 2.0/20
    assert a.tpot == pytest.approx(0.15) and b.tpot == pytest.approx(0.1)
    assert s.tpot_ms["mean"] == pytest.approx(125.0)
    assert s.first_errors == ["HTTP 500"]


def test_sse_splitting_across_chunks_crlf_and_error_lines() -> None:
    buf = bytearray(b'data: {"a": 1}\n\nevent: message\ndata: {"b"')
    assert list(bench.iter_sse_payloads(buf)) == [b'{"a": 1}']
    buf += b': 2}\r\n\r\ndata: [DONE]\n\nerror: {"code": 500}\n\n'
    assert list(bench.iter_sse_payloads(buf)) == [b'{"b": 2}', b"[DONE]", b'{"error": {"code": 500}}']
    assert buf == b""


def test_event_parsers() -> None:
    calls = [{"function": {"arguments": "{"}}]
    chunk = {"choices": [{"delta": {"reasoning": "r", "content": "c", "tool_calls": calls}}]}
    assert bench.parse_openai_event(chunk) == bench.EventInfo("cr{", None, False, None)
    final = {"choices": [], "usage": {"completion_tokens": 7}}
    assert bench.parse_openai_event(final).completion_tokens == 7
    assert bench.parse_openai_event({"error": {"message": "boom"}}).error == "boom"
    assert bench.parse_dataoorts_event({"response": "hi"}) == bench.EventInfo("hi")
    done = bench.parse_dataoorts_event({"response": "", "usage": {"completion_tokens": 3}})
    assert done.done and done.completion_tokens == 3


@pytest.mark.parametrize("n", [1, 16, 128, 1000])
def test_exact_prompt_has_exact_token_count(n: int) -> None:
    text = bench.exact_prompt(n, seed=3)
    assert len(get_encoding().encode(text)) == n
    assert bench.exact_prompt(128, seed=1) != bench.exact_prompt(128, seed=2)


def test_parse_target_and_bodies() -> None:
    t = bench.parse_target("peer=vllm@http://127.0.0.1:9/", "k")
    assert (t.label, t.route.name, t.base_url, t.api_key) == ("peer", "vllm", "http://127.0.0.1:9", "k")
    assert bench.parse_target("dat1@http://h:1").label == "dat1"
    with pytest.raises(ValueError):
        bench.parse_target("nosuch@http://h:1")
    body = bench.ROUTES["openai"].body([{"role": "user", "content": "x"}], True, 64)
    assert body["ignore_eos"] is True and body["min_tokens"] == 64 and body["max_tokens"] == 64
    assert bench.ROUTES["dataoorts"].body([], False, 5)["data"]["max_tokens"] == 5
    assert bench.ROUTES["dat1"].auth_header("k") == {"X-API-Key": "k"}
