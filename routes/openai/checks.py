"""vLLM's own request checks, with its messages: the ``ChatCompletionRequest`` validators that run on the raw body
before its fields are read, and the harmony chat path's refusal of a role harmony has no author for.

vLLM raises these as ``VLLMValidationError`` (400, ``param`` naming the field) or, for the role, as the pydantic
error harmony's ``Author`` raises (400, no ``param``).
"""

from __future__ import annotations

from typing import Any

from openai_harmony import Author

from routes.shared.vllm_sampling import check_cache_salt
from server.errors import InvalidRequestError

HARMONY_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

NAMED_TOOL_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'


def check_body(data: dict[str, Any]) -> None:
    """vLLM's ``mode="before"`` validators of ``ChatCompletionRequest``, in the order pydantic runs them (the last
    one defined first), so that a body with several faults gets vLLM's message."""
    if data.get("continue_final_message") and data.get("add_generation_prompt"):
        raise InvalidRequestError("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
    _check_tools(data)
    _check_logprobs(data)
    if data.get("stream_options") and not data.get("stream"):
        raise InvalidRequestError("Stream options can only be defined when `stream=True`.", param="stream_options")
    _check_response_format(data)
    check_cache_salt(data.get("cache_salt"))


def _check_response_format(data: dict[str, Any]) -> None:
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and fmt.get("json_schema") is None:
        raise InvalidRequestError(
            "When response_format type is 'json_schema', the 'json_schema' field must be provided.",
            param="response_format",
        )


def _check_logprobs(data: dict[str, Any]) -> None:
    if data.get("logprob_token_ids") and data.get("use_beam_search"):
        raise InvalidRequestError("`logprob_token_ids` is not supported with beam search.", param="logprob_token_ids")
    if data.get("logprob_token_ids") and not data.get("logprobs"):
        raise InvalidRequestError(
            "when using `logprob_token_ids`, `logprobs` must be set to true.", param="logprob_token_ids"
        )
    prompt = data.get("prompt_logprobs")
    if isinstance(prompt, int | float) and data.get("stream") and (prompt > 0 or prompt == -1):
        raise InvalidRequestError("`prompt_logprobs` are not available when `stream=True`.", param="prompt_logprobs")
    top_logprobs = data.get("top_logprobs")
    if isinstance(top_logprobs, int | float) and top_logprobs > 0 and not data.get("logprobs"):
        raise InvalidRequestError("when using `top_logprobs`, `logprobs` must be set to true.", param="top_logprobs")


def _check_tools(data: dict[str, Any]) -> None:
    tools, choice = data.get("tools"), data.get("tool_choice")
    if tools == []:
        raise InvalidRequestError(
            "`tools` must not be an empty array. Either provide at least one tool or omit the field entirely.",
            param="tools",
        )
    if choice is None or choice == "none":
        return
    if tools is None:
        raise InvalidRequestError("When using `tool_choice`, `tools` must be set.", param="tool_choice")
    if not isinstance(choice, dict):
        if choice in ("auto", "required"):
            return
        raise InvalidRequestError(
            f'Invalid value for `tool_choice`: {choice}! Only named tools, "none", "auto" or "required" are supported.',
            param="tool_choice",
        )
    function = choice.get("function")
    if not isinstance(function, dict):
        raise InvalidRequestError(
            f"Invalid value for `function`: `{function}` in `tool_choice`! {NAMED_TOOL_USAGE}",
            param="tool_choice.function",
        )
    if "name" not in function:
        raise InvalidRequestError(
            f"Expected field `name` in `function` in `tool_choice`! {NAMED_TOOL_USAGE}",
            param="tool_choice.function.name",
        )
    name = function["name"]
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"Invalid `name` in `function`: `{name}` in `tool_choice`! {NAMED_TOOL_USAGE}",
            param="tool_choice.function.name",
        )
    names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    if name not in names:
        raise InvalidRequestError(
            "The tool specified in `tool_choice` does not match any of the specified `tools`", param="tool_choice"
        )


def check_role(role: str) -> None:
    """vLLM accepts any role in the body, then makes a harmony ``Author`` of it while rendering: a role harmony
    lacks fails there, and vLLM answers 400 with the validation error's own text."""
    if role in HARMONY_ROLES:
        return
    try:
        Author(role=role)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequestError(str(exc).strip()) from None
