"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``, the model listing) over the harmony
core, for Claude Code and the ``anthropic`` SDKs.

Content blocks become the core's messages (``blocks.py``): thinking blocks are gpt-oss's analysis, their signature the
reasoning sealed with the server's key; tool results are harmony tool messages. The answer is built as Anthropic's
typed stream events from the core's deltas, and the non-streaming message is their fold (``response.py``).
``GET /v1/models`` is claimed from its usual owner for requests carrying ``anthropic-version`` or ``x-api-key``.
"""

from routes.anthropic.settings import AnthropicSettings
from routes.provider import Provider

PROVIDER = Provider(
    name="anthropic",
    settings=AnthropicSettings,
    http="routes.anthropic.router",
    paths="/v1/messages, /v1/messages/count_tokens, /v1/models (with anthropic-version or x-api-key)",
)
