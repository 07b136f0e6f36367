"""Dataoorts serverless (``POST /api/v1``): a Cloudflare Workers AI envelope around one model.

The body wraps Cloudflare's input, ``{"model": "openai/gpt-oss-120b", "data": {...}}``, with Cloudflare's
parameter ranges. The answer is ``{errors, messages, result: {response, tool_calls, usage}, success}``
(keys alphabetical, as documented). Streaming is undocumented; the inferred form is Cloudflare's classic
``data: {"response": "..."}`` events, a final ``{"response": "", "usage": {...}}`` and ``data: [DONE]``.
Errors use Cloudflare's envelope ``{"result", "success": false, "errors": [{"code", "message"}], "messages"}``.
"""

from routes.dataoorts.settings import DataoortsSettings
from routes.provider import Provider

PROVIDER = Provider(
    name="dataoorts",
    settings=DataoortsSettings,
    http="routes.dataoorts.router",
    paths="/api/v1",
)
