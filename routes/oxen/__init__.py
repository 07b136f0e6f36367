"""Oxen.ai inference API (``/api/ai``): OpenAI-style chat completions plus Oxen's model catalogue.

The hub is Elixir/Phoenix: stream chunks come with alphabetically sorted keys, the completion object is
minimal (no logprobs, no system_fingerprint), and errors take one of two shapes::

    {"error": {"type", "title", "detail"}, "status": "error", "status_message": "<type>"}
    {"error": {"message": "Model not found: <name>"}}
"""

from routes.oxen.settings import OxenSettings
from routes.provider import Provider

PROVIDER = Provider(
    name="oxen",
    settings=OxenSettings,
    http="routes.oxen.router",
    paths="/api/ai/chat/completions, /api/ai/models",
)
