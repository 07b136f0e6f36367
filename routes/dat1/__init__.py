"""dat1.co: gpt-oss-120b served by llama.cpp's ``llama-server`` behind dat1's gateway (wire spec section 1).

Two paths reach the same llama-server:

- ``POST /api/v1/collection/gpt-120-oss/invoke-chat`` with ``X-API-Key`` (dat1's documented route, called with
  ``requests``; the body names no model);
- ``POST /api/v1/collection/open-ai/chat/completions`` with ``Authorization: Bearer`` and
  ``"model": "gpt-120-oss"`` (the OpenAI SDK with ``base_url=.../api/v1/collection/open-ai``); like llama-server it
  serves any ``model`` name (``openai_models`` lists the only ones to accept instead).

The body is read as llama-server reads it (``oaicompat_chat_params_parse`` then ``params_from_json_cmpl``): a known
key of the wrong type falls back to its default (``json_value``), unknown keys are ignored, numbers keep
llama-server's meaning (a negative temperature is greedy, ``top_k <= 0`` is off, ``max_tokens: -1`` is unlimited)
clamped into what the engine accepts, and ``n`` != 1 is refused. Answers are llama-server's bytes: its key orders,
``timings``, ``system_fingerprint``, 32-character ids, ``reasoning_content`` (whitespace-stripped, as its parser
does), a role chunk first, usage and timings on the final chunk (per build era, see ``Dat1Settings``), and its
error envelope ``{"error": {"code", "message", "type"}}`` with the HTTP status equal to ``code``.
"""

from routes.dat1.settings import Dat1Settings
from routes.provider import Provider

PROVIDER = Provider(
    name="dat1",
    settings=Dat1Settings,
    http="routes.dat1.router",
    paths="/api/v1/collection/gpt-120-oss/invoke-chat, /api/v1/collection/open-ai/chat/completions",
)
