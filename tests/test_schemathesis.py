"""Schemathesis over the providers' own published OpenAPI documents, against a live scripted server.

OpenAI's document (createChatCompletion, listModels, retrieveModel) against our ``/v1``; AI/ML API's
``openai/gpt-oss-120b`` document against its ``/chat/completions``; Oxen's hub document (chat completions, models)
against ``/api/ai``; each with the route's own auth header. The documents are cut down to those operations
(``tests/specs/prune.py``). Generation is bounded and seeded: the same cases on every run.

- ``test_<provider>_spec``: schemathesis' own generation (examples, coverage and fuzzing phases; valid and invalid
  data; unsupported methods): never a 5xx (``not_a_server_error``), and every response whose status and media
  type the document declares matches its schema (``response_schema_conformance``).
- ``test_answers_match_the_spec``: valid requests steered onto what the route serves (its model name, one
  choice), so that most of them are answered: each answer, and the same request streamed, matches the document.
- ``test_nullable_fields_take_null``: every request field the document declares nullable takes ``null``.

Not checked: that every request the document allows is accepted (documents allow what gpt-oss cannot do: image
and file parts, several choices), nor status codes a document leaves out (most of their errors are undocumented).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.contract import sse_payloads
from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server

SPECS = Path(__file__).parent / "specs"
MAX_EXAMPLES = 50  # per operation and generation phase
ANSWERS = 30  # steered valid requests per provider (each answered one is sent again, streamed)
SEED = 20260115
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHECKS = [not_a_server_error, response_schema_conformance]

# Documented divergences: where a response of ours may be null although the document allows only a value or no key
# (JSON pointers into the document; the copy under test allows null there). Our OpenAI route is vLLM's server,
# and vLLM writes these as null (the golden files hold its bytes).
VLLM_NULLS = [
    "/components/schemas/ChatCompletionResponseMessage/properties/annotations",
    "/components/schemas/ChatCompletionResponseMessage/properties/function_call",
    "/components/schemas/CreateChatCompletionResponse/properties/system_fingerprint",
    "/components/schemas/CompletionUsage/properties/prompt_tokens_details",
]
# AI/ML API's stream chunk declares a string finish_reason; every chunk before the last carries null (as OpenAI's
# and OpenRouter's streams do, and AI/ML API's own service).
AIMLAPI_NULLS = [
    "/paths/~1chat~1completions/post/responses/200/content/text~1event-stream/schema/properties/choices/items"
    "/properties/finish_reason",
]


def allow_null(document: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for pointer in pointers:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.removeprefix("/").split("/")]
        node = document
        for part in parents:
            node = node[part]
        node[last] = {"anyOf": [node[last], {"type": "null"}]}
    return document


@dataclass(frozen=True)
class Provider:
    name: str
    document: str  # in tests/specs
    base: str  # where the document's paths are on this server
    chat: str  # the document's chat-completion path
    model: str  # the model name the route serves
    divergences: list[str] = field(default_factory=list)

    def load(self) -> Any:
        config = schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
                "phases": {"stateful": {"enabled": False}},
                "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            }
        )
        document = allow_null(json.loads((SPECS / self.document).read_text()), self.divergences)
        return schemathesis.openapi.from_dict(document, config=config)


OPENAI = Provider("openai", "openai-chat-completions.json", "/v1", "/chat/completions", "gpt-oss-120b", VLLM_NULLS)
AIMLAPI = Provider(
    "aimlapi", "aimlapi-chat-completions.json", "", "/chat/completions", "openai/gpt-oss-120b", AIMLAPI_NULLS
)
OXEN = Provider("oxen", "oxen-chat-completions.json", "", "/api/ai/chat/completions", "gpt-oss-120b")
PROVIDERS = [OPENAI, AIMLAPI, OXEN]
SCHEMAS = {p.name: p.load() for p in PROVIDERS}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("schemathesis"), mode="echo")
    with threaded_server(settings) as server:
        yield server


@pytest.fixture(scope="module")
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def call(case: Any, live: LiveServer, client: requests.Session, provider: Provider) -> Any:
    response = case.call(base_url=live.base_url + provider.base, session=client, headers=AUTH, timeout=60)
    if (response.headers.get("content-type") or [""])[0].startswith("text/event-stream"):
        case.validate_response(response, checks=[not_a_server_error])
        check_stream(response.content.decode(), provider, response.status_code, response.stream_cut_short)
    else:
        case.validate_response(response, checks=CHECKS)
    return response


# ---- streams ---------------------------------------------------------------------------------------------------------
# These documents give the chunk's schema as the text/event-stream schema (what each event's ``data`` holds), where
# schemathesis reads an OpenAPI 3.2 event schema ({data, event, id}): the events' JSON is validated here instead.


def as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema (3.1 documents pass through unchanged)."""
    if isinstance(node, list):
        return [as_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def stream_validator(provider: Provider) -> jsonschema.protocols.Validator | None:
    document = allow_null(json.loads((SPECS / provider.document).read_text()), provider.divergences)
    content = document["paths"][provider.chat]["post"]["responses"]["200"]["content"]
    if "text/event-stream" not in content:
        return None
    root = {
        **as_json_schema(content["text/event-stream"]["schema"]),
        "components": as_json_schema(document["components"]),
    }
    return jsonschema.Draft202012Validator(root)


STREAM_VALIDATORS = {p.name: stream_validator(p) for p in PROVIDERS}


def check_stream(raw: str, provider: Provider, status: int, cut_short: bool = False) -> None:
    """Every event validates; the stream ends with ``[DONE]`` unless schemathesis stopped reading it (it reads at most
    ``DEFAULT_MAX_STREAM_EVENTS`` events of a stream: a long echoed prompt makes more)."""
    validator = STREAM_VALIDATORS[provider.name]
    if validator is None or status != 200:
        return
    payloads, blocks = sse_payloads(raw)
    assert blocks and (cut_short or blocks[-1] == "data: [DONE]"), raw[-300:]
    for index, payload in enumerate(payloads):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(payload)]
        assert not errors, (f"event {index}", errors, payload)


# ---- schemathesis' own generation ----------------------------------------------------------------------------------


@SCHEMAS["openai"].parametrize()
def test_openai_spec(case: Any, live: LiveServer, client: requests.Session) -> None:
    call(case, live, client, OPENAI)


@SCHEMAS["aimlapi"].parametrize()
def test_aimlapi_spec(case: Any, live: LiveServer, client: requests.Session) -> None:
    call(case, live, client, AIMLAPI)


@SCHEMAS["oxen"].parametrize()
def test_oxen_spec(case: Any, live: LiveServer, client: requests.Session) -> None:
    call(case, live, client, OXEN)


# ---- valid requests, steered onto what the route serves --------------------------------------------------------------


def steer(body: Any, provider: Provider) -> None:
    """Onto what the route serves: its model name, one choice, and one user message (the generated conversation's
    last user text, if it has one) for the echo engine to answer; the other fields as generated. Conversations the
    documents allow and gpt-oss cannot take (image or file parts, a tool result answering no call) are left to
    ``test_<provider>_spec``."""
    if not isinstance(body, dict):
        return
    body["model"] = provider.model
    if "n" in body:
        body["n"] = 1
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    texts = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    body["messages"] = [{"role": "user", "content": next((t for t in reversed(texts) if isinstance(t, str)), "hi")}]


@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.name for p in PROVIDERS])
def test_answers_match_the_spec(live: LiveServer, client: requests.Session, provider: Provider) -> None:
    operation = SCHEMAS[provider.name][provider.chat]["POST"]
    streams = "text/event-stream" in operation.definition.raw["responses"]["200"].get("content", {})
    outcomes: Counter[str] = Counter()

    @hypothesis.settings(
        max_examples=ANSWERS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def answer(case: Any) -> None:
        steer(case.body, provider)
        if isinstance(case.body, dict):
            case.body["stream"] = False
        response = call(case, live, client, provider)
        outcomes[str(response.status_code)] += 1
        if response.status_code == 200 and streams:
            case.body["stream"] = True
            streamed = call(case, live, client, provider)
            assert streamed.status_code == 200, streamed.text
            assert (streamed.headers.get("content-type") or [""])[0].startswith("text/event-stream")
            outcomes["streamed"] += 1

    answer()
    # enough answers for the check to mean something (the rest are the route's 4xx for what it cannot serve)
    assert outcomes["200"] >= ANSWERS // 3, dict(outcomes)


# ---- nullable request fields -----------------------------------------------------------------------------------------


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _properties(document: dict[str, Any], schema: Any) -> dict[str, Any]:
    schema = _resolve(document, schema)
    out: dict[str, Any] = {}
    for part in schema.get("allOf", []):
        out.update(_properties(document, part))
    out.update({k: _resolve(document, v) for k, v in schema.get("properties", {}).items()})
    return out


def _nullable(document: dict[str, Any], schema: Any) -> bool:
    schema = _resolve(document, schema)
    kind = schema.get("type")
    if schema.get("nullable") is True or kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_nullable(document, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.name for p in PROVIDERS])
def test_nullable_fields_take_null(live: LiveServer, client: requests.Session, provider: Provider) -> None:
    """A client may send ``null`` for what the document declares nullable (OpenAI's SDKs and many clients do):
    read as the field's default, not a 400."""
    document = json.loads((SPECS / provider.document).read_text())
    request = document["paths"][provider.chat]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = _properties(document, request).items()
    nullable = [k for k, v in fields if _nullable(document, v) and k not in ("model", "messages")]
    assert nullable
    refused = {}
    for name in nullable:
        body = {"model": provider.model, "messages": [{"role": "user", "content": "hi"}], name: None}
        r = client.post(live.base_url + provider.base + provider.chat, json=body, headers=AUTH, timeout=60)
        if r.status_code != 200:
            refused[name] = r.text[:200]
    assert not refused, refused
