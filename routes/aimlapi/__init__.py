"""AI/ML API (``api.aimlapi.com``): ``POST /v1/chat/completions`` and ``/chat/completions`` for
``openai/gpt-oss-120b``, plus the public ``GET /v1/models`` and ``GET /model/{id}``.

Its replies are OpenRouter-shaped (``gen-<unix>-<20 alnum>`` ids, ``reasoning_content``), its errors a flat
``{requestId, statusCode, timestamp, path, message}``. ``/v1/...`` is mounted only when
``providers.v1_owner == "aimlapi"``; the unprefixed paths are always ours.
"""

from routes.aimlapi.settings import AimlapiSettings
from routes.provider import Provider

PROVIDER = Provider(
    name="aimlapi",
    settings=AimlapiSettings,
    http="routes.aimlapi.router",
    paths="/chat/completions, /model/{model_id} (+ /v1/chat/completions, /v1/models when v1_owner=aimlapi)",
)
