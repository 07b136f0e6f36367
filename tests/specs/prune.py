"""Cut a provider's OpenAPI document down to some operations and the components they reference.

    python tests/specs/prune.py SOURCE.yaml OUT.json 'post /chat/completions' 'get /models' ...

OpenAI's published document is 3 MB of YAML (every API it has); the tests need its chat-completion and model
operations only. The output keeps the document's header (openapi, info, servers, security) and every component
reachable from the kept operations, unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def refs(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def prune(document: dict[str, Any], operations: list[tuple[str, str]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path in operations:
        item = document["paths"][path]
        kept = {k: v for k, v in item.items() if k not in ("get", "put", "post", "delete", "patch", "options", "head")}
        paths.setdefault(path, kept)[method] = item[method]
    out = {k: v for k, v in document.items() if k not in ("paths", "components", "webhooks", "x-oaiMeta")}
    out["paths"] = paths
    components: dict[str, dict[str, Any]] = {}
    todo, seen = refs(paths), set()
    if "security" in document:
        for requirement in document["security"]:
            todo |= {f"#/components/securitySchemes/{name}" for name in requirement}
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, name = ref.removeprefix("#/").split("/", 2)
        value = resolve(document, ref)
        components.setdefault(section, {})[name] = value
        todo |= refs(value) - seen
    out["components"] = {section: dict(sorted(items.items())) for section, items in sorted(components.items())}
    return out


def main() -> None:
    source, target, *ops = sys.argv[1:]
    text = Path(source).read_text()
    document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    operations = [(op.split(" ", 1)[0].lower(), op.split(" ", 1)[1]) for op in ops]
    Path(target).write_text(json.dumps(prune(document, operations), indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
