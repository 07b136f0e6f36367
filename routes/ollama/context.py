"""``/api/generate``'s deprecated ``context``: the conversation so far, as token ids, handed back by the client.

Ollama returns ``context`` (the prompt's tokens and the answer's) with every final generate answer and, sent back,
puts those tokens before the next prompt. Here they are harmony tokens: a context is read back into the
conversation it holds (its instructions, user turns and final answers; reasoning and the server's system message
are rendered afresh), so a client keeping a short memory this way gets one, and no token id a client sends reaches
the prompt except as the text it decodes to.
"""

from __future__ import annotations

from openai_harmony import HarmonyError, Message, Role

from server.errors import InvalidRequestError
from server.harmony.encoding import get_encoding
from server.types import ChatMessage

VOCAB_SIZE = 201088
INSTRUCTIONS = "# Instructions\n\n"
TOOLS = "\n\n# Tools"


def _text(message: Message) -> str:
    return "".join(getattr(part, "text", "") for part in message.content)


def _instructions(message: Message) -> str:
    text = _text(message)
    if not text.startswith(INSTRUCTIONS):
        return ""
    return text[len(INSTRUCTIONS) :].split(TOOLS, 1)[0]


def _parse(tokens: list[int]) -> list[Message]:
    try:
        return list(get_encoding().parse_messages_from_completion_tokens(tokens, None, strict=False))
    except (HarmonyError, ValueError, OverflowError) as exc:
        message = f"context is not a conversation this server returned: {exc}"
        raise InvalidRequestError(message, param="context") from None
    except BaseException as exc:  # harmony's Rust code reports a panic as pyo3's PanicException
        if exc.__class__.__name__ != "PanicException":
            raise
        raise InvalidRequestError("context is not a conversation this server returned", param="context") from None


def context_messages(tokens: list[int]) -> list[ChatMessage]:
    """The conversation a ``context`` holds: instructions (as ``system``), user turns, final answers."""
    if not tokens:
        return []
    if any(not 0 <= t < VOCAB_SIZE for t in tokens):
        raise InvalidRequestError("context holds a token id outside the vocabulary", param="context")
    out: list[ChatMessage] = []
    for message in _parse(tokens):
        role = message.author.role
        if role == Role.DEVELOPER and (instructions := _instructions(message)):
            out.append(ChatMessage(role="system", content=instructions))
        elif role == Role.USER:
            out.append(ChatMessage(role="user", content=_text(message)))
        elif role == Role.ASSISTANT and message.channel == "final":
            out.append(ChatMessage(role="assistant", content=_text(message)))
    return out
