"""The core's fan-out (server/choices.py) on the scripted engine: ids and seeds, interleaving, folding, usage,
all-or-nothing admission, and aborting every choice (a closed stream, one failing choice, a drain)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from server.choices import admit_all, check_count, complete_all, replicate, stream_all, sum_usage
from server.engine.base import EngineStep, GenerationRequest
from server.engine.scripted import ScriptedEngine
from server.errors import EngineUnavailableError, InvalidRequestError, RateLimitError
from server.harmony.render import HarmonyRenderer, RenderOptions
from server.service import ChatService, PreparedRequest
from server.settings import LimitsSettings
from server.types import ChatMessage, ChatRequest, Finish, SamplingOptions
from tests.helpers import PINNED_DATE, scripted_settings

T = TypeVar("T")


class FailingChoice(ScriptedEngine):
    """Choice 1 fails after its first token."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        steps = super().generate(request)
        try:
            async for step in steps:
                yield step
                if request.request_id.startswith("1_"):
                    raise EngineUnavailableError("The engine died.")
        finally:
            await steps.aclose()  # type: ignore[attr-defined]


def _run(
    tmp_path: Path,
    body: Callable[[ChatService, ScriptedEngine], Awaitable[T]],
    engine_class: type[ScriptedEngine] = ScriptedEngine,
    **limits: int,
) -> T:
    settings = scripted_settings(tmp_path, mode="echo", token_delay_s=0.001)
    for name, value in limits.items():
        setattr(settings.limits, name, value)
    engine = engine_class(settings.engine.scripted)
    service = ChatService(engine, HarmonyRenderer(RenderOptions(conversation_start_date=PINNED_DATE)), settings.limits)

    async def main() -> T:
        await engine.start()
        return await body(service, engine)

    try:
        return asyncio.run(main())
    finally:
        service.close()


async def _choices(
    service: ChatService, n: int, text: str = "one two three four", seed: int | None = None
) -> list[PreparedRequest]:
    request = ChatRequest([ChatMessage("user", text)], SamplingOptions(seed=seed), request_id="chatcmpl-x")
    return replicate(await service.prepare(request), n)


def test_replicate_gives_vllm_child_ids_one_shared_prompt_and_offset_seeds(tmp_path: Path) -> None:
    async def body(service: ChatService, _: ScriptedEngine) -> tuple[list[PreparedRequest], ...]:
        return await _choices(service, 3, seed=41), await _choices(service, 2), await _choices(service, 1, seed=7)

    seeded, unseeded, single = _run(tmp_path, body)
    assert [c.request_id for c in seeded] == ["0_chatcmpl-x", "1_chatcmpl-x", "2_chatcmpl-x"]
    assert [c.generation.request_id for c in seeded] == ["0_chatcmpl-x", "1_chatcmpl-x", "2_chatcmpl-x"]
    assert [c.generation.sampling.seed for c in seeded] == [41, 42, 43]
    assert all(c.prompt_token_ids is seeded[0].prompt_token_ids for c in seeded)  # rendered once
    assert [c.generation.sampling.seed for c in unseeded] == [None, None]
    assert [c.request_id for c in single] == ["chatcmpl-x"] and single[0].generation.sampling.seed == 7


def test_choices_stream_interleaved_each_finishing_once(tmp_path: Path) -> None:
    async def body(service: ChatService, engine: ScriptedEngine) -> tuple[list[tuple[int, object]], int, int]:
        choices = await _choices(service, 3)
        await admit_all(service, choices)
        assert service.active_requests == 3
        events = [(i, e) async for i, e in stream_all(service, choices)]
        return events, service.active_requests, engine.num_running()

    events, active, running = _run(tmp_path, body)
    finishes = [i for i, e in events if isinstance(e, Finish)]
    assert sorted(finishes) == [0, 1, 2]
    first_finish = next(n for n, (_, e) in enumerate(events) if isinstance(e, Finish))
    assert {i for i, _ in events[:first_finish]} == {0, 1, 2}  # every choice streamed before any finished
    for index in range(3):
        text = "".join(getattr(e, "content", "") for i, e in events if i == index)
        assert text == "one two three four"
    assert active == 0 and running == 0


def test_complete_all_folds_each_choice_and_sums_usage_as_vllm(tmp_path: Path) -> None:
    async def body(service: ChatService, _: ScriptedEngine) -> tuple[object, object]:
        single = (await _choices(service, 1))[0]
        await service.admit(single)
        alone = await service.complete(single)
        choices = await _choices(service, 3)
        await admit_all(service, choices)
        return alone, await complete_all(service, choices)

    alone, answer = _run(tmp_path, body)
    assert [r.content for r in answer.results] == ["one two three four"] * 3
    assert [r.finish_reason for r in answer.results] == ["stop"] * 3
    usage = answer.usage
    assert usage.prompt_tokens == alone.usage.prompt_tokens  # the shared prompt, once
    assert usage.completion_tokens == 3 * alone.usage.completion_tokens


def test_sum_usage_counts_each_distinct_prompt(tmp_path: Path) -> None:
    async def body(service: ChatService, _: ScriptedEngine) -> tuple[list[PreparedRequest], object]:
        batch = [*await _choices(service, 2, "a b"), *await _choices(service, 2, "c d e f g")]
        for i, prepared in enumerate(batch):  # a batch of prompts times n: four distinct engine ids
            prepared.request_id = prepared.generation.request_id = f"{i}-{prepared.request_id}"
        await admit_all(service, batch)
        return batch, await complete_all(service, batch)

    batch, answer = _run(tmp_path, body)
    prompts = len(batch[0].prompt_token_ids) + len(batch[2].prompt_token_ids)
    assert answer.usage.prompt_tokens == prompts
    assert answer.usage.completion_tokens == sum(r.usage.completion_tokens for r in answer.results)
    assert sum_usage(answer.results, batch) == answer.usage


def test_admission_is_all_or_nothing(tmp_path: Path) -> None:
    async def body(service: ChatService, _: ScriptedEngine) -> int:
        with pytest.raises(RateLimitError):
            await admit_all(service, await _choices(service, 3))
        return service.active_requests

    assert _run(tmp_path, body, max_concurrent_requests=2) == 0  # the two slots taken were given back


def test_closing_the_stream_aborts_every_choice(tmp_path: Path) -> None:
    async def body(service: ChatService, engine: ScriptedEngine) -> tuple[int, int, int]:
        choices = await _choices(service, 3, "word " * 200)
        await admit_all(service, choices)
        events = stream_all(service, choices)
        seen = 0
        async for _ in events:
            seen += 1
            if seen == 6:
                break
        in_flight = engine.num_running()
        await events.aclose()  # type: ignore[attr-defined]  # the client went away
        return in_flight, engine.num_running(), service.active_requests

    in_flight, running, active = _run(tmp_path, body)
    assert in_flight == 3 and running == 0 and active == 0


def test_one_failing_choice_ends_the_answer_and_aborts_the_others(tmp_path: Path) -> None:
    async def body(service: ChatService, engine: ScriptedEngine) -> tuple[list[tuple[int, object]], int, int]:
        choices = await _choices(service, 3, "word " * 200)
        await admit_all(service, choices)
        events = [(i, e) async for i, e in stream_all(service, choices)]
        again = await _choices(service, 3, "word " * 200)
        await admit_all(service, again)
        with pytest.raises(EngineUnavailableError, match="engine died"):
            await complete_all(service, again)
        return events, engine.num_running(), service.active_requests

    events, running, active = _run(tmp_path, body, FailingChoice)
    index, last = events[-1]
    assert index == 1 and isinstance(last, Finish) and last.reason == "error"
    assert sum(isinstance(e, Finish) for _, e in events) == 1  # the others were aborted, not finished
    assert running == 0 and active == 0


def test_a_drain_aborts_every_choice(tmp_path: Path) -> None:
    async def body(service: ChatService, engine: ScriptedEngine) -> tuple[int, int, int]:
        choices = await _choices(service, 3, "word " * 200)
        await admit_all(service, choices)
        answer = asyncio.ensure_future(complete_all(service, choices))
        while engine.num_running() < 3:
            await asyncio.sleep(0.001)
        aborted = await service.abort_all()
        with pytest.raises(EngineUnavailableError, match="shut down"):
            await answer
        return aborted, engine.num_running(), service.active_requests

    assert _run(tmp_path, body) == (3, 0, 0)


def test_check_count_bounds_n() -> None:
    limits = LimitsSettings(max_n=4)
    check_count(4, limits)
    with pytest.raises(InvalidRequestError, match="at most 4") as err:
        check_count(5, limits)
    assert err.value.param == "n" and err.value.status == 400
