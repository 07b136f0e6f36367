"""Output constraints beyond response_format (scripted engine): vLLM's ``structured_outputs`` on /v1 and E2E,
llama-server's ``grammar``/``json_schema`` on dat1; the constraint each builds, and the 400s vLLM and llama-server
answer, with the scripted engine refusing what vLLM refuses (it runs vLLM's own checks where vLLM is installed)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import requests

from routes.dat1.constraint import to_ebnf
from server.engine.base import CLIENT_TAG, EngineStep, GenerationRequest
from server.engine.vllm_engine import VllmEngine
from server.errors import InvalidConstraintError, InvalidRequestError
from server.harmony.constraints import client_format
from server.settings import VllmSettings
from server.types import SamplingOptions
from tests.cases.e2e import CASES as E2E_CASES
from tests.helpers import LiveServer

E2E_CASE = E2E_CASES[0]

V1 = "/v1/chat/completions"
DAT1 = "/api/v1/collection/gpt-120-oss/invoke-chat"
MESSAGES = [{"role": "user", "content": "hello"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# llama.cpp's grammars/json.gbnf: its first alternative of `ws` is empty, which xgrammar's EBNF spells ""
JSON_GBNF = r"""root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
# Optional space
ws ::= | " " | "\n" [ \t]{0,20}
"""

# The same invalid inputs against the scripted and the real engine (tests/test_engine_constraints.py): path, extra
# body fields, status, and the error message (vLLM's own for the constraints, llama-server's on dat1).
INVALID_STRUCTURAL_TAG = "Invalid structural tag specification."
INVALID_CLIENT_TAG = "Invalid structured_outputs structural_tag specification."
INVALID_RESPONSE_TAG = "Invalid response_format structural_tag specification."
# vLLM reads a grammar with no ``::=`` rule as Lark
LARK = 'start: answer "!"\nanswer: "yes" | "no"'


def tag_text(fmt: dict[str, Any]) -> str:
    """A client's structural tag with this format, as JSON text."""
    return json.dumps({"type": "structural_tag", "format": fmt})


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("schema-type-123", V1, {"structured_outputs": {"json": {"type": 123}}}, INVALID_STRUCTURAL_TAG),
    (
        "response-format-type-123",
        V1,
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 123}}}},
        INVALID_STRUCTURAL_TAG,
    ),
    ("bad-regex", V1, {"structured_outputs": {"regex": "(unclosed"}}, INVALID_STRUCTURAL_TAG),
    ("bad-grammar", V1, {"structured_outputs": {"grammar": "root ::= undefined_rule"}}, INVALID_STRUCTURAL_TAG),
    ("empty-choice", V1, {"structured_outputs": {"choice": []}}, INVALID_STRUCTURAL_TAG),
    (
        "regex-and-choice",
        V1,
        {"structured_outputs": {"regex": "a", "choice": ["a"]}},
        "You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice').",
    ),
    (
        "json-and-grammar",
        V1,
        {"structured_outputs": {"json": {"type": "object"}, "grammar": 'root ::= "a"'}},
        "You can only use one kind of structured outputs constraint but multiple are specified: {'json': {'type': "
        "'object'}, 'regex': None, 'choice': None, 'grammar': 'root ::= \"a\"', 'json_object': None, "
        "'disable_any_whitespace': False, 'disable_additional_properties': False, 'whitespace_pattern': None, "
        "'structural_tag': None, '_backend': None, '_backend_was_auto': False}",
    ),
    (
        "none",
        V1,
        {"structured_outputs": {"disable_any_whitespace": True}},
        "You must use one kind of structured outputs constraint but none are specified: {'json': None, 'regex': "
        "None, 'choice': None, 'grammar': None, 'json_object': None, 'disable_any_whitespace': True, "
        "'disable_additional_properties': False, 'whitespace_pattern': None, 'structural_tag': None, "
        "'_backend': None, '_backend_was_auto': False}",
    ),
    (
        "regex-and-response-format",
        V1,
        {"structured_outputs": {"regex": "a+"}, "response_format": {"type": "json_object"}},
        "You can only use one kind of structured outputs constraint but multiple are specified: {'json': None, "
        "'regex': 'a+', 'choice': None, 'grammar': None, 'json_object': True, 'disable_any_whitespace': False, "
        "'disable_additional_properties': False, 'whitespace_pattern': None, 'structural_tag': None, "
        "'_backend': None, '_backend_was_auto': False}",
    ),
    (
        "named-tool",
        V1,
        {
            "structured_outputs": {"regex": "a"},
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
        "You can only either use constraints for structured outputs or tools, not both.",
    ),
    (
        "json-object-false",
        V1,
        {"structured_outputs": {"json_object": False}},
        "structured_outputs.json_object must be True if set; omit structured_outputs to disable structured outputs",
    ),
    (
        "json-text",
        V1,
        {"structured_outputs": {"json": "{nope"}},
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    ("bad-raw-structural-tag", V1, {"structured_outputs": {"structural_tag": "{}"}}, INVALID_CLIENT_TAG),
    ("structural-tag-not-json", V1, {"structured_outputs": {"structural_tag": "nope"}}, INVALID_CLIENT_TAG),
    (
        "structural-tag-bad-format",
        V1,
        {"structured_outputs": {"structural_tag": tag_text({"type": "x"})}},
        INVALID_CLIENT_TAG,
    ),
    (
        "structural-tag-bad-regex",
        V1,
        {"structured_outputs": {"structural_tag": tag_text({"type": "regex", "pattern": "(unclosed"})}},
        INVALID_CLIENT_TAG,
    ),
    (  # xgrammar's grammar format reads EBNF only: vLLM converts a Lark grammar, not one inside a client's tag
        "structural-tag-lark",
        V1,
        {"structured_outputs": {"structural_tag": tag_text({"type": "grammar", "grammar": LARK})}},
        INVALID_CLIENT_TAG,
    ),
    ("response-format-tag-empty", V1, {"response_format": {"type": "structural_tag"}}, INVALID_RESPONSE_TAG),
    (
        "response-format-tag-bad-format",
        V1,
        {"response_format": {"type": "structural_tag", "format": {"type": "regex", "pattern": "(unclosed"}}},
        INVALID_RESPONSE_TAG,
    ),
    (
        "response-format-legacy-tag-no-schema",
        V1,
        {"response_format": {"type": "structural_tag", "structures": [{"begin": "<a>"}], "triggers": ["<a"]}},
        INVALID_RESPONSE_TAG,
    ),
    (
        "response-format-tag-and-regex",
        V1,
        {
            "structured_outputs": {"regex": "a+"},
            "response_format": {"type": "structural_tag", "format": {"type": "const_string", "value": "a"}},
        },
        "You can only use one kind of structured outputs constraint but multiple are specified: {'json': None, "
        "'regex': 'a+', 'choice': None, 'grammar': None, 'json_object': None, 'disable_any_whitespace': False, "
        "'disable_additional_properties': False, 'whitespace_pattern': None, 'structural_tag': '{\"type\": "
        '"structural_tag", "format": {"type": "const_string", "value": "a"}}\', '
        "'_backend': None, '_backend_was_auto': False}",
    ),
    ("bad-lark", V1, {"structured_outputs": {"grammar": "start: undefined_rule"}}, "Invalid grammar specification."),
    ("lark-no-start", V1, {"structured_outputs": {"grammar": 'answer: "a"'}}, "Invalid grammar specification."),
    ("dat1-lark-grammar", DAT1, {"grammar": 'start: "a"'}, "Failed to parse grammar"),
    ("temperature", V1, {"temperature": -1}, "Input should be greater than or equal to 0: temperature"),
    ("dat1-bad-grammar", DAT1, {"grammar": "root ::= undefined_rule"}, "Failed to parse grammar"),
    ("dat1-token-grammar", DAT1, {"grammar": 'root ::= <[1000]> "a"'}, "Failed to parse grammar"),
    (
        "dat1-grammar-and-tools",
        DAT1,
        {"grammar": 'root ::= "a"', "tools": [TOOL]},
        "Cannot use custom grammar constraints with tools.",
    ),
    ("dat1-schema-type-123", DAT1, {"json_schema": {"type": 123}}, INVALID_STRUCTURAL_TAG),
]


def post(server: LiveServer, path: str, extra: dict[str, Any]) -> requests.Response:
    headers = {"X-API-Key": server.api_key} if path == DAT1 else {"Authorization": f"Bearer {server.api_key}"}
    body = {"messages": MESSAGES, "max_tokens": 8, **extra}
    if path == V1:
        body["model"] = "gpt-oss-120b"
    return requests.post(server.base_url + path, json=body, headers=headers, timeout=60)


def error_message(r: requests.Response) -> str:
    return str(r.json()["error"]["message"])


@pytest.fixture
def generations(scripted_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GenerationRequest]]:
    """The engine requests the scripted engine receives."""
    engine = scripted_server.app.state.ctx.engine
    seen: list[GenerationRequest] = []
    original = engine.generate

    def recording(request: GenerationRequest) -> AsyncIterator[EngineStep]:
        seen.append(request)
        return original(request)  # type: ignore[no-any-return]

    monkeypatch.setattr(engine, "generate", recording)
    yield seen


def answer_format(generation: GenerationRequest) -> dict[str, Any]:
    """The format the final answer must match, out of the structural tag the request built."""
    assert generation.constraint is not None
    tag = json.loads(str(generation.constraint["structural_tag"]))
    analysis, answer = tag["format"]["elements"]
    assert analysis["type"] == "optional"  # the reasoning first, as on the JSON path
    header, final, message, content = answer["elements"]
    assert (header["type"], final["value"], message["type"]) == ("token", "final", "token")
    return content  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"structured_outputs": {"regex": "[ab]{2}"}}, {"type": "regex", "pattern": "[ab]{2}"}),
        (
            {"structured_outputs": {"choice": ["yes", "no"]}},
            {"type": "or", "elements": [{"type": "const_string", "value": v} for v in ("yes", "no")]},
        ),
        (
            {"structured_outputs": {"grammar": 'root ::= "a" | "b"'}},
            {"type": "grammar", "grammar": 'root ::= "a" | "b"'},
        ),
        ({"structured_outputs": {"grammar": LARK}}, {"type": "grammar", "grammar": LARK}),  # the engine converts it
        (
            {"structured_outputs": {"json": '{"type":"integer"}'}},
            {"type": "json_schema", "json_schema": {"type": "integer"}, "max_whitespace_cnt": 1},
        ),
        (
            {"structured_outputs": {"json_object": True, "whitespace_pattern": " ?"}},
            {"type": "json_schema", "json_schema": {"type": "object"}, "max_whitespace_cnt": 1},
        ),
        (  # response_format overrides structured_outputs' own key
            {
                "structured_outputs": {"json": {"type": "string"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer"}}},
            },
            {"type": "json_schema", "json_schema": {"type": "integer"}, "max_whitespace_cnt": 1},
        ),
    ],
    ids=["regex", "choice", "grammar", "lark", "json-text", "json-object", "response-format-wins"],
)
def test_structured_outputs_build_the_constraint(
    scripted_server: LiveServer, generations: list[GenerationRequest], extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    r = post(scripted_server, V1, extra)
    assert r.status_code == 200, r.text
    (generation,) = generations
    assert answer_format(generation) == expected


def test_auto_tools_stay_callable_beside_a_regex(
    scripted_server: LiveServer, generations: list[GenerationRequest]
) -> None:
    r = post(scripted_server, V1, {"structured_outputs": {"regex": "x+"}, "tools": [TOOL]})
    assert r.status_code == 200, r.text
    tag = json.loads(str(generations[0].constraint["structural_tag"]))  # type: ignore[index]
    call, final = tag["format"]["elements"][1]["elements"]
    assert call["elements"][1]["value"] == "commentary to=functions.f "
    assert final["elements"][3] == {"type": "regex", "pattern": "x+"}


HI = {"type": "const_string", "value": "hi"}
LEGACY = {"structures": [{"begin": "<a>", "schema": {"type": "object"}, "end": "</a>"}], "triggers": ["<a"]}
TRIGGERED = {
    "type": "triggered_tags",
    "triggers": ["<a"],
    "tags": [
        {
            "type": "tag",
            "begin": "<a>",
            "content": {"type": "json_schema", "json_schema": {"type": "object"}},
            "end": "</a>",
        }
    ],
}


@pytest.mark.parametrize(
    ("extra", "param", "expected"),
    [
        ({"structured_outputs": {"structural_tag": tag_text(HI)}}, "structured_outputs", HI),
        ({"response_format": {"type": "structural_tag", "format": HI}}, "response_format", HI),
        (
            {"structured_outputs": {"structural_tag": json.dumps({"type": "structural_tag", **LEGACY})}},
            "structured_outputs",
            TRIGGERED,
        ),
        ({"response_format": {"type": "structural_tag", **LEGACY}}, "response_format", TRIGGERED),
        (  # response_format's tag overrides structured_outputs' own
            {
                "structured_outputs": {"structural_tag": tag_text({"type": "const_string", "value": "no"})},
                "response_format": {"type": "structural_tag", "format": HI},
            },
            "response_format",
            HI,
        ),
    ],
    ids=["structured-outputs", "response-format", "legacy", "response-format-legacy", "response-format-wins"],
)
def test_client_structural_tag_holds_the_final_answer(
    scripted_server: LiveServer,
    generations: list[GenerationRequest],
    extra: dict[str, Any],
    param: str,
    expected: dict[str, Any],
) -> None:
    """As vLLM's harmony path: the client's tag is the final answer's format, after optional reasoning, and travels
    alone too, for the engine to check as vLLM checks the client's field."""
    r = post(scripted_server, V1, extra)
    assert r.status_code == 200, r.text
    (generation,) = generations
    assert answer_format(generation) == expected
    client = generation.constraint[CLIENT_TAG]  # type: ignore[index]
    assert client["param"] == param  # type: ignore[index]
    assert client_format(client["tag"]) == expected  # type: ignore[index]


def test_client_structural_tag_beside_auto_tools(
    scripted_server: LiveServer, generations: list[GenerationRequest]
) -> None:
    r = post(scripted_server, V1, {"structured_outputs": {"structural_tag": tag_text(HI)}, "tools": [TOOL]})
    assert r.status_code == 200, r.text
    tag = json.loads(str(generations[0].constraint["structural_tag"]))  # type: ignore[index]
    call, final = tag["format"]["elements"][1]["elements"]
    assert call["elements"][1]["value"] == "commentary to=functions.f "
    assert final["elements"][3] == HI


def test_lark_grammar_becomes_ebnf_in_the_engine() -> None:
    """vLLM's harmony path converts a grammar that looks like Lark to xgrammar's EBNF before it frames it; EBNF and
    the grammars inside a client's own tag are left as they are."""
    pytest.importorskip("vllm")
    from server.engine.vllm_engine import structured_outputs

    def framed(grammar: str) -> dict[str, object]:
        return {
            "structural_tag": json.dumps({"type": "structural_tag", "format": {"type": "grammar", "grammar": grammar}})
        }

    converted = json.loads(str(structured_outputs(framed(LARK))["structural_tag"]))["format"]["grammar"]
    assert "::=" in converted and '"yes"' in converted
    ebnf = framed('root ::= "a"')
    assert structured_outputs(ebnf) == ebnf
    with pytest.raises(InvalidConstraintError, match=r"Invalid grammar specification\."):
        structured_outputs(framed("start: undefined_rule"))
    client = {**ebnf, CLIENT_TAG: {"param": "structured_outputs", "tag": "{}"}}
    assert structured_outputs(client) == ebnf


def test_removed_guided_fields_are_ignored(scripted_server: LiveServer, generations: list[GenerationRequest]) -> None:
    r = post(scripted_server, V1, {"guided_regex": "a", "guided_choice": ["a"]})
    assert r.status_code == 200, r.text
    assert generations[0].constraint is None  # as vLLM 0.32: removed, output NOT constrained


def test_dat1_grammar_and_json_schema(scripted_server: LiveServer, generations: list[GenerationRequest]) -> None:
    assert post(scripted_server, DAT1, {"grammar": JSON_GBNF}).status_code == 200
    assert post(scripted_server, DAT1, {"json_schema": {"type": "integer"}}).status_code == 200
    assert post(scripted_server, DAT1, {"grammar": ""}).status_code == 200  # llama-server: an empty grammar is none
    grammar, schema, empty = generations
    assert answer_format(grammar) == {"type": "grammar", "grammar": to_ebnf(JSON_GBNF)}
    assert 'ws ::= ""| " "' in to_ebnf(JSON_GBNF)
    assert answer_format(schema)["json_schema"] == {"type": "integer"}
    assert empty.constraint is None


@pytest.mark.parametrize(("name", "path", "extra", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_invalid_constraints_are_400(
    scripted_server: LiveServer, name: str, path: str, extra: dict[str, Any], message: str
) -> None:
    r = post(scripted_server, path, extra)
    assert r.status_code == 400, r.text
    assert error_message(r) == message


def test_e2e_reads_structured_outputs(scripted_server: LiveServer, generations: list[GenerationRequest]) -> None:
    case = E2E_CASE
    body = case.body(MESSAGES, False, {"structured_outputs": {"choice": ["up", "down"]}})
    r = requests.post(
        scripted_server.base_url + case.chat_path,
        json=body,
        headers=case.auth_headers(scripted_server.api_key),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert [e["value"] for e in answer_format(generations[0])["elements"]] == ["up", "down"]


def test_llama_cpp_grammars_compile_in_xgrammar() -> None:
    xgrammar = pytest.importorskip("xgrammar")
    chess = (
        'root ::= "1. " move " " move "\\n" ([1-9] [0-9]? ". " move " " move "\\n")+\n'
        "move ::= (pawn | nonpawn | castle) [+#]?\npawn ::= [a-h] [1-8]\n"
        'nonpawn ::= [NBKQR] [a-h]? [1-8]? "x"? [a-h] [1-8]\ncastle ::= "O-O" "-O"?'
    )
    for gbnf in (
        JSON_GBNF,
        chess,
        'root ::= ( | "a" ) . "b" # any one character between',
        "root ::= [\\u0041-\\u005A]{2,3}",
    ):
        xgrammar.Grammar.from_ebnf(to_ebnf(gbnf))
    with pytest.raises(RuntimeError):
        xgrammar.Grammar.from_ebnf(JSON_GBNF)  # without the rewrite: GBNF's empty alternative


def test_scripted_engine_refuses_what_vllm_refuses(scripted_server: LiveServer) -> None:
    pytest.importorskip("vllm")
    scripted = scripted_server.app.state.ctx.engine
    real = VllmEngine(VllmSettings(), "unused", "gpt-oss-120b")  # not started: its validation needs no model
    for sampling in (SamplingOptions(top_k=-5), SamplingOptions(presence_penalty=2.5), SamplingOptions(min_p=1.5)):
        request = GenerationRequest("r", [1, 2], sampling, 8, (200002,))
        with pytest.raises(InvalidRequestError) as by_vllm:
            real.validate(request)
        with pytest.raises(InvalidRequestError) as by_script:
            scripted.validate(request)
        assert (by_script.value.message, by_script.value.param) == (by_vllm.value.message, by_vllm.value.param)


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ({"structured_outputs": {"choice": ["north", "south"]}}, "north|south"),
        ({"structured_outputs": {"choice": ["hello", "bye"]}}, "hello"),  # the script's own answer where it fits
        ({"structured_outputs": {"regex": "[a-c]{2}-[0-9]{3}"}}, "[a-c]{2}-[0-9]{3}"),
        ({"structured_outputs": {"grammar": LARK}}, "(yes|no)!"),
        ({"structured_outputs": {"grammar": 'root ::= "<" [0-9]+ ">"'}}, "<[0-9]+>"),
        ({"structured_outputs": {"structural_tag": tag_text(HI)}}, "hi"),
        (
            {
                "response_format": {
                    "type": "structural_tag",
                    "format": {"type": "tag", "begin": "<a>", "content": HI, "end": "</a>"},
                }
            },
            "<a>hi</a>",
        ),
        ({"structured_outputs": {"json": {"type": "integer", "maximum": 9}}}, "-?[0-9]+"),
    ],
    ids=["choice", "choice-of-the-script", "regex", "lark", "ebnf", "structural-tag", "response-format-tag", "json"],
)
def test_scripted_answers_hold_the_constraint(scripted_server: LiveServer, extra: dict[str, Any], pattern: str) -> None:
    """The scripted engine (its echo of "hello") answers as far as the constraint lets it, then as xgrammar allows."""
    pytest.importorskip("xgrammar")
    r = post(scripted_server, V1, {**extra, "max_tokens": 64})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    assert re.fullmatch(pattern, choice["message"]["content"]), choice
