#!/usr/bin/env python3
"""A bare FastAPI + uvicorn SSE endpoint: the framework's ceiling for ``scripts/bench.py ceiling``.

``POST /v1/chat/completions`` echoes the last user message one o200k token per event, in the same OpenAI chunk
shape (and JSON encoder) as our server's OpenAI route with the scripted echo engine: a role chunk, one content
chunk per token, a finish chunk, a usage chunk when asked, ``data: [DONE]``. No validation, no harmony, no engine:
what remains is FastAPI routing, one ``orjson.dumps`` per event, Starlette's StreamingResponse and uvicorn. Like
an engine's output queue, the generator yields to the event loop once per token (``asyncio.sleep(0)``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.harmony.encoding import get_encoding

app = FastAPI()


def sse(value: Any) -> bytes:
    return b"data: " + orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    text = next((m["content"] for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    encoding = get_encoding()
    tokens = encoding.encode(text, disallowed_special=())[: int(body.get("max_tokens") or 1 << 30)]
    pieces = [encoding.decode([t]) for t in tokens]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.get("model", "gpt-oss-120b")

    def chunk(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [choice] if choice is not None else [], **extra}  # fmt: skip
        return sse(out)

    async def events() -> AsyncIterator[bytes]:
        role = {"role": "assistant", "content": ""}
        yield chunk({"index": 0, "delta": role, "logprobs": None, "finish_reason": None})
        for piece in pieces:
            await asyncio.sleep(0)
            yield chunk({"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None})
        yield chunk({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length", "stop_reason": None})
        if include_usage:
            n = len(tokens)
            yield chunk(None, usage={"prompt_tokens": n, "total_tokens": 2 * n, "completion_tokens": n})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8009)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
