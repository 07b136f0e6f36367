"""Ollama's API (``/api/chat``, ``/api/generate``, ``/api/tags``, ``/api/show``...), for Ollama's clients.

Ollama 0.14 as it answers for gpt-oss: newline-delimited JSON streams (``stream`` defaults to true) ending in an
object with ``done: true``, ``done_reason`` and nanosecond metrics; ``message.thinking`` for the reasoning; tool
calls with JSON-object arguments; ``format`` as ``"json"`` or a JSON schema; ``options`` as its Modelfile
parameters; errors as ``{"error": "..."}``. Ollama has no API keys: with keys configured, clients send one as a
Bearer token (as ollama.com's API takes it).
"""

from routes.ollama.settings import OllamaSettings
from routes.provider import Provider

PROVIDER = Provider(
    name="ollama",
    settings=OllamaSettings,
    http="routes.ollama.router",
    paths="/api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version",
)
