"""Render a neutral chat request into gpt-oss prompt token ids with harmony.

Layout: a system message (model identity, knowledge cutoff, conversation date, reasoning effort),
a developer message holding the request's system/developer instructions (and function tools), then the
history. Earlier assistant turns keep only their final answer (harmony drops old analysis); the
reasoning of an assistant turn that ended in tool calls is kept, because the model continues it, and text alongside
tool calls is the commentary preamble said before them.
User text is encoded as plain text: a string spelling ``<|start|>`` never becomes a control token.

Cost: harmony renders each control token by encoding its text against a set of all its special tokens that it builds
on every call, some 25 microseconds a token, four per message. A text message renders as its header's tokens (up to
``<|message|>``), its text encoded as ordinary text, then its end token, so the renderer asks harmony once for each
header's frame (the message rendered with no text, cached) and encodes the text itself; the system message is
cached whole, a developer message (instructions and tools, resent on every turn of an agent's loop) by its content,
and a long text by itself (``TextTokenCache``: the earlier turns of a conversation come back on every turn).
``build_conversation`` is the same conversation for harmony to render whole: the tests' reference.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import NamedTuple

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyError,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)
from openai_harmony import (
    RenderOptions as HarmonyRenderOptions,
)

from server.errors import InvalidRequestError
from server.harmony.decode import sanitize_tool_name
from server.harmony.encoding import MESSAGE, START, encode_ordinary, get_encoding
from server.harmony.textcache import TextTokenCache
from server.types import ChatMessage, ChatRequest, FunctionTool, ToolCall

_EFFORT = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}
FRAME_CACHE_SIZE = 4096  # header frames kept (``_frame``)
DEVELOPER_CACHE_SIZE = 32  # developer messages kept (``_developer_tokens``)


class _Text(NamedTuple):
    """A message of plain text: its header's fields and its text (what harmony's ``Message`` would hold)."""

    role: Role
    text: str
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None
    name: str | None = None  # the author's name (a tool's: the function that answers)

    def message(self) -> Message:
        message = Message.from_author_and_content(Author(role=self.role, name=self.name), self.text)
        if self.channel is not None:
            message = message.with_channel(self.channel)
        if self.recipient is not None:
            message = message.with_recipient(self.recipient)
        if self.content_type is not None:
            message = message.with_content_type(self.content_type)
        return message


_Part = _Text | Message  # a developer message stays harmony's: its content is no text


@dataclass(frozen=True, slots=True)
class RenderOptions:
    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    knowledge_cutoff: str = "2024-06"
    # None: today's date (UTC) at render time; a fixed "YYYY-MM-DD" pins it (reproducible prompts).
    conversation_start_date: str | None = None
    default_reasoning_effort: str = "medium"
    # bytes of memory for the tokens of long message texts (``TextTokenCache``); 0: none
    text_cache_bytes: int = 32 * 1024 * 1024


class HarmonyRenderer:
    def __init__(self, options: RenderOptions | None = None) -> None:
        self.options = options or RenderOptions()
        self._encoding = get_encoding()
        self.texts = TextTokenCache(self.options.text_cache_bytes)

    def _date(self) -> str:
        return self.options.conversation_start_date or dt.datetime.now(dt.UTC).date().isoformat()

    def build_conversation(self, request: ChatRequest) -> Conversation:
        """The whole conversation as harmony's messages (``render`` gives what harmony renders of it)."""
        parts = [p.message() if isinstance(p, _Text) else p for p in self._parts(request)]
        return Conversation.from_messages([self._system_message(self._effort(request), self._date()), *parts])

    def _effort(self, request: ChatRequest) -> str:
        return request.reasoning_effort or self.options.default_reasoning_effort

    def _system_message(self, effort: str, date: str) -> Message:
        opts = self.options
        system = (
            SystemContent.new()
            .with_model_identity(opts.model_identity)
            .with_knowledge_cutoff(opts.knowledge_cutoff)
            .with_conversation_start_date(date)
            .with_reasoning_effort(_EFFORT[effort])
        )
        return Message.from_role_and_content(Role.SYSTEM, system)

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one renderer per server: the cache lives as long as it does)
    def _system_tokens(self, effort: str, date: str, function_tools: bool) -> tuple[int, ...]:
        """The system message's tokens: the same for every request with this effort, date and tool presence."""
        options = HarmonyRenderOptions(conversation_has_function_tools=function_tools)
        return tuple(self._encoding.render(self._system_message(effort, date), options))

    def _parts(self, request: ChatRequest) -> list[_Part]:
        """The messages after the system message: developer instructions and tools, then the history."""
        messages: list[_Part] = []
        instructions = [m.content for m in request.messages if m.role in ("system", "developer") and m.content]
        tools = _declared_tools(request)
        if instructions or tools:
            developer = DeveloperContent.new()
            if instructions:
                developer = developer.with_instructions("\n\n".join(instructions))
            for config in _namespaces(tools):
                developer = developer.with_tools(config)
            messages.append(Message.from_role_and_content(Role.DEVELOPER, developer))

        history = [m for m in request.messages if m.role not in ("system", "developer")]
        last_user = max((i for i, m in enumerate(history) if m.role == "user"), default=-1)
        tool_names = {c.id: _recipient(c) for m in history for c in m.tool_calls}
        for index, msg in enumerate(history):
            messages.extend(self._history_message(msg, keep_reasoning=index > last_user, tool_names=tool_names))
        return messages

    def _history_message(self, msg: ChatMessage, *, keep_reasoning: bool, tool_names: dict[str, str]) -> list[_Part]:
        if msg.role == "user":
            return [_Text(Role.USER, msg.content or "")]
        if msg.role == "assistant":
            out: list[_Part] = []
            if keep_reasoning and msg.reasoning and msg.tool_calls:
                out.append(_Text(Role.ASSISTANT, msg.reasoning, "analysis"))
            if msg.content and msg.tool_calls:
                # text alongside tool calls is what the model said before them (a call ends its turn): harmony's
                # commentary preamble. On the final channel it would read as an answer, and harmony would drop the
                # reasoning of the tool loop in progress.
                out.append(_Text(Role.ASSISTANT, msg.content, "commentary"))
            for call in msg.tool_calls:
                out.append(
                    _Text(Role.ASSISTANT, call.arguments or "{}", "commentary", _recipient(call), "<|constrain|>json")
                )
            if msg.content and not msg.tool_calls:
                out.append(_Text(Role.ASSISTANT, msg.content, "final"))
            return out
        if msg.role == "tool":
            recipient = tool_names.get(msg.tool_call_id or "") or (
                f"functions.{sanitize_tool_name(msg.name)}" if msg.name else None
            )
            if not recipient:
                raise InvalidRequestError(
                    "A tool message must answer a tool call of an earlier assistant message (tool_call_id not found).",
                    param="messages",
                )
            return [_Text(Role.TOOL, msg.content or "", "commentary", "assistant", name=recipient)]
        raise InvalidRequestError(f"Unsupported role: {msg.role}", param="messages")

    def render(self, request: ChatRequest) -> list[int]:
        """Prompt token ids, ending with ``<|start|>assistant`` (the model writes the rest): what harmony renders of
        ``build_conversation(request)`` for completion (its only conversation-wide inputs are whether the developer
        message declares ``functions`` tools, which only the system message shows, and which analysis messages
        to drop, ``_dropped``)."""
        function_tools = any((t.namespace or "functions") == "functions" for t in _declared_tools(request))
        try:
            parts = self._parts(request)
            tokens = list(self._system_tokens(self._effort(request), self._date(), function_tools))
            dropped = _dropped(parts)
            for index, part in enumerate(parts):
                if index in dropped:
                    continue
                if isinstance(part, _Text):
                    frame = _frame(part[:1] + part[2:])  # the header's fields: all but the text
                    tokens += frame[:-1]
                    tokens += self.texts.encode(part.text)
                    tokens.append(frame[-1])
                else:
                    tokens += _developer_tokens(part.to_json())
            tokens += _COMPLETION_START
            return tokens
        except (ValueError, RecursionError, HarmonyError) as exc:
            raise InvalidRequestError(f"The conversation cannot be rendered: {exc}", param="messages") from exc
        except BaseException as exc:
            # harmony's Rust code reports a panic as pyo3's PanicException, a BaseException
            if exc.__class__.__name__ != "PanicException":
                raise
            raise InvalidRequestError("The conversation cannot be tokenized.", param="messages") from exc


@functools.lru_cache(maxsize=FRAME_CACHE_SIZE)
def _frame(header: tuple[Role, str | None, str | None, str | None, str | None]) -> tuple[int, ...]:
    """Harmony's rendering of a text message's header (``_Text``'s fields but its text) with no text: its tokens up
    to ``<|message|>``, then the end token (``<|end|>``, or ``<|call|>`` for a call)."""
    role, channel, recipient, content_type, name = header
    frame = tuple(get_encoding().render(_Text(role, "", channel, recipient, content_type, name).message()))
    if len(frame) < 3 or frame[-2] != MESSAGE or frame[0] != START:
        raise ValueError(f"unexpected rendering of a message header: {frame}")
    return frame


@functools.lru_cache(maxsize=DEVELOPER_CACHE_SIZE)
def _developer_tokens(message_json: str) -> tuple[int, ...]:
    """A developer message's tokens, by its content (an agent resends the same instructions and tools)."""
    return tuple(get_encoding().render(Message.from_dict(json.loads(message_json))))


_COMPLETION_START = (START, *encode_ordinary("assistant"))


def _dropped(parts: list[_Part]) -> set[int]:
    """The analysis messages harmony leaves out (``auto_drop_analysis``): when the last assistant message is on the
    final channel, those before the first message on the final channel."""
    last_assistant = next((p for p in reversed(parts) if _role(p) == Role.ASSISTANT), None)
    if last_assistant is None or last_assistant.channel != "final":
        return set()
    first_final = next((i for i, p in enumerate(parts) if p.channel == "final"), None)
    if first_final is None:
        return set()
    return {i for i, p in enumerate(parts[:first_final]) if p.channel == "analysis"}


def _role(part: _Part) -> Role:
    return part.role if isinstance(part, _Text) else part.author.role


def _declared_tools(request: ChatRequest) -> list[FunctionTool]:
    """The tools the developer message declares (none with ``tool_choice: none``)."""
    return request.tools if request.tool_choice.mode != "none" else []


def _recipient(call: ToolCall) -> str:
    return f"{call.namespace or 'functions'}.{sanitize_tool_name(call.name)}"


def _namespaces(tools: list[FunctionTool]) -> list[ToolNamespaceConfig]:
    """The request's tools as harmony namespaces: ``functions`` first, then each named group in order."""
    groups: dict[str, list[FunctionTool]] = {"functions": []}
    for tool in tools:
        groups.setdefault(tool.namespace or "functions", []).append(tool)
    return [
        ToolNamespaceConfig(
            name=name,
            description=members[0].namespace_description if name != "functions" else None,
            tools=[ToolDescription.new(t.name, t.description or "", parameters=t.parameters) for t in members],
        )
        for name, members in groups.items()
        if members
    ]


def canonical_arguments(text: str) -> str:
    """Compact JSON for tool arguments the model wrote, or the text unchanged if it is not JSON."""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text
