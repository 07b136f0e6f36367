"""A scripted assistant turn as the completion token ids the model would write after ``<|start|>assistant``.

The turn is built from harmony messages, as the renderer builds an assistant's history (``render.py``): reasoning on
the analysis channel; content on the final channel, or, said before tool calls, as their commentary preamble; each
call on the commentary channel to ``functions.NAME`` (or ``NAMESPACE.NAME``) with JSON content. It ends as the model
ends a turn: ``<|return|>`` after an answer, ``<|call|>`` after its last call (earlier calls end with ``<|end|>``, as
parallel calls do). The decoder (``decode.py``) reads back exactly these parts.
"""

from __future__ import annotations

from collections.abc import Sequence

from openai_harmony import Message, Role

from server.harmony.encoding import CALL, END, RETURN, START, get_encoding


def turn_messages(reasoning: str | None, content: str | None, calls: Sequence[tuple[str, str]]) -> list[Message]:
    """The turn's harmony messages; ``calls`` are (name or ``NAMESPACE.NAME``, arguments JSON text)."""
    out: list[Message] = []
    if reasoning is not None:
        out.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
    if content is not None:
        out.append(
            Message.from_role_and_content(Role.ASSISTANT, content).with_channel("commentary" if calls else "final")
        )
    for name, arguments in calls:
        out.append(
            Message.from_role_and_content(Role.ASSISTANT, arguments)
            .with_channel("commentary")
            .with_recipient(name if "." in name else f"functions.{name}")
            .with_content_type("<|constrain|>json")
        )
    return out


def turn_tokens(reasoning: str | None, content: str | None, calls: Sequence[tuple[str, str]]) -> list[int]:
    """The turn's completion token ids (see the module docstring)."""
    encoding = get_encoding()
    tokens: list[int] = []
    for message in turn_messages(reasoning, content, calls):
        rendered = list(encoding.render(message))
        if rendered[-1] == CALL:
            rendered[-1] = END  # only the turn's last call stops generation
        tokens += rendered
    head = [START, *encoding.encode("assistant", disallowed_special=())]
    if tokens[: len(head)] == head:
        tokens = tokens[len(head) :]  # the prompt ends with <|start|>assistant already
    if tokens and tokens[-1] == END:
        tokens[-1] = CALL if calls else RETURN
    return tokens
