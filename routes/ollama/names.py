"""Ollama's model names: ``[host/][namespace/]model[:tag]``, defaults filled in, compared case-insensitively."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"


@dataclass(frozen=True, slots=True)
class Name:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What two names are compared by (Ollama matches every part case-insensitively)."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    @property
    def full(self) -> str:
        """``registry.ollama.ai/library/gpt-oss:120b``, as Ollama names the model in its errors."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def shortest(self) -> str:
        """``gpt-oss:120b``: the host and namespace only where they are not the defaults."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"


def _valid_part(kind: str, part: str) -> bool:
    if not 1 <= len(part) <= (350 if kind == "host" else 80):
        return False
    if not (part[0].isascii() and (part[0].isalnum() or part[0] == "_")):
        return False
    for char in part[1:]:
        if char in "_-":
            continue
        if char == "." and kind != "namespace":
            continue
        if char == ":" and kind == "host":
            continue
        if not (char.isascii() and char.isalnum()):
            return False
    return True


def parse(text: str) -> Name | None:
    """The name with Ollama's defaults, or None where Ollama finds it invalid."""
    rest, tag = text, ""
    if text.rfind(":") > text.rfind("/"):
        rest, _, tag = text.rpartition(":")
    parts = rest.split("/")
    if len(parts) > 3:
        parts = ["/".join(parts[:-2]), *parts[-2:]]
    model = parts[-1]
    namespace = (parts[-2] if len(parts) > 1 else "") or DEFAULT_NAMESPACE  # empty parts take the defaults
    host = (parts[-3] if len(parts) > 2 else "").split("://", 1)[-1] or DEFAULT_HOST
    name = Name(host, namespace, model, tag or DEFAULT_TAG)
    kinds = (("host", name.host), ("namespace", name.namespace), ("model", name.model), ("tag", name.tag))
    return name if all(_valid_part(kind, part) for kind, part in kinds) else None


def same(a: str, b: str) -> bool:
    left, right = parse(a), parse(b)
    return left is not None and right is not None and left.key == right.key
