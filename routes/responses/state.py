"""Stored responses and background runs.

A stored response is one document in the core's store: ``{"owner", "response", "input", "previous_response_id"}``.
``owner`` is the API key's name: another key cannot read, continue or delete it. ``previous_response_id`` is
rebuilt by walking the chain back (one read per response, at most ``max_chain``).

Background responses run as tasks of this process; their events are kept while they run so that
``GET ?stream=true`` can follow one from any sequence number, and cancelling one ends it ``cancelled``. Once one
ends, its stored object is the truth (a stream of it is replayed from the object).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from routes.responses.items import Item
from routes.responses.output import Event, Output
from server.context import ServerContext
from server.errors import EngineUnavailableError, InvalidRequestError, NotFoundError, RateLimitError, ServerError
from server.types import Event as CoreEvent
from server.types import Finish

CANCEL_POLL_S = 1.0  # how often a background run looks for a cancel asked through another replica
CANCEL_WAIT_S = 10.0  # how long a cancel waits for the replica running it to end it


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


@dataclass(slots=True)
class Run:
    """A background response in progress."""

    output: Output
    events: list[Event] = field(default_factory=list)
    done: bool = False
    task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, events: list[Event]) -> None:
        if events:
            self.events.extend(events)
            self._wake.set()
            self._wake = asyncio.Event()

    def end(self) -> None:
        self.done = True
        self._wake.set()

    async def follow(self, after: int | None) -> AsyncIterator[Event]:
        """Its events after sequence number ``after``, then each new one until it ends."""
        index = 0 if after is None else after + 1
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.done:
                return
            await self._wake.wait()


class ResponsesState:
    def __init__(self, ctx: ServerContext, max_chain: int, max_background: int) -> None:
        self.ctx = ctx
        self.max_chain = max_chain
        self.max_background = max_background
        self.runs: dict[str, Run] = {}

    @property
    def store(self) -> Any:
        store = self.ctx.store
        if store is None:
            raise EngineUnavailableError("The response store is not open.")
        return store

    async def save(self, owner: str | None, response: dict[str, Any], items: list[Item]) -> None:
        doc = {
            "owner": owner,
            "response": response,
            "input": items,
            "previous_response_id": response.get("previous_response_id"),
        }
        await self.store.put(response["id"], doc, created_at=float(response["created_at"]))

    async def load(self, owner: str | None, response_id: str) -> dict[str, Any]:
        stored = await self.store.get(response_id)
        if stored is None or stored.doc.get("owner") != owner:
            raise not_found(response_id)
        return stored.doc  # type: ignore[no-any-return]

    async def response(self, owner: str | None, response_id: str) -> dict[str, Any]:
        """The response object: a running background one's live state, else the stored one."""
        run = self.runs.get(response_id)
        doc = await self.load(owner, response_id)
        return run.output.response if run is not None else doc["response"]  # type: ignore[no-any-return]

    async def delete(self, owner: str | None, response_id: str) -> None:
        await self.load(owner, response_id)
        run = self.runs.get(response_id)
        if run is not None and run.task is not None:
            run.task.cancel()
        await self.store.delete(response_id)

    async def history(self, owner: str | None, previous_id: str) -> list[Item]:
        """The conversation up to and including ``previous_id``: each response's input items then its output."""
        chain: list[dict[str, Any]] = []
        next_id: str | None = previous_id
        while next_id is not None:
            if len(chain) >= self.max_chain:
                raise InvalidRequestError(
                    f"The previous_response_id chain is longer than {self.max_chain} responses.",
                    param="previous_response_id",
                )
            if next_id in self.runs and not self.runs[next_id].done:
                raise InvalidRequestError(
                    f"Response '{next_id}' is still in progress; it cannot be continued yet.",
                    param="previous_response_id",
                )
            try:
                doc = await self.load(owner, next_id)
            except NotFoundError:
                raise NotFoundError(
                    f"Previous response with id '{next_id}' not found.", param="previous_response_id"
                ) from None
            chain.append(doc)
            next_id = doc.get("previous_response_id")
        items: list[Item] = []
        for doc in reversed(chain):
            items += doc["input"]
            items += doc["response"]["output"]  # output items are valid input items as they are
        return items

    # ---- background ---------------------------------------------------------------------------------

    def check_capacity(self) -> None:
        if sum(not r.done for r in self.runs.values()) >= self.max_background:
            raise RateLimitError(f"At most {self.max_background} background responses may run at once.")

    def start(self, owner: str | None, output: Output, events: AsyncIterator[CoreEvent], items: list[Item]) -> Run:
        """Run ``events`` into ``output`` detached from the request, storing the final state when it ends. A cancel
        asked through another replica reaches it through the store (``cancel_requested``, polled each second)."""
        run = Run(output)
        response_id = output.response["id"]
        self.runs[response_id] = run

        async def go() -> None:
            try:
                run.publish(output.opening())
                async for event in events:
                    if isinstance(event, Finish):
                        run.publish(output.close(event))
                        break
                    run.publish(output.feed(event))
            except asyncio.CancelledError:
                output.cancelled()
            finally:
                watcher.cancel()
                with contextlib.suppress(Exception):
                    await events.aclose()  # type: ignore[attr-defined]
                try:
                    await asyncio.shield(self.save(owner, output.response, items))
                finally:
                    run.end()
                    self.runs.pop(response_id, None)

        async def watch() -> None:
            while True:
                await asyncio.sleep(CANCEL_POLL_S)
                with contextlib.suppress(ServerError):
                    stored = await self.store.get(response_id)
                    if stored is not None and stored.doc.get("cancel_requested") and run.task is not None:
                        run.task.cancel()
                        return

        watcher = asyncio.ensure_future(watch())
        run.task = asyncio.ensure_future(go())
        return run

    async def cancel(self, owner: str | None, response_id: str) -> dict[str, Any]:
        doc = await self.load(owner, response_id)
        if not doc["response"].get("background"):
            raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
        run = self.runs.get(response_id)
        if run is not None and run.task is not None and not run.done:
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(run.task), timeout=10)
            return run.output.response
        if doc["response"]["status"] not in ("queued", "in_progress"):
            return doc["response"]  # type: ignore[no-any-return]
        # running on another replica: ask it through the store, and wait for it to end the run
        await self.store.put(response_id, {**doc, "cancel_requested": True}, created_at=doc["response"]["created_at"])
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(CANCEL_POLL_S / 2)
            doc = await self.load(owner, response_id)
            if doc["response"]["status"] not in ("queued", "in_progress"):
                return doc["response"]  # type: ignore[no-any-return]
        # nobody ran it any more (its replica is gone): it ends here
        response = {**doc["response"], "status": "cancelled"}
        await self.save(owner, response, doc["input"])
        return response

    async def close(self) -> None:
        """Cancel every background run (shutdown): each is stored ``cancelled``."""
        tasks = [r.task for r in self.runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
