"""E2E's answers: vLLM's chat-completion object and stream (``routes/shared/``) in the vLLM era its settings name."""

from __future__ import annotations

from routes.e2e.settings import E2ESettings
from routes.shared.vllm_response import VllmShape


def shape(settings: E2ESettings) -> VllmShape:
    return VllmShape(
        model=settings.model_name,
        reasoning_key=settings.reasoning_key,
        empty_tool_calls=settings.empty_tool_calls,
        choice_token_ids=settings.choice_token_ids,
        system_fingerprint=settings.system_fingerprint,
        prompt_tokens_details=settings.prompt_tokens_details,
    )
