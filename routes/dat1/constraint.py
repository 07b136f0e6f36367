"""llama.cpp's GBNF grammars in the engine's EBNF dialect (xgrammar's), and llama-server's answer to one that
does not parse; ``prepare`` is the core's prepare as llama-server would refuse and cap the request.

xgrammar reads GBNF's syntax (``::=`` rules, ``|``, groups, ``?``/``*``/``+``/``{m,n}``, character classes with
``\\x``/``\\u``/``\\U`` escapes, ``#`` comments, dashed rule names, a required ``root`` rule), with two exceptions that
llama.cpp's own example grammars use, rewritten here: an empty alternative (``ws ::= | " "`` in its json.gbnf)
becomes ``""``, and ``.`` (any character) becomes the class of all code points. Token references (``<[id]>``,
``<|name|>``; newer builds) have no counterpart and are left as they are: the engine refuses the grammar.
"""

from __future__ import annotations

from server.context import ServerContext
from server.errors import InvalidConstraintError, InvalidRequestError
from server.service import PreparedRequest
from server.types import ChatRequest

ANY_CHAR = "[\\u0000-\\U0010FFFF]"


def _skip_quoted(text: str, i: int, close: str) -> int:
    """The index after the literal or class opened at ``text[i]`` (backslash escapes honoured)."""
    j = i + 1
    while j < len(text) and text[j] != close:
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, len(text))


def to_ebnf(gbnf: str) -> str:
    """``gbnf`` with its empty alternatives spelled ``""`` and ``.`` as a character class."""
    out: list[str] = []
    empty = False  # inside an alternative that has no element yet
    i = 0
    while i < len(gbnf):
        c = gbnf[i]
        if c in '"[':
            j = _skip_quoted(gbnf, i, '"' if c == '"' else "]")
            out.append(gbnf[i:j])
            empty, i = False, j
            continue
        if c == "#":
            j = gbnf.find("\n", i)
            j = len(gbnf) if j < 0 else j
            out.append(gbnf[i:j])
            i = j
            continue
        if gbnf.startswith("::=", i):
            out.append("::=")
            empty, i = True, i + 3
            continue
        if c in "|)":
            if empty:
                out.append('""')
            out.append(c)
            empty = c == "|"
        elif c == "(":
            out.append(c)
            empty = True
        elif c == ".":
            out.append(ANY_CHAR)
            empty = False
        else:
            out.append(c)
            if not c.isspace():
                empty = False
        i += 1
    return "".join(out)


def defines_rule(gbnf: str) -> bool:
    """Whether any line, its ``#`` comment left out, defines a rule (``::=``)."""
    return any("::=" in line.split("#", 1)[0] for line in gbnf.splitlines())


async def prepare(ctx: ServerContext, chat: ChatRequest) -> PreparedRequest:
    """The core's prepare, except that llama-server never refuses ``max_tokens`` past the context: it generates
    up to what fits (finish_reason ``length``), and a grammar its sampler cannot parse is its slot's one error,
    ``Failed to parse grammar`` (400)."""
    fmt = chat.response_format
    if fmt.type == "grammar" and not defines_rule(fmt.grammar or ""):
        # no rule, no root: llama-server cannot parse it (the engine would read it as Lark, as vLLM does)
        raise InvalidRequestError("Failed to parse grammar", param="grammar")
    try:
        return await ctx.service.prepare(chat, clamp_max_tokens=True)
    except InvalidConstraintError:
        if chat.response_format.type == "grammar":
            raise InvalidRequestError("Failed to parse grammar", param="grammar") from None
        raise
