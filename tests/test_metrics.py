"""GET /metrics: Prometheus text that prometheus_client's parser reads, with vLLM's names (the real engine's own
metrics; the scripted engine's stand-ins) and ours per wire API."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from routes import WIRE_APIS
from tests.cases import all_cases
from tests.helpers import API_KEY, LiveServer

VLLM_NAMES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
)


def scrape(live: LiveServer) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    r = requests.get(live.base_url + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(r.text):
        samples = families.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families


def total(families: dict, family: str, suffix: str = "", **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        value
        for (name, sample_labels), value in families.get(family, {}).items()
        if name == family + suffix and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def drive(live: LiveServer) -> None:
    for case in all_cases():
        body = case.body([{"role": "user", "content": "reason"}], False, {})
        r = requests.post(live.base_url + case.chat_path, json=body, headers=case.auth_headers(API_KEY), timeout=120)
        assert r.status_code == 200, r.text
    requests.post(
        live.base_url + "/v1/chat/completions", json={}, headers={"Authorization": "Bearer wrong"}, timeout=30
    )


def test_metrics_with_the_scripted_engine(scripted_server: LiveServer) -> None:
    # the session server: other tests may have counted unrouted paths before this one
    unrouted = total(scrape(scripted_server), "gptoss:requests", "_total", api="none")
    drive(scripted_server)
    families = scrape(scripted_server)
    for name in VLLM_NAMES:
        assert name in families, name
    assert total(families, "vllm:prompt_tokens", "_total") > 0
    assert total(families, "vllm:generation_tokens", "_total") > 0
    for api in (p.name for p in WIRE_APIS):
        assert total(families, "gptoss:requests", "_total", api=api, status="200") > 0, api
        assert total(families, "gptoss:request_duration_seconds", "_count", api=api) > 0, api
        assert total(families, "gptoss:generation_tokens", "_total", api=api) > 0, api
    assert total(families, "gptoss:requests", "_total", api="openai", status="401") > 0
    # /metrics and probes are not counted
    assert total(families, "gptoss:requests", "_total", api="none") == unrouted


@pytest.mark.engine
def test_metrics_with_the_real_engine(vllm_server: LiveServer) -> None:
    drive(vllm_server)
    families = scrape(vllm_server)
    for name in VLLM_NAMES:
        assert name in families, name  # vLLM's own metrics, under vLLM's names and labels
    assert total(families, "vllm:prompt_tokens", "_total") > 0
    assert total(families, "vllm:generation_tokens", "_total") > 0
    assert total(families, "vllm:e2e_request_latency_seconds", "_count") > 0
    assert total(families, "gptoss:requests", "_total", api="openai", status="200") > 0
