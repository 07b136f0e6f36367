"""Prometheus metrics: vLLM's own under vLLM's names, and the front end's under ``gptoss:``.

With the vLLM engine, vLLM's stat logging registers its metrics (``vllm:num_requests_running``,
``vllm:kv_cache_usage_perc``, ``vllm:time_to_first_token_seconds``, ...) in prometheus_client's default registry of
this process, exactly as its own API server exposes them: dashboards, vLLM's router, llm-d's scheduler and KEDA read
those. The scripted engine keeps the request gauges, token counters and latency histograms of the same names
(``ScriptedEngineMetrics``), so they can be tried offline. Ours are filled from each request's record when its
response ends (``server/requestlog.py``): one place, so logs and metrics agree.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from server.requestlog import RequestRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ENGINE_LABELS = ("model_name", "engine")


class FrontEndMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "gptoss:requests",
            "Requests answered, by wire API, HTTP status and API key name.",
            ["api", "status", "key"],
            registry=registry,
        )
        self.duration = Histogram(
            "gptoss:request_duration_seconds",
            "Request duration to the last byte.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "gptoss:time_to_first_token_seconds",
            "Time from the request to its first generated token.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter("gptoss:prompt_tokens", "Prompt tokens.", ["api"], registry=registry)
        self.cached_tokens = Counter(
            "gptoss:cached_prompt_tokens", "Prompt tokens served from the prefix cache.", ["api"], registry=registry
        )
        self.generation_tokens = Counter("gptoss:generation_tokens", "Generated tokens.", ["api"], registry=registry)
        self.rejected = Counter(
            "gptoss:rejected_requests", "Requests refused with 429 (admission control).", ["api"], registry=registry
        )
        self.disconnects = Counter(
            "gptoss:client_disconnects", "Clients gone before their answer was complete.", ["api"], registry=registry
        )
        self.aborts = Counter(
            "gptoss:aborted_requests",
            "Answers the server cut short (drain, deadline, engine failure).",
            ["api"],
            registry=registry,
        )
        self.faults = Counter(
            "gptoss:injected_faults",
            "Faults injected by the testing fault plan, by kind.",
            ["api", "kind"],
            registry=registry,
        )
        self.engine_failures = Counter(
            "gptoss:engine_failures", "Times the engine failed to start or died.", registry=registry
        )

    def observe(self, record: RequestRecord) -> None:
        api = record.api or "none"
        status = record.status or 0
        self.requests.labels(api, str(status), record.key or "").inc()
        if record.duration_ms is not None:
            self.duration.labels(api).observe(record.duration_ms / 1000)
        if record.ttft_ms is not None:
            self.ttft.labels(api).observe(record.ttft_ms / 1000)
        if record.prompt_tokens:
            self.prompt_tokens.labels(api).inc(record.prompt_tokens)
        if record.cached_tokens:
            self.cached_tokens.labels(api).inc(record.cached_tokens)
        if record.completion_tokens:
            self.generation_tokens.labels(api).inc(record.completion_tokens)
        if status == 429:
            self.rejected.labels(api).inc()
        if status == 499:
            self.disconnects.labels(api).inc()
        if record.finish_reason in ("abort", "error"):
            self.aborts.labels(api).inc()
        if record.fault is not None:
            self.faults.labels(api, record.fault).inc()


class ScriptedEngineMetrics:
    """vLLM's request gauges, token counters and latency histograms, for the scripted engine (same names and
    labels as vLLM's PrometheusStatLogger)."""

    def __init__(self, model_name: str, registry: CollectorRegistry = REGISTRY) -> None:
        labels = (model_name, "0")
        self.running = Gauge(
            "vllm:num_requests_running",
            "Requests in model execution batches.",
            ENGINE_LABELS,
            registry=registry,
            multiprocess_mode="livesum",  # several API processes, an engine each: the sum
        ).labels(*labels)
        self.waiting = Gauge(
            "vllm:num_requests_waiting",
            "Requests waiting to be processed.",
            ENGINE_LABELS,
            registry=registry,
            multiprocess_mode="livesum",
        ).labels(*labels)
        self.kv_cache = Gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage (1 = 100%).",
            ENGINE_LABELS,
            registry=registry,
            multiprocess_mode="max",
        ).labels(*labels)
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens processed.", ENGINE_LABELS, registry=registry
        ).labels(*labels)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generation tokens processed.", ENGINE_LABELS, registry=registry
        ).labels(*labels)
        self.prefix_queries = Counter(
            "vllm:prefix_cache_queries", "Prefix-cache queries, in tokens.", ENGINE_LABELS, registry=registry
        ).labels(*labels)
        self.prefix_hits = Counter(
            "vllm:prefix_cache_hits", "Prefix-cache hits, in tokens.", ENGINE_LABELS, registry=registry
        ).labels(*labels)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            ENGINE_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(*labels)
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Inter-token latency.",
            ENGINE_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(*labels)
        self.request_latency = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            ENGINE_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(*labels)
        self.success = Counter(
            "vllm:request_success",
            "Finished requests, by finish reason.",
            [*ENGINE_LABELS, "finished_reason"],
            registry=registry,
        )
        self._labels = labels

    def finished(self, reason: str) -> None:
        self.success.labels(*self._labels, reason).inc()


_front_end: FrontEndMetrics | None = None
_scripted: dict[str, ScriptedEngineMetrics] = {}


def front_end() -> FrontEndMetrics:
    """The process's front-end metrics (created once: prometheus_client's registry holds one of each name)."""
    global _front_end
    if _front_end is None:
        _front_end = FrontEndMetrics()
    return _front_end


def scripted_engine(model_name: str) -> ScriptedEngineMetrics:
    if not _scripted:
        _scripted[model_name] = ScriptedEngineMetrics(model_name)
    return next(iter(_scripted.values()))


def exposition() -> bytes:
    """Everything in the process's registry (vLLM's and ours), in Prometheus' text format; with several API processes
    (``PROMETHEUS_MULTIPROC_DIR`` set), the sum over all of them, as vLLM's multi-API-server mode serves it."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
