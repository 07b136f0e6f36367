"""Server-sent-event responses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from server.http.streamed import StreamedResponse

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_response(
    body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None, media_type: str = "text/event-stream"
) -> StreamedResponse:
    return StreamedResponse(body, media_type=media_type, headers={**SSE_HEADERS, **(headers or {})})
