"""Record an engine's token streams to a folder, and read them back for replay.

``RecordingEngine`` wraps whichever engine runs (``serve --record DIR``, setting ``engine.record_dir``). For each
request it stores the rendered prompt token ids and every ``EngineStep`` as the engine produced it (token ids,
finish reason, stop reason, logprobs, cached tokens, prompt logprobs), so the scripted engine
(``engine.scripted.mode: recording``) can replay the same stream with the same step boundaries: the route's bytes
come out the same, ids and clocks aside.

Layout of a recording folder:

- ``engine.json``: the recorded engine's name, model and context length (replay reports the same context length,
  so output budgets come out the same);
- ``<hash>.jsonl``: one line per recorded run ("take") of the request with that hash.

The hash (``request_hash``) covers what changes the engine's token stream or where the server cuts it: the prompt
token ids, the output budget the engine was given, the stop token ids, the constraint (JSON schema, grammar), and
the sampling options ``KEY_SAMPLING`` (stop strings included: the server closes the stream at one). It leaves out
the request id, and the ``max_tokens`` the client asked for (the budget the engine got is what counts). A request
recorded several times replays its takes in the order they were recorded; the last one repeats after that.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from server.engine.base import Engine, EngineInfo, EngineStep, GenerationRequest
from server.errors import ConfigError, EngineUnavailableError, InvalidRequestError, NotFoundError
from server.types import RankedLogprob, TokenLogprob

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "engine.json"
KEY_SAMPLING = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "ignore_eos",
    "min_tokens",
    "prompt_logprobs",
    "bad_words",
    "allowed_token_ids",
)


def request_key(request: GenerationRequest) -> dict[str, Any]:
    """What identifies a request in a recording (see the module docstring)."""
    sampling = {name: getattr(request.sampling, name) for name in KEY_SAMPLING}
    if sampling["logit_bias"] is not None:
        sampling["logit_bias"] = {str(k): v for k, v in sorted(sampling["logit_bias"].items())}
    return {
        "prompt_token_ids": list(request.prompt_token_ids),
        "max_tokens": request.max_tokens,
        "stop_token_ids": list(request.stop_token_ids),
        "constraint": request.constraint,
        "sampling": sampling,
    }


def request_hash(request: GenerationRequest) -> str:
    """16 hex digits of the SHA-256 of the request's key as canonical JSON."""
    text = json.dumps(request_key(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_to_json(step: EngineStep) -> dict[str, Any]:
    out: dict[str, Any] = {"token_ids": list(step.token_ids)}
    if step.finish_reason is not None:
        out["finish_reason"] = step.finish_reason
    if step.stop_reason is not None:
        out["stop_reason"] = step.stop_reason
    if step.logprobs is not None:
        out["logprobs"] = [[e.token_id, e.logprob, [list(t) for t in e.top]] for e in step.logprobs]
    if step.cached_tokens is not None:
        out["cached_tokens"] = step.cached_tokens
    if step.prompt_logprobs is not None:
        out["prompt_logprobs"] = [
            None if entry is None else [[r.token_id, r.logprob, r.rank] for r in entry]
            for entry in step.prompt_logprobs
        ]
    if step.kv_transfer_params is not None:
        out["kv_transfer_params"] = step.kv_transfer_params
    return out


def step_from_json(data: dict[str, Any]) -> EngineStep:
    logprobs, prompt = data.get("logprobs"), data.get("prompt_logprobs")
    return EngineStep(
        token_ids=list(data["token_ids"]),
        finish_reason=data.get("finish_reason"),
        stop_reason=data.get("stop_reason"),
        logprobs=None
        if logprobs is None
        else [TokenLogprob(tid, lp, [(t, p) for t, p in top]) for tid, lp, top in logprobs],
        cached_tokens=data.get("cached_tokens"),
        prompt_logprobs=None
        if prompt is None
        else [None if entry is None else [RankedLogprob(*r) for r in entry] for entry in prompt],
        kv_transfer_params=data.get("kv_transfer_params"),
    )


def error_to_json(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(getattr(exc, "message", exc)),
        "param": getattr(exc, "param", None),
    }


def error_from_json(data: dict[str, Any]) -> Exception:
    """The recorded error again: the core's typed errors the service tells apart by type, else an exception of a
    class with the recorded name (the service names it in its message)."""
    kind, message = data["type"], data["message"]
    if kind == "EngineUnavailableError":
        return EngineUnavailableError(message)
    if kind in ("InvalidRequestError", "ContextLengthError"):
        return InvalidRequestError(message, param=data.get("param"))
    return type(kind, (RuntimeError,), {})(message)


def _line(data: dict[str, Any]) -> str:
    # stdlib json: logprobs may be -inf, which it writes as -Infinity and reads back
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"


class RecordingEngine:
    """Another engine, its token streams written to ``folder`` as they pass (see the module docstring)."""

    def __init__(self, inner: Engine, folder: Path) -> None:
        self._inner = inner
        self._folder = Path(folder)

    @property
    def info(self) -> EngineInfo:
        return self._inner.info

    async def start(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        await self._inner.start()
        info = self._inner.info
        manifest = {"format": FORMAT, "engine": info.name, "model": info.model, "max_model_len": info.max_model_len}
        (self._folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    async def shutdown(self) -> None:
        await self._inner.shutdown()

    async def check_health(self) -> None:
        await self._inner.check_health()

    def num_running(self) -> int:
        return self._inner.num_running()

    async def abort(self, request_id: str) -> None:
        await self._inner.abort(request_id)

    def validate(self, request: GenerationRequest) -> None:
        """The inner engine's check; a request it refuses is recorded as refused (replay refuses it alike)."""
        try:
            self._inner.validate(request)
        except InvalidRequestError as exc:
            self._write(request, {"rejected": error_to_json(exc)})
            raise

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        steps: list[dict[str, Any]] = []
        take: dict[str, Any] = {"steps": steps, "end": "closed"}
        stream = self._inner.generate(request)
        try:
            async for step in stream:
                # the step as produced, before any consumer changes it (the core trims logprobs in place)
                steps.append(step_to_json(step))
                if step.finish_reason is not None:
                    take["end"] = "finished"
                yield step
        except Exception as exc:
            take["end"], take["error"] = "error", error_to_json(exc)
            raise
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            self._write(request, take)

    def _write(self, request: GenerationRequest, take: dict[str, Any]) -> None:
        key = request_key(request)
        path = self._folder / f"{request_hash(request)}.jsonl"
        try:
            with path.open("a", encoding="utf-8") as out:
                out.write(_line({"key": key, **take}))
        except OSError:
            log.exception("could not record request %s in %s", request.request_id, path)


class Recording:
    """A recording folder read for replay: the takes of each request hash, handed out in recorded order."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.folder} is no recording folder (its {MANIFEST} cannot be read: {exc})") from exc
        if manifest.get("format") != FORMAT:
            raise ConfigError(f"Recording {self.folder} has format {manifest.get('format')!r}; expected {FORMAT}.")
        self.max_model_len = int(manifest["max_model_len"])
        self.engine = str(manifest.get("engine"))
        self._takes: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.folder.glob("*.jsonl")):
            try:
                self._takes[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line]
            except (OSError, ValueError) as exc:
                raise ConfigError(f"Recording file {path} cannot be read: {exc}") from exc
        self._next: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._takes)

    def peek(self, request: GenerationRequest) -> dict[str, Any]:
        """The take the next run of ``request`` replays; ``NotFoundError`` (404) when the recording has none."""
        return self._find(request_hash(request))

    def take(self, request: GenerationRequest) -> dict[str, Any]:
        """The next take of ``request`` (``peek``), moving on to the one after it."""
        digest = request_hash(request)
        take = self._find(digest)
        self._next[digest] = self._next.get(digest, 0) + 1
        return take

    def _find(self, digest: str) -> dict[str, Any]:
        takes = self._takes.get(digest)
        if not takes:
            raise NotFoundError(
                f"No recorded answer for this request (request hash {digest}) in the recording {self.folder}: "
                "record it with the real engine (serve --record) first.",
                code="recording_miss",
            )
        return takes[min(self._next.get(digest, 0), len(takes) - 1)]


def recorded_steps(take: dict[str, Any]) -> list[EngineStep]:
    return [step_from_json(step) for step in take.get("steps", [])]
