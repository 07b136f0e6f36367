"""Plain OpenAI-compatible API (``/v1``, also under ``/openai/v1``), shaped like vLLM's OpenAI server for gpt-oss."""

from routes.openai.settings import OpenAISettings
from routes.provider import Provider

PROVIDER = Provider(
    name="openai",
    settings=OpenAISettings,
    http="routes.openai.router",
    paths="/v1/chat/completions, /v1/completions, /v1/models",
)
