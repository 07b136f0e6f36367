"""Validators for OpenAI's Responses objects, from its published OpenAPI document
(``tests/specs/openai-responses.json``, cut by ``tests/specs/prune.py`` to the Responses operations)."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema

from tests.helpers import REPO

DOCUMENT = REPO / "tests" / "specs" / "openai-responses.json"


@functools.cache
def validator(component: str) -> jsonschema.protocols.Validator:
    components = json.loads(DOCUMENT.read_text())["components"]
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{component}", "components": components})


def errors_of(component: str, value: Any) -> list[str]:
    """Each way ``value`` fails the schema (empty when it validates)."""
    found = []
    for error in validator(component).iter_errors(value):
        detail = [f"{'/'.join(map(str, c.absolute_path))}: {c.message[:200]}" for c in (error.context or [])[:6]]
        found.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]} {detail}")
    return found


@functools.cache
def event_components() -> dict[str, str]:
    """Each stream event's ``type`` -> the component that describes it."""
    components = json.loads(DOCUMENT.read_text())["components"]["schemas"]
    found = {}
    for name, schema in components.items():
        kind = (schema.get("properties") or {}).get("type", {}).get("enum")
        if name.endswith("Event") and kind and len(kind) == 1:
            found[kind[0]] = name
    return found


def check(component: str, value: Any) -> None:
    """``value`` validates against ``component``; a stream event also against its own event component (whose
    errors say what is wrong, where the union's only say that no member matched)."""
    if component == "ResponseStreamEvent":
        own = event_components().get(value.get("type"))
        assert own is not None, f"no event of type {value.get('type')!r} in the schema"
        errors = errors_of(own, value)
        assert not errors, (own, errors, json.dumps(value)[:2000])
    errors = errors_of(component, value)
    assert not errors, (component, errors, json.dumps(value)[:2000])
