"""``providers.e2e``: E2E Networks TIR (vLLM behind E2E's gateway). Switches for the vLLM era E2E runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "e2e"


class E2ESettings(ProviderSection):
    # The model name in the URL and in the body (echoed in responses).
    model_name: str = "gpt_oss_120b"
    # vLLM era (INFERRED): `reasoning_content` (older, default) or `reasoning` (newer) for the reasoning text.
    reasoning_key: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    # vLLM era (INFERRED): empty `tool_calls` is `[]` (older, default) or omitted (newer).
    empty_tool_calls: Literal["list", "omit"] = "list"
    # vLLM >= 0.11-ish adds `choices[].token_ids` (null unless return_token_ids); off matches the E2E field list.
    choice_token_ids: bool = False
    # vLLM >= 0.10 nests errors as {"error": {...}}; older vLLM used a flat {"object": "error", ...}.
    error_style: Literal["nested", "flat"] = "nested"
    # UNKNOWN gateway 401 body: vLLM's error envelope (default) or Envoy's plain-text "Jwt verification fails".
    auth_error: Literal["vllm", "envoy"] = "vllm"
    # UNKNOWN whether E2E's vLLM runs with --enable-prompt-tokens-details: off keeps prompt_tokens_details null.
    prompt_tokens_details: bool = False
    owned_by: str = "vllm"
    system_fingerprint: str | None = None
    # INFERRED: GET .../v1/models is routed through the gateway.
    models_route: bool = True


def section(ctx: ServerContext) -> E2ESettings:
    return section_of(ctx, NAME, E2ESettings)
