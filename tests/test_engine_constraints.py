"""Constraints on the real vLLM engine (tiny random-weight checkpoint): a choice, a regex, a Lark grammar, dat1's GBNF
grammar and a client's structural tag (``structured_outputs`` or ``response_format``) hold the answer (greedy decoding,
bounded grammars: the random model fills free text until the budget runs out), and the invalid inputs of
tests/test_constraints.py get the same status and body from the scripted and the real engine's server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import LiveServer
from tests.test_constraints import BAD_REQUESTS, DAT1, LARK, V1, post, tag_text

pytestmark = pytest.mark.engine


def answer(server: LiveServer, path: str, extra: dict[str, Any]) -> str:
    r = post(server, path, {"temperature": 0, **extra, "max_tokens": 200})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    return str(choice["message"]["content"])


def test_choice_answer_is_one_of_the_choices(vllm_server: LiveServer) -> None:
    choices = ["north", "south", "east", "west"]
    assert answer(vllm_server, V1, {"structured_outputs": {"choice": choices}}) in choices


def test_regex_answer_matches(vllm_server: LiveServer) -> None:
    pattern = "[a-c]{2}-[0-9]{3}"
    assert re.fullmatch(pattern, answer(vllm_server, V1, {"structured_outputs": {"regex": pattern}}))


def test_dat1_grammar_constrains_the_answer(vllm_server: LiveServer) -> None:
    gbnf = 'root ::= ("yes" | "no") ws "!"\nws ::= | " "'  # GBNF's empty alternative, rewritten for xgrammar
    assert re.fullmatch("(yes|no) ?!", answer(vllm_server, DAT1, {"grammar": gbnf}))


def test_lark_grammar_answer_matches(vllm_server: LiveServer) -> None:
    assert re.fullmatch("(yes|no)!", answer(vllm_server, V1, {"structured_outputs": {"grammar": LARK}}))


# the final answer inside tags: a two-digit number between <n> and </n>, then one of two words
TAG_FORMAT = {
    "type": "sequence",
    "elements": [
        {"type": "tag", "begin": "<n>", "content": {"type": "regex", "pattern": "[0-9]{2}"}, "end": "</n>"},
        {
            "type": "or",
            "elements": [{"type": "const_string", "value": " up"}, {"type": "const_string", "value": " down"}],
        },
    ],
}
TAG_ANSWER = "<n>[0-9]{2}</n> (up|down)"


def test_structural_tag_answer_holds_the_tag(vllm_server: LiveServer) -> None:
    extra = {"structured_outputs": {"structural_tag": tag_text(TAG_FORMAT)}}
    assert re.fullmatch(TAG_ANSWER, answer(vllm_server, V1, extra))


def test_response_format_structural_tag_holds_the_answer(vllm_server: LiveServer) -> None:
    extra = {"response_format": {"type": "structural_tag", "format": TAG_FORMAT}}
    assert re.fullmatch(TAG_ANSWER, answer(vllm_server, V1, extra))


@pytest.mark.parametrize(("name", "path", "extra", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_scripted_and_real_engine_refuse_alike(
    scripted_server: LiveServer, vllm_server: LiveServer, name: str, path: str, extra: dict[str, Any], message: str
) -> None:
    real, scripted = post(vllm_server, path, extra), post(scripted_server, path, extra)
    assert real.status_code == scripted.status_code == 400, (real.text, scripted.text)
    assert real.json() == scripted.json()
    assert real.json()["error"]["message"] == message
