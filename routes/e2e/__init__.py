"""E2E Networks TIR GenAI API: vLLM's OpenAI server behind E2E's gateway, at
``/project/{p-id}/genai/gpt_oss_120b/v1/chat/completions`` (and ``.../v1/models``).

The request model is vLLM's (``routes/openai/request.py``) and so are the response and stream shapes
(``routes/shared/``). What differs from our plain ``/v1`` route is explicit here: the vLLM era E2E documents
(``reasoning_content`` and ``tool_calls: []`` by default, no ``choices[].token_ids``), ``chatcmpl-<dashed uuid>``
ids (the gateway's ``X-Request-Id``), ``usage`` without unset keys in the stream (vLLM's ``exclude_unset``), and
vLLM's error types with an integer ``code``.
"""

from routes.e2e.settings import E2ESettings
from routes.provider import Provider

PROVIDER = Provider(
    name="e2e",
    settings=E2ESettings,
    http="routes.e2e.router",
    paths="/project/{project}/genai/gpt_oss_120b/v1/chat/completions",
)
