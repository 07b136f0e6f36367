"""Decode generated token ids into neutral deltas with harmony's streaming parser.

Channels: ``analysis`` -> reasoning text; ``final`` (and commentary without a recipient, a preamble)
-> answer text; a message addressed to ``functions.NAME`` (or ``NAMESPACE.NAME`` for a declared tool namespace)
-> a tool call whose arguments stream as deltas. Malformed model output never raises: a token the parser rejects
is skipped; when a message header grows past ``MAX_HEADER_TOKENS`` or generation ends while a header is still
open, the raw text of that message (control tokens removed) becomes answer text, as vLLM recovers it, and from
then on the output streams as raw text. The caller always gets what could be recovered, incrementally.

Cost: harmony's parser is dear to make (tens of microseconds: it copies the encoding) and, in a message header,
to feed (it re-encodes the ``<|message|>`` marker on every call), yet between messages its state is small: waiting
for ``<|start|>``, collecting a header's tokens, or in a body whose header it parsed; what a header parses to
depends only on its tokens and on whether the role is already known (the turn's first message is the assistant's).
So the decoder keeps that state itself and asks harmony only what a header parses to, when ``<|message|>`` closes
it: a scratch parser fed the same tokens answers, and the answer is kept for the next header of the same tokens
(``_header_outcome``). A token the parser would refuse while it waits for ``<|start|>`` is refused without it; a
header that never closes (a random-weight model's output) is never parsed at all. In a message body the parser
decodes each token and re-tokenizes the text it got (for its message list, which the decoder never reads); the
decoder decodes body tokens itself instead, exactly as the parser's ``last_content_delta`` reports them
(``_BodyText``); a message-ending token gives no text then (the parser reports none) and starts the wait for
``<|start|>``. ``HarmonyDecoder.EAGER`` feeds every token to one parser instead: the reference the tests compare
this with.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterable, Sequence

from openai_harmony import HarmonyError, Role, StreamableParser, StreamState

from server.harmony.encoding import CALL, END, FIRST_SPECIAL_ID, MESSAGE, RETURN, START, get_encoding
from server.types import Delta, ToolCallDelta

log = logging.getLogger(__name__)

_ALNUM = string.ascii_letters + string.digits
_TOOL_NAME_BAD = re.compile(r"[^A-Za-z0-9_\-.]")
_MESSAGE_END = frozenset((END, RETURN, CALL))
_CONTENT = StreamState.CONTENT
_HEADER = StreamState.HEADER
_EXPECT_START = StreamState.EXPECT_START
_REPLACEMENT = "\ufffd"
_TOKEN_BYTES: dict[int, bytes] = {}  # each id's bytes, filled as ids come
# Real headers (``<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>``) are a few tokens
# long. A "header" longer than this is not harmony at all: the decoder switches to raw mode.
MAX_HEADER_TOKENS = 64
HEADER_CACHE_SIZE = 1024  # what headers parse to (``_header_outcome``), by (role known, header tokens)


def new_call_id() -> str:
    """``call_`` + 24 letters and digits (the tool-call id format of OpenAI's API)."""
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


class _BodyText:
    """A message body's text as harmony's parser streams it (``last_content_delta`` per token): a token's bytes
    joined to any bytes held back; a valid UTF-8 prefix comes out at once; an incomplete sequence at the end waits
    for the next token; an invalid one becomes one U+FFFD and the bytes after it wait for the next token; a token
    that cannot be decoded at all holds back the rest of the message (bytes of every id are cached)."""

    __slots__ = ("_held", "_stuck")

    def __init__(self) -> None:
        self._held = b""
        self._stuck = False

    def reset(self) -> None:
        self._held, self._stuck = b"", False

    def feed(self, token: int) -> str | None:
        if self._stuck:
            return None
        raw = _TOKEN_BYTES.get(token)
        if raw is None:
            raw = self._token_bytes(token)
            if raw is None:
                self._stuck = True
                return None
        data = self._held + raw if self._held else raw
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            valid = data[: exc.start].decode()
            if exc.end == len(data) and exc.reason == "unexpected end of data":
                self._held = data[exc.start :]
                return valid or None
            self._held = data[exc.end :]
            return valid + _REPLACEMENT
        self._held = b""
        return text

    @staticmethod
    def _token_bytes(token: int) -> bytes | None:
        try:
            raw = get_encoding()._inner.decode_bytes([token])
        except HarmonyError:
            return None
        _TOKEN_BYTES[token] = raw = bytes(raw)
        return raw


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def _header_outcome(role_known: bool, header: tuple[int, ...]) -> tuple[str | None, str | None] | None:
    """What harmony's parser makes of a header when ``<|message|>`` closes it: (channel, recipient), or None where
    it refuses the header (it then waits for ``<|start|>``, the role still as it was). ``role_known``: the parser
    was made for the assistant's turn and has not yet parsed a header (the header holds no role); otherwise the
    header followed a ``<|start|>``."""
    parser = StreamableParser(get_encoding(), role=Role.ASSISTANT if role_known else None)
    outcome: tuple[str | None, str | None] | None = None
    try:
        if not role_known:
            parser.process(START)
        for token in header:
            parser.process(token)
        parser.process(MESSAGE)
        outcome = (parser.current_channel, parser.current_recipient)
    except HarmonyError:
        pass
    return outcome


def sanitize_tool_name(recipient: str) -> str:
    """``functions.get_weather`` -> ``get_weather``; anything odd is replaced, length bounded."""
    name = recipient.removeprefix("functions.").strip()
    name = name.split(" ", 1)[0].split("<|", 1)[0]
    return _TOOL_NAME_BAD.sub("_", name)[:64] or "unknown"


class HarmonyDecoder:
    """Stateful decoder for one assistant turn."""

    EAGER = False  # every token to one harmony parser as it comes (the reference), not the decoder's own state

    __slots__ = (
        "_body",
        "_body_text",
        "_call_index",
        "_call_open",
        "_channel",
        "_dropped",
        "_encoding",
        "_header",
        "_namespaces",
        "_new_id",
        "_parser",
        "_pending",
        "_raw",
        "_recipient",
        "_role_known",
        "_state",
        "reasoning_tokens",
        "rejected_tokens",
    )

    def __init__(
        self, new_tool_call_id: Callable[[], str] = new_call_id, namespaces: frozenset[str] = frozenset()
    ) -> None:
        self._encoding = get_encoding()
        self._parser: StreamableParser | None = None  # EAGER only: made when the first token comes
        self._pending: list[int] = []  # tokens of the message in progress
        self._call_index = -1
        self._call_open = False  # a tool call was started for the message in progress
        self._body = False  # the message in progress has produced text
        self._channel: str | None = None  # of the message in progress, once its header is complete
        self._recipient: str | None = None  # a function recipient (tool call) of the message in progress
        self._dropped = False  # the message in progress addresses an undeclared built-in tool
        self._new_id = new_tool_call_id
        self._namespaces = namespaces  # tool namespaces the request declared besides ``functions``
        self.reasoning_tokens = 0
        self.rejected_tokens = 0
        self._raw: codecs.IncrementalDecoder | None = None  # set once the output is not harmony
        # the parser's state: a header first (the assistant's turn has begun), its role known until one is parsed
        self._state = _HEADER
        self._role_known = True
        self._header: list[int] = []  # the tokens of the header in progress
        self._body_text = _BodyText()

    def feed(self, token_ids: Sequence[int]) -> Delta:
        delta = Delta()
        if len(token_ids) == 1 and self._state is _CONTENT and not self.EAGER and token_ids[0] not in _MESSAGE_END:
            # the common step: one token of a message body (what ``_feed_own`` does with it; raw output never
            # gets here, as it starts outside a body and then leaves the state as it was)
            token = token_ids[0]
            if self._channel == "analysis":
                self.reasoning_tokens += 1
            body_text = self._body_text
            raw = _TOKEN_BYTES.get(token)
            text: str | None
            if raw is not None and not body_text._held and not body_text._stuck:  # what ``_BodyText.feed`` does
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    text = body_text.feed(token)
            else:
                text = body_text.feed(token)
            if text:
                self._emit(delta, text)
            return delta
        if self._raw is not None:
            delta.content = self._raw_text(token_ids)
        elif self.EAGER:
            self._feed_parser(delta, token_ids)
        else:
            self._feed_own(delta, token_ids)
        return delta

    def _feed_own(self, delta: Delta, token_ids: Sequence[int]) -> None:
        """Tokens through the decoder's own copy of the parser's state (harmony parses the headers)."""
        for index, token in enumerate(token_ids):
            state = self._state
            if state is _CONTENT:
                if self._channel == "analysis":
                    self.reasoning_tokens += 1
                if token not in _MESSAGE_END:
                    text = self._body_text.feed(token)
                    if text:
                        self._emit(delta, text)
                    continue
                if self._recipient is not None and not self._call_open:
                    self._tool_text(delta, self._recipient, "")  # a call whose arguments were empty still is a call
                self._state = _EXPECT_START
                self._end_message()
                continue
            if not self._body and len(self._pending) >= MAX_HEADER_TOKENS:
                delta.content += self._start_raw(list(token_ids[index:]))
                return
            self._pending.append(token)
            if state is _HEADER:
                if token != MESSAGE:
                    # in a header the (strict) parser only collects a token, control tokens included: no text, no
                    # state change; only ``<|message|>`` closes it
                    self._header.append(token)
                    if token in _MESSAGE_END:
                        self._end_message()
                    continue
                header, self._header = self._header, []
                outcome = _header_outcome(self._role_known, tuple(header))
                if outcome is None:
                    self.rejected_tokens += 1
                    self._state = _EXPECT_START
                    continue
                self._role_known = False
                self._state = _CONTENT
                self._open_message(*outcome)
                if self._channel == "analysis":
                    self.reasoning_tokens += 1
            elif token == START:
                self._state = _HEADER
            else:
                self.rejected_tokens += 1  # the parser refuses anything but ``<|start|>`` here, and stays as it is

    def _feed_parser(self, delta: Delta, token_ids: Sequence[int]) -> None:
        """``EAGER``: every token through one harmony parser."""
        parser = self._parser
        if parser is None:
            parser = self._parser = StreamableParser(self._encoding, role=Role.ASSISTANT)
        for index, token in enumerate(token_ids):
            if not self._body and len(self._pending) >= MAX_HEADER_TOKENS and self._state is not _CONTENT:
                delta.content += self._start_raw(list(token_ids[index:]))
                return
            special = token >= FIRST_SPECIAL_ID
            try:
                parser.process(token)
            except HarmonyError:
                self.rejected_tokens += 1
                self._pending.append(token)
                if special:
                    self._state = parser.state
                continue
            if special:  # only a control token moves the parser between start, header and body
                self._state = parser.state
            if token == MESSAGE:
                self._open_message(parser.current_channel, parser.current_recipient)
            if self._channel == "analysis":
                self.reasoning_tokens += 1
            text = parser.last_content_delta
            if text:
                self._emit(delta, text)
            if token in _MESSAGE_END:
                if self._recipient is not None and not self._call_open:
                    self._tool_text(delta, self._recipient, "")
                self._end_message()
            else:
                self._pending.append(token)

    def _open_message(self, channel: str | None, recipient: str | None) -> None:
        """The header is complete: its channel and recipient hold for the whole message body."""
        self._channel = channel
        self._recipient = recipient if recipient and self._is_tool(recipient) else None
        # a built-in tool the client never declared (browser.*, python): not a call it can answer
        self._dropped = bool(recipient) and self._recipient is None and recipient not in ("assistant", "user")

    def _emit(self, delta: Delta, text: str) -> None:
        """Body text of the message in progress: reasoning, answer or a tool call's arguments."""
        self._body = True
        if self._dropped:
            pass
        elif self._recipient is not None:
            self._tool_text(delta, self._recipient, text)
        elif self._channel == "analysis":
            delta.reasoning += text
        else:
            delta.content += text

    def _end_message(self) -> None:
        self._body_text.reset()
        self._pending.clear()
        self._call_open = False
        self._body = False
        self._channel = self._recipient = None
        self._dropped = False

    def _is_tool(self, recipient: str) -> bool:
        namespace = recipient.split(".", 1)[0]
        return "." in recipient and (namespace == "functions" or namespace in self._namespaces)

    def _start_raw(self, rest: list[int]) -> str:
        log.debug("harmony header exceeded %d tokens; streaming the output as raw text", MAX_HEADER_TOKENS)
        self.rejected_tokens += len(self._pending)
        self._raw = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending, self._pending = self._pending, []
        return self._raw_text(pending + rest)

    def _raw_text(self, token_ids: Iterable[int]) -> str:
        assert self._raw is not None
        plain = [t for t in token_ids if t < FIRST_SPECIAL_ID]
        return self._raw.decode(self._encoding._inner.decode_bytes(plain)) if plain else ""

    def _tool_text(self, delta: Delta, recipient: str, text: str) -> None:
        if not self._call_open:
            self._call_open = True
            self._call_index += 1
            namespace, _, name = recipient.partition(".")
            delta.tool_calls.append(
                ToolCallDelta(
                    index=self._call_index,
                    id=self._new_id(),
                    name=sanitize_tool_name(name),
                    arguments=text,
                    namespace=None if namespace == "functions" else namespace,
                )
            )
        elif delta.tool_calls and delta.tool_calls[-1].index == self._call_index:
            delta.tool_calls[-1].arguments += text
        else:
            delta.tool_calls.append(ToolCallDelta(index=self._call_index, arguments=text))

    @property
    def has_tool_calls(self) -> bool:
        return self._call_index >= 0

    def finish(self) -> Delta:
        """Close the turn; returns any answer text recovered from an unterminated header."""
        delta = Delta()
        if self._raw is not None:
            delta.content = self._raw.decode(b"", final=True)
            return delta
        state = self._state  # the parser's (unfed header tokens leave it in the header)
        pending = [t for t in self._pending if t < FIRST_SPECIAL_ID]
        self._pending.clear()
        if state in (StreamState.HEADER, StreamState.EXPECT_START) and pending:
            text = self._encoding.decode(pending)
            if text:
                log.debug("harmony output ended in a non-terminal state; recovered %d tokens", len(pending))
                delta.content = text
        return delta
