"""Several answers to one request: ``n`` choices of one prompt, a batch of prompts, or both.

Each choice is its own ``PreparedRequest`` (its own engine request id and admission slot); they run at once and their
events arrive interleaved, each tagged with the choice's index. The non-streaming answer is the fold of that stream,
per choice, in index order, with usage summed as vLLM sums it: distinct prompts once each, every choice's output.

``replicate`` makes the ``n`` choices of one prepared request as vLLM's parallel sampling does: ids ``{i}_{id}``,
the same rendered prompt (so the engine's prefix cache serves it once), and with a seed, ``seed + i`` for choice
``i``. Admission is all-or-nothing (``admit_all``): a request is never half answered for lack of capacity.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from server.errors import InternalError, InvalidRequestError
from server.service import ChatService, PreparedRequest, fold
from server.settings import LimitsSettings
from server.types import ChatResult, Event, Finish, Usage

IndexedEvent = tuple[int, Event]


def check_count(n: int, limits: LimitsSettings, param: str = "n") -> None:
    """Refuse more than ``limits.max_n`` choices in one request (a 400 naming ``param``)."""
    if n > limits.max_n:
        raise InvalidRequestError(f"{param} must be at most {limits.max_n}, got {n}.", param=param)


SAMPLING_EPS = 1e-5  # vLLM's: a temperature below it is greedy sampling


def check_greedy(n: int, temperature: float | None) -> None:
    """vLLM's ``SamplingParams``: n identical greedy answers are refused, not computed."""
    if n > 1 and temperature is not None and temperature < SAMPLING_EPS:
        raise InvalidRequestError(f"n must be 1 when using greedy sampling, got {n}.")


def check_batch(prompts: int, n: int, limits: LimitsSettings) -> None:
    """Refuse a batch whose engine requests (``prompts`` x ``n``) pass ``limits.max_batch_requests`` (a 400)."""
    check_count(n, limits)
    if prompts * n > limits.max_batch_requests:
        raise InvalidRequestError(
            f"A request may start at most {limits.max_batch_requests} generations (prompts x n), "
            f"got {prompts} prompts x n={n}.",
            param="prompt",
        )


def replicate(prepared: PreparedRequest, n: int) -> list[PreparedRequest]:
    """The ``n`` choices of ``prepared`` (itself alone when ``n == 1``), ids and seeds as vLLM gives its children."""
    if n == 1:
        return [prepared]
    seed = prepared.request.sampling.seed
    choices = []
    for i in range(n):
        request_id = f"{i}_{prepared.request_id}"
        sampling = prepared.request.sampling
        if seed is not None:
            sampling = dataclasses.replace(sampling, seed=seed + i)
        request = dataclasses.replace(prepared.request, sampling=sampling, request_id=request_id)
        generation = dataclasses.replace(prepared.generation, request_id=request_id, sampling=sampling)
        choices.append(PreparedRequest(request, request_id, prepared.prompt_token_ids, prepared.max_tokens, generation))
    return choices


async def admit_all(service: ChatService, choices: list[PreparedRequest]) -> None:
    """Admit every choice or none: when one is refused (capacity, shutdown), the slots already taken are freed."""
    admitted: list[PreparedRequest] = []
    try:
        for prepared in choices:
            await service.admit(prepared)
            admitted.append(prepared)
    except BaseException:
        for prepared in admitted:
            service.release(prepared)
        raise


def stream_all(service: ChatService, choices: list[PreparedRequest]) -> AsyncIterator[IndexedEvent]:
    """``(index, event)`` pairs as the choices' events arrive; each choice ends with its own ``Finish``.

    The stream ends after the last choice's ``Finish``, or right after the first truncated one (an error, an abort):
    the other choices are then aborted, as they are when the stream is closed early (a client disconnect).
    Call ``admit_all`` first.
    """
    if len(choices) == 1:
        return service.stream_indexed(choices[0], 0)
    return _interleave([service.stream(prepared) for prepared in choices])


_DONE = object()  # a pump's last item: its choice's stream has ended


async def _interleave(streams: list[AsyncIterator[Event]]) -> AsyncIterator[IndexedEvent]:
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue(maxsize=4 * len(streams))

    async def pump(index: int, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                await queue.put((index, event))
        except Exception as exc:  # the stream's own failure, handed to the consumer
            await queue.put((index, exc))
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # cancelled mid-step: aborts the engine request
        await queue.put((index, _DONE))

    pumps = [asyncio.ensure_future(pump(i, events)) for i, events in enumerate(streams)]
    running = len(pumps)
    try:
        while running:
            index, item = await queue.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                event: Event = item  # type: ignore[assignment]
                yield index, event
                if isinstance(event, Finish) and event.truncated:
                    return  # the finally below aborts the others
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


@dataclass(slots=True)
class ChoiceResults:
    """The non-streaming answer: one result per choice, in index order, and the request's usage."""

    results: list[ChatResult]
    usage: Usage


async def complete_all(service: ChatService, choices: list[PreparedRequest]) -> ChoiceResults:
    """Run every choice to its end and fold each (``service.fold``); a truncated choice raises its typed error.
    Call ``admit_all`` first."""
    return await fold_all(stream_all(service, choices), choices)


async def fold_all(events: AsyncIterator[IndexedEvent], choices: list[PreparedRequest]) -> ChoiceResults:
    """Fold an interleaved stream choice by choice, exactly as ``fold`` folds one stream."""
    per_choice: list[list[Event]] = [[] for _ in choices]
    failed: int | None = None
    try:
        async for index, event in events:
            per_choice[index].append(event)
            if isinstance(event, Finish) and event.truncated:
                failed = index
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    order = list(range(len(choices)))
    if failed is not None:
        order.remove(failed)
        order.insert(0, failed)  # its error is the answer's
    results: dict[int, ChatResult] = {}
    for index in order:
        results[index] = await fold(_replay(per_choice[index]), choices[index].prompt_token_ids)
    ordered = [results[i] for i in range(len(choices))]
    return ChoiceResults(ordered, sum_usage(ordered, choices))


async def _replay(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


def sum_usage(results: list[ChatResult], choices: list[PreparedRequest]) -> Usage:
    """vLLM's sum: each distinct prompt's tokens once (the ``n`` choices of one prompt share it), every choice's
    completion (and reasoning) tokens; cached tokens as counted for those prompts."""
    if not results or len(results) != len(choices):
        raise InternalError("The answer has no result for some of its choices.")
    prompt = cached = completion = reasoning = 0
    seen: set[int] = set()
    for result, prepared in zip(results, choices, strict=True):
        usage = result.usage
        completion += usage.completion_tokens
        reasoning += usage.reasoning_tokens
        key = id(prepared.prompt_token_ids)
        if key not in seen:
            seen.add(key)
            prompt += usage.prompt_tokens
            cached += usage.cached_tokens
    return Usage(prompt, completion, reasoning, cached)
