"""The wire APIs this server speaks, one package each (``routes/<api>/``; the contract: ``routes/provider.py``).

``WIRE_APIS`` is the registry. The settings tree composes ``providers.<name>`` from it, and the app mounts the
routers in this order (the first route matching a path answers it). Paths that no wire API owns get the first
one's error envelope. Adding a wire API: one package, one entry here.
"""

from __future__ import annotations

from routes import aimlapi, anthropic, dat1, dataoorts, e2e, ollama, openai, oxen, responses
from routes.provider import Provider

WIRE_APIS: tuple[Provider, ...] = (
    openai.PROVIDER,
    dataoorts.PROVIDER,
    oxen.PROVIDER,
    aimlapi.PROVIDER,
    e2e.PROVIDER,
    dat1.PROVIDER,
    responses.PROVIDER,
    ollama.PROVIDER,
    anthropic.PROVIDER,
)
