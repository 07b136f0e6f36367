"""OpenAI's Responses API (``/v1/responses``, also under ``/openai/v1``): stateful, on harmony, for agent clients.

Input items render into the same harmony conversation as chat messages (``items.py``); the model's output streams
as typed events and folds into output items (``output.py``); stored responses live in the core's document store
and background responses run detached in this process (``state.py``).
"""

from routes.provider import Provider
from routes.responses.settings import ResponsesSettings

PROVIDER = Provider(
    name="responses",
    settings=ResponsesSettings,
    http="routes.responses.router",
    paths="/v1/responses",
)
