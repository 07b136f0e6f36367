"""One request's fault in the core: what ``ChatService`` asks of it at admission, per engine step and per delta."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from server.engine.base import EngineStep
from server.errors import (
    BadGatewayError,
    EngineUnavailableError,
    InternalError,
    OverloadedError,
    RateLimitError,
    ServerError,
)
from server.faults.plan import Chosen, Fault

log = logging.getLogger("server.faults")

MESSAGES = {
    "rate_limit": "Rate limit reached for requests. Please try again in {retry_after}s.",
    "internal": "The server had an error while processing your request.",
    "bad_gateway": "Bad gateway: the upstream server returned an invalid response.",
    "unavailable": "The service is temporarily unavailable. Please try again later.",
    "overloaded": "The server is overloaded. Please try again later.",
}


class ConnectionCut(BaseException):
    """Raised through the route to the HTTP layer, which closes the connection without ending the response.

    A ``BaseException``, so that neither the core's nor a route's handlers turn it into an error answer."""


def typed_error(fault: Fault) -> ServerError:
    """The typed core error of an error fault, as the core raises the real one."""
    kind = fault.kind
    retry_after = fault.retry_after if fault.retry_after is not None else (1 if kind == "rate_limit" else None)
    message = fault.message or MESSAGES[kind].format(retry_after=retry_after)
    if kind == "rate_limit":
        return RateLimitError(message, retry_after=retry_after or 0)
    if kind == "unavailable":
        return EngineUnavailableError(message, retry_after=retry_after)
    if kind == "overloaded":
        return OverloadedError(message, retry_after=retry_after)
    if kind == "bad_gateway":
        return BadGatewayError(message)
    return InternalError(message)


class ActiveFault:
    """The fault chosen for one admitted request."""

    def __init__(self, chosen: Chosen, request_id: str, where: str) -> None:
        self.fault = chosen.fault
        self.source = chosen.source
        self.request_id = request_id
        self._deltas = 0
        self._interrupted = asyncio.Event()
        log.info("fault %s (%s) injected into request %s (%s)", self.kind, self.source, request_id, where)

    @property
    def kind(self) -> str:
        return self.fault.kind

    def refusal(self) -> ServerError | None:
        """The error that answers before the first byte, if this fault is one."""
        if self.fault.streams or self.kind in ("timeout", "slow"):
            return None
        return typed_error(self.fault)

    def deadline(self, default: float | None) -> float | None:
        """The request's deadline: a ``timeout`` fault's own, else ``default`` (``limits.request_timeout_s``)."""
        if self.kind == "timeout" and self.fault.timeout_s is not None:
            return self.fault.timeout_s
        return default

    def interrupt(self) -> None:
        """The server aborted the request (its deadline, a drain): a hanging stream ends."""
        self._interrupted.set()

    async def pace(self, steps: AsyncIterator[EngineStep]) -> AsyncIterator[EngineStep]:
        """The engine's steps, delayed as the fault says; a ``timeout`` fault never starts the engine and ends as an
        aborted request once the server aborts it."""
        try:
            if self.kind == "timeout":
                await self._interrupted.wait()
                yield EngineStep([], finish_reason="abort")
                return
            first = True
            async for step in steps:
                if step.token_ids:
                    delay = self.fault.first_token_delay_s if first else self.fault.token_delay_s * len(step.token_ids)
                    first = False
                    if delay:
                        await asyncio.sleep(delay)
                yield step
        finally:
            await steps.aclose()  # type: ignore[attr-defined]

    def count_delta(self) -> bool:
        """One more delta was sent; whether the fault strikes now."""
        self._deltas += 1
        return self.strikes_now()

    def strikes_now(self) -> bool:
        return self.fault.strikes_in_stream and self._deltas >= (self.fault.after or 0)

    def strike(self) -> ServerError:
        """The in-stream error to end the stream with; a ``cut`` raises ``ConnectionCut`` instead."""
        log.info(
            "fault %s (%s): request %s ends after %d delta(s)", self.kind, self.source, self.request_id, self._deltas
        )
        if self.kind == "cut":
            raise ConnectionCut(f"fault: cut after {self._deltas} delta(s)")
        return typed_error(self.fault)
