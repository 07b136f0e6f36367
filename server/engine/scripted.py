"""A deterministic engine for offline client testing and fast tests.

It "generates" harmony text chosen per request: the first configured rule that applies (its regex matches the
last user message, decoded from the prompt; its turn number is the number of user messages; its tool-output regex
matches the tool result the prompt ends with), or an echo of the last user message as the final answer. A rule is
harmony text or reasoning/content/tool calls rendered with the harmony encoding (``server/harmony/script.py``).
Text is tokenized with the real o200k_harmony encoding and streamed one token per step, with an optional delay,
honouring max_tokens, stop tokens, min_tokens and aborts as vLLM does:

- a stop token ends the answer (the model's EOS ``<|return|>`` without a ``stop_reason``, unless ``ignore_eos``
  makes it a plain stop token), checked before max_tokens, so a stop token that is the last allowed token is a stop;
- ``min_tokens``: vLLM masks every stop token until min_tokens tokens are out, so the script's stop token (or its
  end) comes later; the scripted model writes filler tokens (a space each: harmless trailing whitespace in an
  answer or in a call's JSON arguments) until min_tokens tokens are out, then the stop token.

Logprobs, when asked, are those of a deterministic sampler: the chosen token ranks first at logprob 0.0, followed by
``top_logprobs - 1`` other token ids (a fixed stride through the text vocabulary) at decreasing finite logprobs, in
vLLM's rank order; each prompt token has probability 1 (``prompt_logprobs``: None for the first, as vLLM reports it).

It refuses what the vLLM engine refuses: where vLLM is installed, ``validate`` runs the vLLM engine's own checks
(sampling values, constraints compiled by xgrammar), and a constrained answer is the script as far as xgrammar lets
it out, then the shortest way xgrammar allows (a stop token as soon as one may come, else the lowest allowed token):
a choice, a regex, a grammar or a structural tag then holds the answer (``vllm_engine.constrained_tokens``).

In ``recording`` mode it replays a folder recorded with ``serve --record`` instead (``server/engine/recording.py``):
each request's recorded engine steps, as they were, by request hash; a request the recording lacks is refused
with a 404 naming its hash and the folder.
"""

from __future__ import annotations

import asyncio
import re
import time
import types
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import yaml

from server import metrics
from server.engine.base import EngineFinish, EngineInfo, EngineStep, GenerationRequest
from server.engine.detect import installed_vllm
from server.engine.recording import Recording, error_from_json, recorded_steps
from server.errors import ConfigError, EngineUnavailableError
from server.harmony.encoding import CHANNEL, END, FIRST_SPECIAL_ID, MESSAGE, RETURN, START, get_encoding
from server.harmony.script import turn_tokens
from server.settings import ScriptedSettings, ScriptRule
from server.types import PromptLogprobs, RankedLogprob, TokenLogprob


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    pattern: re.Pattern[str] | None
    token_ids: tuple[int, ...]
    tool_output: re.Pattern[str] | None = None
    turn: int | None = None


def load_rules(settings: ScriptedSettings) -> list[ScriptRule]:
    rules = list(settings.rules)
    if settings.rules_file is not None:
        path = Path(settings.rules_file)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read scripted rules file {path}: {exc}") from exc
        items = raw.get("rules", raw) if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ConfigError(f"Scripted rules file {path} must hold a list of rules.")
        rules.extend(ScriptRule.model_validate(item) for item in items)
    return rules


PREFIX_BLOCK = 16  # vLLM's default KV-cache block size
PREFIX_CACHE_PROMPTS = 64  # earlier prompts remembered
ALTERNATIVE_STRIDE = 7919  # a prime: the alternatives of one token are distinct ids


@types.coroutine
def _next_turn() -> Generator[None, None, None]:
    """Let the event loop run once (``asyncio.sleep(0)`` without its call): an engine's step boundary."""
    yield


def top_logprobs(token: int, count: int) -> list[tuple[int, float]]:
    """``count`` ranked (token id, logprob) entries: the chosen token at 0.0, then distinct other text tokens at
    -10, -11, ... (finite and decreasing, as vLLM ranks them)."""
    others = ((token + i * ALTERNATIVE_STRIDE) % FIRST_SPECIAL_ID for i in range(1, count))
    return [(token, 0.0), *((other, -9.0 - i) for i, other in enumerate(others, start=1))]


def first_stop(tokens: list[int], stops: set[int]) -> int:
    """The index of the first stop token in ``tokens``, or ``len(tokens)`` when there is none."""
    return min((tokens.index(stop) for stop in stops if stop in tokens), default=len(tokens))


def with_min_tokens(tokens: list[int], stops: set[int], min_tokens: int, filler: int) -> list[int]:
    """The script as vLLM's min_tokens lets it out: no stop token (nor the script's end) before min_tokens tokens;
    ``filler`` tokens take their place until then."""
    end = first_stop(tokens, stops)
    if end == len(tokens):
        return tokens + [filler] * max(0, min_tokens - len(tokens))
    return [*tokens[:end], *[filler] * max(0, min_tokens - end), tokens[end]]


class ScriptedEngine:
    def __init__(self, settings: ScriptedSettings, served_model_name: str = "gpt-oss-120b") -> None:
        self._settings = settings
        self._encoding = get_encoding()
        self._rules = [
            _CompiledRule(
                re.compile(rule.match, re.DOTALL) if rule.match is not None else None,
                tuple(self._rule_tokens(rule)),
                re.compile(rule.tool_output, re.DOTALL) if rule.tool_output is not None else None,
                rule.turn,
            )
            for rule in load_rules(settings)
        ]
        self._recording = Recording(settings.recording_dir) if settings.mode == "recording" else None
        max_model_len = self._recording.max_model_len if self._recording is not None else settings.max_model_len
        self._user = self._encoding.encode("user", disallowed_special=())
        self._final_header = [CHANNEL, *self._encoding.encode("final", disallowed_special=()), MESSAGE]
        (self._filler,) = self._encoding.encode(" ", disallowed_special=())
        self._running: dict[str, asyncio.Event] = {}
        self._seen_prompts: list[tuple[str | None, list[int]]] = []  # (cache salt, prompt)
        self._metrics = metrics.scripted_engine(served_model_name)
        self._started = False
        self._check: Callable[[GenerationRequest], object] | None = None
        self._constrain: Callable[[list[int], dict[str, object], tuple[int, ...], int], list[int]] | None = None
        self._info = EngineInfo(
            name="scripted",
            model=served_model_name,
            max_model_len=max_model_len,
            details={"mode": settings.mode, "rules": len(self._rules), "token_delay_s": settings.token_delay_s},
        )
        if self._recording is not None:
            self._info.details["recorded_requests"] = len(self._recording)

    def _rule_tokens(self, rule: ScriptRule) -> list[int]:
        if rule.text is not None:
            return list(self._encoding.encode(rule.text, allowed_special="all"))
        calls = [(call.name, call.arguments_text) for call in rule.tool_calls]
        return turn_tokens(rule.reasoning, rule.content, calls)

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        if installed_vllm() is not None:
            from server.engine import vllm_engine

            await asyncio.to_thread(vllm_engine.load_checks)
            self._check = vllm_engine.check_request
            self._constrain = vllm_engine.constrained_tokens
        self._started = True

    async def shutdown(self) -> None:
        for event in self._running.values():
            event.set()
        self._started = False

    async def check_health(self) -> None:
        if not self._started:
            raise EngineUnavailableError("The engine is not running.")

    def num_running(self) -> int:
        return len(self._running)

    def validate(self, request: GenerationRequest) -> None:
        """The vLLM engine's checks where vLLM is installed (the script runs whatever the constraint). A recording must
        hold the request (else 404), and refuses it again where the recorded engine did."""
        if self._check is not None:
            self._check(request)
        if self._recording is None:
            return
        take = self._recording.peek(request)
        if "rejected" in take:
            self._recording.take(request)
            raise error_from_json(take["rejected"])

    async def abort(self, request_id: str) -> None:
        event = self._running.get(request_id)
        if event is not None:
            event.set()

    def last_user_tokens(self, prompt: list[int]) -> list[int]:
        """The content tokens of the last user message in a rendered harmony prompt."""
        user, last = self._user, len(prompt) - 1
        backwards = prompt[::-1]  # list.index finds each <|start|> from the end (lists have no rindex)
        j = -1
        while True:
            try:
                j = backwards.index(START, j + 1)
            except ValueError:
                return []
            i = last - j
            if prompt[i + 1 : i + 1 + len(user)] == user:
                try:
                    begin = prompt.index(MESSAGE, i) + 1
                    end = prompt.index(END, begin)
                except ValueError:
                    return []
                return prompt[begin:end]

    def last_user_text(self, prompt: list[int]) -> str:
        """The content of the last user message in a rendered harmony prompt."""
        tokens = self.last_user_tokens(prompt)
        return self._encoding.decode(tokens) if tokens else ""

    def last_tool_output(self, prompt: list[int]) -> str | None:
        """The result text when the prompt's last message (before ``<|start|>assistant``) is a tool's, else None."""
        ends = [i for i, token in enumerate(prompt) if token == END]
        starts = [i for i, token in enumerate(prompt[: ends[-1]]) if token == START] if ends else []
        if not starts:
            return None
        start, end = starts[-1], ends[-1]
        try:
            begin = prompt.index(MESSAGE, start, end) + 1
        except ValueError:
            return None
        author = self._encoding.decode(prompt[start + 1 : begin]).split("<|", 1)[0].split(" ", 1)[0]
        if author in ("user", "assistant", "system", "developer"):
            return None
        return self._encoding.decode(prompt[begin:end])

    def user_turns(self, prompt: list[int]) -> int:
        """The number of user messages in a rendered harmony prompt."""
        user, n = self._user, len(self._user)
        return sum(1 for i, token in enumerate(prompt) if token == START and prompt[i + 1 : i + 1 + n] == user)

    def script_for(self, prompt: list[int]) -> list[int]:
        if self._settings.mode == "replay":
            user_text = self.last_user_text(prompt)
            tool_output = self.last_tool_output(prompt)
            turns = self.user_turns(prompt)
            for rule in self._rules:
                if rule.tool_output is not None and (tool_output is None or not rule.tool_output.search(tool_output)):
                    continue
                if rule.turn is not None and rule.turn != turns:
                    continue
                if rule.pattern is None or rule.pattern.search(user_text):
                    return list(rule.token_ids)
        # the echoed text is plain text: a user spelling "<|return|>" gets no control token (a rendered message's
        # text holds none: its tokens are the echo as they are)
        text = self.last_user_tokens(prompt)
        if text and max(text) >= FIRST_SPECIAL_ID:
            text = self._encoding.encode(self._encoding.decode(text), disallowed_special=())
        return [*self._final_header, *text, RETURN]

    def _cached_prefix(self, prompt: list[int], salt: str | None = None) -> int | None:
        """With ``prefix_cache``: the prompt tokens shared with an earlier prompt of the same cache salt, in whole
        blocks (never the whole prompt: the last token is always computed), as vLLM's prefix cache reports them (its
        block hashes start from the salt, so prompts of different salts share nothing)."""
        if not self._settings.prefix_cache:
            return None
        best = 0
        for seen_salt, seen in self._seen_prompts:
            if seen_salt != salt:
                continue
            shared = 0
            for a, b in zip(seen, prompt, strict=False):
                if a != b:
                    break
                shared += 1
            best = max(best, shared)
        self._seen_prompts.append((salt, list(prompt)))
        del self._seen_prompts[:-PREFIX_CACHE_PROMPTS]
        return min(best, len(prompt) - 1) // PREFIX_BLOCK * PREFIX_BLOCK

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        if not self._started:
            raise EngineUnavailableError("The engine is not running.")
        if request.request_id in self._running:
            raise ValueError(f"duplicate request id {request.request_id}")
        if self._recording is not None:
            async for step in self._replay(request):
                yield step
            return
        script = self.script_for(request.prompt_token_ids)
        if request.constraint is not None and self._constrain is not None:
            script = await asyncio.to_thread(
                self._constrain, script, request.constraint, request.stop_token_ids, request.max_tokens
            )
        aborted = asyncio.Event()
        self._running[request.request_id] = aborted
        stops = set(request.stop_token_ids)
        sampling = request.sampling
        tokens = with_min_tokens(script, stops, sampling.min_tokens, self._filler)
        # ``sampling.priority`` changes nothing here: requests run as they come, as under vLLM's default (fcfs)
        # scheduling policy; no KV connector either, so no ``kv_transfer_params`` come back (as in vLLM without one)
        cached = self._cached_prefix(request.prompt_token_ids, sampling.cache_salt)
        delay = self._settings.token_delay_s
        want_logprobs, alternatives = sampling.logprobs, max(1, sampling.top_logprobs)
        eos = None if sampling.ignore_eos else RETURN  # with ignore_eos, <|return|> is one more stop token
        stats = self._metrics
        stats.waiting.inc()
        started, produced, reason = time.monotonic(), 0, "abort"
        # The step that ends the run is known up front: the first stop token (checked before max_tokens, so a stop
        # token that is the last allowed one is a stop), else the max_tokens-th token; steps before it (but the
        # first, which carries the first-step data) are the token alone.
        stop_at = first_stop(tokens, stops)  # (a filler may be a stop token too)
        last = min(stop_at, max(1, request.max_tokens) - 1)
        ending: EngineFinish | None = None
        if last < len(tokens):
            ending = "stop" if last == stop_at else "length"
            tokens = tokens[: last + 1]
        plain_until = len(tokens) if ending is not None else len(tokens) + 1  # ``produced`` below this: plain
        if want_logprobs:
            plain_until = 0
        try:
            for produced, token in enumerate(tokens, start=1):
                if delay:
                    await asyncio.sleep(delay)
                else:
                    await _next_turn()
                if aborted.is_set():
                    produced -= 1
                    yield EngineStep([], finish_reason="abort")
                    return
                if 1 < produced < plain_until:
                    yield EngineStep([token])
                    continue
                logprobs = [TokenLogprob(token, 0.0, top_logprobs(token, alternatives))] if want_logprobs else None
                prompt_logprobs = None
                if produced == 1:
                    self._first_step(request, cached, started)
                    prompt_logprobs = self.prompt_logprobs(request)
                else:
                    cached = None  # reported with the first step only
                finish: EngineFinish | None = None
                stop_reason: int | None = None
                if produced == len(tokens) and ending is not None:
                    # like vLLM: the model's EOS token (<|return|>) is no "stop reason"; other stop tokens are
                    finish = reason = ending
                    stop_reason = None if ending == "length" or token == eos else token
                yield EngineStep([token], finish, stop_reason, logprobs, cached, prompt_logprobs)
                if finish is not None:
                    return
            # the script ran out without a stop token: the turn ends like an EOS
            reason = "stop"
            yield EngineStep([], finish_reason="stop")
        finally:
            self._end_run(request, started, produced, produced > 0, reason)

    async def _replay(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        """The recorded steps of ``request``, one engine step each; then the recorded error, if the run ended in one,
        or an abort where the recorded run was cut short earlier than this one."""
        take = self._recording.take(request) if self._recording is not None else {}
        aborted = asyncio.Event()
        self._running[request.request_id] = aborted
        delay = self._settings.token_delay_s
        stats = self._metrics
        stats.waiting.inc()
        started, produced, running, reason = time.monotonic(), 0, False, "abort"
        try:
            for step in recorded_steps(take):
                await asyncio.sleep(delay)
                if aborted.is_set():
                    yield EngineStep([], finish_reason="abort")
                    return
                if not running:
                    self._first_step(request, step.cached_tokens, started)
                    running = True
                produced += len(step.token_ids)
                yield step
                if step.finish_reason is not None:
                    reason = step.finish_reason
                    return
            if "error" in take:
                raise error_from_json(take["error"])
            yield EngineStep([], finish_reason="abort")
        finally:
            self._end_run(request, started, produced, running, reason)

    @staticmethod
    def prompt_logprobs(request: GenerationRequest) -> PromptLogprobs | None:
        """Each prompt token after the first at logprob 0.0 and rank 1 (its alternatives all rank below it)."""
        if request.sampling.prompt_logprobs is None:
            return None
        tokens = request.prompt_token_ids
        return [None, *([RankedLogprob(token, 0.0, 1)] for token in tokens[1:])]

    def _end_run(self, request: GenerationRequest, started: float, produced: int, running: bool, reason: str) -> None:
        """A run ended: vLLM's per-request stats (``running``: it got past its first step); its id is forgotten."""
        stats = self._metrics
        self._running.pop(request.request_id, None)
        (stats.running if running else stats.waiting).dec()
        stats.generation_tokens.inc(produced)
        stats.request_latency.observe(time.monotonic() - started)
        stats.finished(reason)

    def _first_step(self, request: GenerationRequest, cached: int | None, started: float) -> None:
        """vLLM's per-request stats at the first token: prefill done, the request moves from waiting to running."""
        stats = self._metrics
        stats.waiting.dec()
        stats.running.inc()
        stats.prompt_tokens.inc(len(request.prompt_token_ids))
        stats.ttft.observe(time.monotonic() - started)
        if cached is not None:
            stats.prefix_queries.inc(len(request.prompt_token_ids))
            stats.prefix_hits.inc(cached)
