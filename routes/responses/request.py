"""The body of ``POST /v1/responses`` (and of ``/input_tokens``), validated as OpenAI validates it.

Fields a real client sends that change nothing here (``client_metadata``, ``service_tier``, ``stream_options``,
``text.verbosity``, ...) are accepted; a known field with a wrong type or value is a 400 naming it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.errors import InvalidRequestError
from server.types import ReasoningEffort, ResponseFormat

INT64 = 2**63 - 1

# ``include`` values OpenAI accepts; the two this server acts on are the first two.
ENCRYPTED_REASONING = "reasoning.encrypted_content"
OUTPUT_LOGPROBS = "message.output_text.logprobs"
INCLUDABLE = frozenset(
    {
        ENCRYPTED_REASONING,
        OUTPUT_LOGPROBS,
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)
# gpt-oss has three effort levels; OpenAI's others map to the nearest
_EFFORTS: dict[str, ReasoningEffort] = {
    "none": "low",
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


class ReasoningParam(BaseModel):
    model_config = ConfigDict(extra="ignore")
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None

    @property
    def core_effort(self) -> ReasoningEffort | None:
        return _EFFORTS[self.effort] if self.effort else None


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = Field(None, max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextParam(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: TextFormat = Field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = None  # gpt-oss has no verbosity control: echoed only

    def to_core(self) -> ResponseFormat:
        fmt = self.format
        if fmt.type == "json_schema":
            if fmt.schema_ is None:
                raise InvalidRequestError(
                    "Missing required parameter: 'text.format.schema'.", param="text.format.schema"
                )
            if not fmt.name:
                raise InvalidRequestError("Missing required parameter: 'text.format.name'.", param="text.format.name")
        return ResponseFormat(type=fmt.type, schema=fmt.schema_, name=fmt.name, strict=bool(fmt.strict))

    def echo(self) -> dict[str, Any]:
        fmt = self.format
        out: dict[str, Any] = {"type": fmt.type}
        if fmt.type == "json_schema":
            if fmt.description is not None:  # the schema's description is a string, never null
                out["description"] = fmt.description
            out.update({"name": fmt.name, "schema": fmt.schema_, "strict": bool(fmt.strict)})
        return {"format": out, "verbosity": self.verbosity or "medium"}


class CreateResponse(BaseModel):
    """``CreateResponse``: what this server reads. ``input`` items are parsed by ``items.parse_input``."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=256)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=512)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningParam | None = None
    text: TextParam | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=INT64)
    max_tool_calls: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    include: list[str] | None = None
    store: bool | None = None
    stream: bool | None = False
    previous_response_id: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    background: bool | None = False
    prompt_cache_key: str | None = Field(None, max_length=1024)
    safety_identifier: str | None = Field(None, max_length=256)
    user: str | None = Field(None, max_length=256)
    service_tier: str | None = None
    # OpenAI's server-side conversations and stored prompt templates: not kept here, so refused rather than ignored
    conversation: Any = None
    prompt: Any = None
    # vLLM's sampling extras, as its own Responses server takes them
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)

    @field_validator("include")
    @classmethod
    def _known_includes(cls, value: list[str] | None) -> list[str] | None:
        for index, name in enumerate(value or []):
            if name not in INCLUDABLE:
                raise ValueError(
                    f"Invalid value for include[{index}]: '{name}'. Supported values are: "
                    + ", ".join(f"'{v}'" for v in sorted(INCLUDABLE))
                    + "."
                )
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounds(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > 16:
            raise ValueError("metadata may hold at most 16 pairs.")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError("metadata keys are at most 64 characters and values at most 512.")
        return value

    def includes(self, name: str) -> bool:
        return name in (self.include or [])

    def check(self) -> None:
        """Combinations OpenAI refuses."""
        if self.input is None and self.previous_response_id is None:
            raise InvalidRequestError("Missing required parameter: 'input'.", param="input")
        if self.conversation is not None:
            raise InvalidRequestError(
                "Conversations are not supported by this server: continue with previous_response_id, or send the "
                "items in input.",
                param="conversation",
            )
        if self.prompt is not None:
            raise InvalidRequestError(
                "Stored prompt templates are not supported by this server: send instructions and input.",
                param="prompt",
            )
        if self.background and self.store is False:
            raise InvalidRequestError("Background responses must be stored: set store to true.", param="background")
