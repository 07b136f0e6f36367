"""Stored responses and background runs.

A stored response is one document in the core's store: ``{"owner", "response", "input", "previous_response_id"}``
(plus ``last_sequence`` for a background run). ``owner`` identifies the API key that made it (a digest of the key, so
renaming or reordering keys changes nothing): another key cannot read, continue, cancel or delete it.
``previous_response_id`` is rebuilt by walking the chain back (one read per response, at most ``max_chain``, and
at most ``MAX_HISTORY_BYTES`` of items).

Background responses run as tasks of this process; their events are kept while they run, and for ``RETAIN_S``
after, so that ``GET ?stream=true`` can follow one from any sequence number. A cancel asked through another replica
is a small document of its own (``<id>#cancel``) that the run looks for each second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from routes.responses.items import Item
from routes.responses.output import Event, Output
from server.context import ServerContext
from server.errors import InternalError, InvalidRequestError, NotFoundError, RateLimitError, ServerError
from server.faults.inject import MESSAGES, ConnectionCut
from server.types import Event as CoreEvent
from server.types import Finish

log = logging.getLogger(__name__)

CANCEL_POLL_S = 1.0  # how often a background run looks for a cancel asked through another replica
CANCEL_WAIT_S = 10.0  # how long a cancel waits for the replica running it to end it
RETAIN_S = 600.0  # a finished background run's events stay followable this long
MAX_HISTORY_BYTES = 16 * 1024 * 1024  # the items a previous_response_id chain may bring back, encoded
RUNNING = ("queued", "in_progress")


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


def cancel_key(response_id: str) -> str:
    return f"{response_id}#cancel"


@dataclass(slots=True)
class Run:
    """A background response: its events so far, and whether it has ended."""

    output: Output
    events: list[Event] = field(default_factory=list)
    done: bool = False
    deleted: bool = False  # deleted while running: its end is not stored
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
        self.store = ctx.store
        self.max_chain = max_chain
        self.max_background = max_background
        self.runs: dict[str, Run] = {}
        self._reserved = 0  # places taken by background requests not yet started

    async def save(
        self, owner: str | None, response: dict[str, Any], items: list[Item], last_sequence: int | None = None
    ) -> None:
        doc = {
            "owner": owner,
            "response": response,
            "input": items,
            "previous_response_id": response.get("previous_response_id"),
        }
        if last_sequence is not None:
            doc["last_sequence"] = last_sequence
        await self.store.put(response["id"], doc, created_at=float(response["created_at"]))

    async def load(self, owner: str | None, response_id: str) -> dict[str, Any]:
        stored = await self.store.get(response_id)
        if stored is None or stored.doc.get("owner") != owner:
            raise not_found(response_id)
        return stored.doc  # type: ignore[no-any-return]

    def live(self, response_id: str) -> Run | None:
        run = self.runs.get(response_id)
        return run if run is not None and not run.done else None

    async def response(self, owner: str | None, response_id: str) -> dict[str, Any]:
        """The response object: a running background one's live state, else the stored one."""
        doc = await self.load(owner, response_id)
        run = self.live(response_id)
        return run.output.response if run is not None else doc["response"]  # type: ignore[no-any-return]

    async def delete(self, owner: str | None, response_id: str) -> None:
        await self.load(owner, response_id)
        run = self.live(response_id)
        if run is not None and run.task is not None:
            run.deleted = True  # its end must not bring it back
            await self._stop(run.task)
        await self.store.delete(response_id)
        await self.store.delete(cancel_key(response_id))

    async def history(self, owner: str | None, previous_id: str) -> list[Item]:
        """The conversation up to and including ``previous_id``: each response's input items then its output.
        Reasoning comes back as the stored text (not its sealed copy, which a new seal key could not open)."""
        chain: list[dict[str, Any]] = []
        size = 0
        next_id: str | None = previous_id
        while next_id is not None:
            if len(chain) >= self.max_chain:
                raise InvalidRequestError(
                    f"The previous_response_id chain is longer than {self.max_chain} responses.",
                    param="previous_response_id",
                )
            try:
                doc = await self.load(owner, next_id)
            except NotFoundError:
                raise NotFoundError(
                    f"Previous response with id '{next_id}' not found.", param="previous_response_id"
                ) from None
            if doc["response"]["status"] in RUNNING:
                raise InvalidRequestError(
                    f"Response '{next_id}' is still in progress; it cannot be continued yet.",
                    param="previous_response_id",
                )
            size += len(orjson.dumps(doc["input"])) + len(orjson.dumps(doc["response"]["output"]))
            if size > MAX_HISTORY_BYTES:
                raise InvalidRequestError(
                    "The conversation behind previous_response_id is too long to continue; start a new one.",
                    param="previous_response_id",
                )
            chain.append(doc)
            next_id = doc.get("previous_response_id")
        items: list[Item] = []
        for doc in reversed(chain):
            items += doc["input"]
            items += doc["response"]["output"]  # output items are valid input items as they are
        return [{k: v for k, v in item.items() if k != "encrypted_content"} for item in items]

    # ---- background ---------------------------------------------------------------------------------

    def reserve(self) -> None:
        """Take a place for a background run (429 past ``max_background``); ``start`` or ``release`` gives it up."""
        if sum(not r.done for r in self.runs.values()) + self._reserved >= self.max_background:
            raise RateLimitError(f"At most {self.max_background} background responses may run at once.")
        self._reserved += 1

    def release(self) -> None:
        self._reserved -= 1

    def start(self, owner: str | None, output: Output, events: AsyncIterator[CoreEvent], items: list[Item]) -> Run:
        """Run ``events`` into ``output`` detached from the request, storing the final state when it ends."""
        self.release()
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
                run.publish(output.cancelled())
            except (Exception, ConnectionCut) as exc:
                # Detached from any connection, the run has none to cut (an injected ``cut``), and nothing else may
                # leave it in progress for ever: it ends failed, as a server error.
                log.error("background response %s failed: %r", response_id, exc)
                run.publish(output.failed(InternalError(MESSAGES["internal"])))
            finally:
                watcher.cancel()
                with contextlib.suppress(Exception):
                    await events.aclose()  # type: ignore[attr-defined]
                try:
                    if not run.deleted:
                        await asyncio.shield(self.save(owner, output.response, items, output.sequence - 1))
                        with contextlib.suppress(ServerError):
                            await self.store.delete(cancel_key(response_id))
                except ServerError as exc:
                    log.error("background response %s could not be stored: %s", response_id, exc.message)
                finally:
                    run.end()
                    asyncio.get_running_loop().call_later(RETAIN_S, self._forget, response_id, run)

        async def watch() -> None:
            while True:
                await asyncio.sleep(CANCEL_POLL_S)
                with contextlib.suppress(ServerError):
                    if await self.store.get(cancel_key(response_id)) is not None and run.task is not None:
                        run.task.cancel()
                        return

        watcher = asyncio.ensure_future(watch())
        run.task = asyncio.ensure_future(go())
        return run

    def _forget(self, response_id: str, run: Run) -> None:
        if self.runs.get(response_id) is run:
            del self.runs[response_id]

    @staticmethod
    async def _stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=CANCEL_WAIT_S)

    async def cancel(self, owner: str | None, response_id: str) -> dict[str, Any]:
        doc = await self.load(owner, response_id)
        if not doc["response"].get("background"):
            raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
        run = self.live(response_id)
        if run is not None and run.task is not None:
            await self._stop(run.task)
            return run.output.response
        if doc["response"]["status"] not in RUNNING:
            return doc["response"]  # type: ignore[no-any-return]
        # running on another replica: ask it through the store, and wait for it to end the run
        await self.store.put(cancel_key(response_id), {"owner": owner}, created_at=time.time())
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(CANCEL_POLL_S / 2)
            doc = await self.load(owner, response_id)
            if doc["response"]["status"] not in RUNNING:
                return doc["response"]  # type: ignore[no-any-return]
        # nobody runs it any more (its replica is gone): it ends here
        response = {**doc["response"], "status": "cancelled"}
        await self.save(owner, response, doc["input"])
        await self.store.delete(cancel_key(response_id))
        return response

    async def close(self) -> None:
        """Shutdown: cancel the runs still going (each is stored ``cancelled``) and wait for their last writes."""
        tasks = [r.task for r in self.runs.values() if r.task is not None and not r.done]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
