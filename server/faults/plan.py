"""The fault plan: what a fault is, which requests a rule hits, and the fault header's syntax.

A plan is a list of rules (plain dicts in YAML or from a test fixture)::

    - name: throttle-once        # optional; the fault header may name it
      route: openai              # a wire API's name (providers.<name>); none: any
      path: "/chat/completions$" # a regex searched in the URL path; none: any
      first: 1                   # the first K requests the rule matches; or every: N (the Nth, 2Nth...); neither: all
      kind: rate_limit
      retry_after: 1

The header (``X-Fault`` unless ``testing.fault_header`` says otherwise) holds a rule's name, a fault inline
(``rate_limit retry_after=2``, ``cut after=3``, ``slow token_delay_s=0.05``) or a JSON object of a fault's fields.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from server.errors import InvalidRequestError
from server.section import Section

FaultKind = Literal["rate_limit", "internal", "bad_gateway", "unavailable", "overloaded", "timeout", "cut", "slow"]
KINDS: tuple[str, ...] = get_args(FaultKind)
# kinds that answer with a typed error (before the first byte, or in-stream with ``after``)
ERROR_KINDS = frozenset({"rate_limit", "internal", "bad_gateway", "unavailable", "overloaded"})
RETRYABLE_KINDS = frozenset({"rate_limit", "unavailable", "overloaded"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Fault(Section):
    """What happens to one request.

    ``kind``:
      ``rate_limit`` 429 with Retry-After (``retry_after`` seconds, default 1); ``internal`` 500; ``bad_gateway``
      502; ``unavailable`` 503 (Retry-After when ``retry_after`` is set); ``overloaded`` 503, too busy (a wire API
      with its own overloaded status sends that). Before the first byte, in the route's envelope; with ``after``:
      in-stream, after that many deltas, in the route's stream error event (a non-streaming answer: the status).
      ``message`` replaces the core's wording.
      ``timeout``: no token comes; the request's deadline (``timeout_s``, else ``limits.request_timeout_s``) ends it
      as the server's deadline does (non-streaming: 504; a stream: cut short as the route marks it). With no
      deadline at all it hangs until the client leaves.
      ``cut``: the connection closes after ``after`` deltas (default 0) without the stream's terminator (a
      non-streaming answer: after the response head).
      ``slow``: a normal answer, paced.
    Streamed deltas are the core's events (one per engine step at ``limits.stream_interval`` 1); an answer with
    fewer deltas than ``after`` meets its fault at its end. ``first_token_delay_s`` (before the first token) and
    ``token_delay_s`` (per token) pace every kind that streams tokens: ``slow``, ``cut``, errors with ``after``.
    """

    kind: FaultKind
    message: str | None = Field(None, min_length=1, max_length=1000)
    retry_after: int | None = Field(None, ge=0, le=86400)
    after: int | None = Field(None, ge=0)
    first_token_delay_s: float = Field(0.0, ge=0, le=600)
    token_delay_s: float = Field(0.0, ge=0, le=60)
    timeout_s: float | None = Field(None, gt=0, le=86400)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Fault:
        kind = self.kind
        if self.retry_after is not None and kind not in RETRYABLE_KINDS:
            raise ValueError(f"retry_after applies to {sorted(RETRYABLE_KINDS)} faults, not {kind!r}")
        if self.message is not None and kind not in ERROR_KINDS:
            raise ValueError(f"message applies to error faults {sorted(ERROR_KINDS)}, not {kind!r}")
        if self.after is not None and kind not in ERROR_KINDS | {"cut"}:
            raise ValueError(f"after applies to error faults and 'cut', not {kind!r}")
        if self.timeout_s is not None and kind != "timeout":
            raise ValueError(f"timeout_s applies to 'timeout' faults, not {kind!r}")
        if (self.first_token_delay_s or self.token_delay_s) and not self.streams:
            raise ValueError(
                f"delays apply to faults that stream tokens ('slow', 'cut', errors with after), not {kind!r}"
            )
        if kind == "slow" and not (self.first_token_delay_s or self.token_delay_s):
            raise ValueError("a 'slow' fault needs first_token_delay_s or token_delay_s")
        return self

    @property
    def streams(self) -> bool:
        """Tokens flow before the fault strikes (or it never strikes: ``slow``)."""
        return self.kind in ("slow", "cut") or (self.kind in ERROR_KINDS and self.after is not None)

    @property
    def strikes_in_stream(self) -> bool:
        """It ends the stream after ``after`` deltas (an in-stream error or a cut)."""
        return self.kind == "cut" or (self.kind in ERROR_KINDS and self.after is not None)


class FaultRule(Fault):
    """A fault and the requests it applies to: those matching ``route`` and ``path`` (each optional), counted in
    order, hit as ``first`` (the first K) or ``every`` (each Nth) says, or all of them. ``header_only``: only
    requests whose fault header names the rule. Every rule counts every generation request it matches (after auth
    and validation); the first rule in the plan that fires applies."""

    name: str | None = None
    route: str | None = None
    path: str | None = None
    first: int | None = Field(None, ge=1)
    every: int | None = Field(None, ge=1)
    header_only: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not NAME.match(value) or value in KINDS):
            raise ValueError(f"a rule's name is 1-64 letters, digits, '.', '_' or '-', and no fault kind: {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"path is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _counting(self) -> FaultRule:
        if self.first is not None and self.every is not None:
            raise ValueError("a rule counts with first or every, not both")
        if self.header_only and self.name is None:
            raise ValueError("a header_only rule needs a name (the header names it)")
        return self

    def fault(self) -> Fault:
        return Fault.model_validate(self.model_dump(include=set(Fault.model_fields)))

    def matches(self, target: FaultTarget, named: bool) -> bool:
        if self.header_only and not named:
            return False
        if self.route is not None and self.route != target.api:
            return False
        return self.path is None or re.search(self.path, target.path) is not None

    def fires(self, count: int) -> bool:
        """Whether the ``count``-th request this rule matched is hit."""
        if self.first is not None:
            return count <= self.first
        if self.every is not None:
            return count % self.every == 0
        return True


def check_plan(rules: list[FaultRule], routes: set[str]) -> None:
    """Rule names unique and routes among the registered wire APIs (raises ``ValueError``)."""
    names = [r.name for r in rules if r.name is not None]
    if len(names) != len(set(names)):
        raise ValueError(f"fault rule names must be unique: {names}")
    for rule in rules:
        if rule.route is not None and rule.route not in routes:
            raise ValueError(f"fault rule route {rule.route!r} is no wire API; one of {sorted(routes)}")


@dataclass(frozen=True, slots=True)
class FaultTarget:
    """What the plan matches a request on: the wire API answering it, its path and its fault header."""

    api: str | None
    path: str
    header: str | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    """The fault a request gets and where it came from (a rule's name, ``rule-N`` or ``header``)."""

    fault: Fault
    source: str


_target: contextvars.ContextVar[FaultTarget | None] = contextvars.ContextVar("fault_target", default=None)


def bind_target(target: FaultTarget) -> contextvars.Token[FaultTarget | None]:
    return _target.set(target)


def unbind_target(token: contextvars.Token[FaultTarget | None]) -> None:
    _target.reset(token)


def current_target() -> FaultTarget | None:
    return _target.get()


class FaultPlan:
    """The rules and their counts (for the life of the server)."""

    def __init__(self, rules: list[FaultRule], header: str) -> None:
        self.rules = rules
        self.header = header
        self._counts = [0] * len(rules)
        self._by_name = {r.name: r for r in rules if r.name is not None}

    def choose(self, target: FaultTarget) -> Chosen | None:
        """The fault for this request, if any; a header that names no rule and holds no valid fault is a 400."""
        named: FaultRule | None = None
        if target.header is not None:
            named, inline = self._read_header(target.header)
            if inline is not None:
                return Chosen(inline, "header")
        chosen: Chosen | None = None
        for i, rule in enumerate(self.rules):
            if rule.matches(target, named is rule):
                self._counts[i] += 1
                if chosen is None and rule.fires(self._counts[i]):
                    chosen = Chosen(rule.fault(), rule.name or f"rule-{i + 1}")
        return chosen

    def _read_header(self, value: str) -> tuple[FaultRule | None, Fault | None]:
        """The rule the header names, or the fault it spells."""
        text = value.strip()
        head, _, rest = text.partition(" ")
        if head in self._by_name and not rest.strip():
            return self._by_name[head], None
        try:
            if text.startswith("{"):
                return None, Fault.model_validate_json(text)
            if head not in KINDS:
                raise ValueError(f"names no fault rule ({sorted(self._by_name)}) and no fault kind ({list(KINDS)})")
            fields: dict[str, object] = {"kind": head}
            for part in rest.split():
                key, eq, raw = part.partition("=")
                if not eq:
                    raise ValueError(f"expected key=value, got {part!r}")
                fields[key] = _scalar(raw)
            return None, Fault.model_validate(fields)
        except (ValueError, ValidationError) as exc:
            detail = _first_error(exc)
            raise InvalidRequestError(f"Invalid {self.header} header: {detail}", param=self.header) from None


def _scalar(raw: str) -> object:
    """A ``key=value`` value: a JSON number, boolean or null, else the text itself."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if value is None or isinstance(value, int | float | bool) else raw


def _first_error(exc: ValueError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid"))
        return f"{where}: {message}" if where else message
    return str(exc)
