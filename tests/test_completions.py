"""``POST /v1/completions`` (vLLM's legacy completions) with the official ``openai`` SDK and raw HTTP against a live
scripted server: the raw prompt (special-token text read as control tokens), plain-text output, echo, the legacy
logprobs format, stop, prompt_logprobs (also on chat), the refusals, E2E's prefix, and bodies and stream chunks valid
against OpenAI's published ``CreateCompletionResponse``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import requests

from routes.shared.ids import token_text
from server.harmony.encoding import encode_prompt, get_encoding
from tests.contract import sse_payloads
from tests.helpers import LiveServer, scripted_settings, threaded_server

MODEL = "gpt-oss-120b"
# a harmony prompt the caller wrote itself; the scripted engine answers the rule for "reason"
PROMPT = "<|start|>user<|message|>reason<|end|><|start|>assistant"
SCRIPT = (
    "<|channel|>analysis<|message|>User says hi. Reply politely.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"
)
# the output as vLLM's detokenizer gives it (skip_special_tokens): control tokens leave no text
TEXT = "analysisUser says hi. Reply politely.assistantfinalHello! How can I help?"
E2E_BASE = "/project/p-5915/genai/gpt_oss_120b/v1"

SPEC = json.loads((Path(__file__).parent / "specs" / "openai-completions.json").read_text())


def validator(chunk: bool) -> jsonschema.protocols.Validator:
    """``CreateCompletionResponse`` with vLLM's nulls allowed: ``system_fingerprint`` and
    ``usage.prompt_tokens_details`` (as on the chat route), the logprob of an echoed prompt's first token (nothing
    precedes it; OpenAI's own API wrote null there too), and in stream chunks ``finish_reason`` until the last."""
    schemas = json.loads(json.dumps(SPEC["components"]["schemas"]))
    choice = schemas["CreateCompletionResponse"]["properties"]["choices"]["items"]["properties"]
    logprobs = choice["logprobs"]["anyOf"][0]["properties"]
    nullable = [
        (schemas["CreateCompletionResponse"]["properties"], "system_fingerprint"),
        (schemas["CompletionUsage"]["properties"], "prompt_tokens_details"),
        (logprobs["token_logprobs"], "items"),
        (logprobs["top_logprobs"], "items"),
    ]
    if chunk:
        nullable.append((choice, "finish_reason"))
    for parent, key in nullable:
        parent[key] = {"anyOf": [parent[key], {"type": "null"}]}
    root = {"$ref": "#/components/schemas/CreateCompletionResponse", "components": {"schemas": schemas}}
    return jsonschema.Draft202012Validator(root)


BODY, CHUNK = validator(chunk=False), validator(chunk=True)


def post(live: LiveServer, body: dict[str, Any], path: str = "/v1/completions") -> requests.Response:
    headers = {"Authorization": f"Bearer {live.api_key}"}
    return requests.post(live.base_url + path, json={"model": MODEL, **body}, headers=headers, timeout=60)


def stream_payloads(r: requests.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    payloads, blocks = sse_payloads(r.text)
    assert blocks[-1] == "data: [DONE]"
    for payload in payloads:
        CHUNK.validate(payload)
    return payloads


@pytest.fixture
def client(scripted_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url + "/v1", api_key=scripted_server.api_key, max_retries=0)


def test_completion_of_a_raw_prompt(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == MODEL
    (choice,) = r.choices
    assert choice.text == TEXT and choice.index == 0 and choice.logprobs is None
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] is None
    # the special-token text became control tokens (else the scripted engine would not have found the user message)
    assert r.usage is not None and r.usage.prompt_tokens == len(encode_prompt(PROMPT)) == 7
    assert r.usage.completion_tokens == len(get_encoding().encode(SCRIPT, allowed_special="all"))


def test_body_bytes_validate_against_openais_schema(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"prompt": PROMPT, "max_tokens": 200, "logprobs": 1, "echo": True})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    BODY.validate(body)
    assert list(body) == [
        "id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage",
        "kv_transfer_params",
    ]  # fmt: skip
    assert list(body["choices"][0]) == [
        "index", "text", "logprobs", "finish_reason", "stop_reason", "token_ids", "prompt_logprobs",
        "prompt_token_ids",
    ]  # fmt: skip
    assert r.content.startswith(b'{"id":"cmpl-') and b", " not in r.content[:60]  # compact JSON


def test_max_tokens_defaults_to_16(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 16


def test_stream_folds_to_the_same_answer(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=200, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    full = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200)
    assert full.usage is not None and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    raw = stream_payloads(post(scripted_server, {"prompt": PROMPT, "max_tokens": 200, "stream": True}))
    assert all(p["object"] == "text_completion" and p["id"] == raw[0]["id"] for p in raw)
    assert list(raw[0]["choices"][0]) == [
        "index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_token_ids", "token_ids",
    ]  # fmt: skip
    assert "usage" not in raw[-1]  # no usage chunk unless asked


def test_echo_puts_the_prompt_first(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, echo=True)
    assert r.choices[0].text == PROMPT + TEXT
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, echo=True, stream=True)
    texts = [c.choices[0].text for c in stream]
    assert texts[0].startswith(PROMPT) and "".join(texts) == PROMPT + TEXT


def test_token_id_prompt_is_echoed_with_special_tokens_spelled_out(client: openai.OpenAI) -> None:
    ids = encode_prompt(PROMPT)
    for prompt in (ids, [ids]):
        r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=200, echo=True)
        assert r.choices[0].text == PROMPT + TEXT
    r = client.completions.create(model=MODEL, prompt=[PROMPT], max_tokens=200)  # a batch of one
    assert r.choices[0].text == TEXT


def test_echo_with_max_tokens_zero_answers_the_prompt(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=0, echo=True, logprobs=0)
    choice = r.choices[0]
    assert choice.text == PROMPT and choice.finish_reason == "length"
    assert choice.logprobs is not None and choice.logprobs.tokens == [token_text(t) for t in encode_prompt(PROMPT)]


def test_legacy_logprobs(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    script = get_encoding().encode(SCRIPT, allowed_special="all")
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, logprobs=2)
    logprobs = r.choices[0].logprobs
    assert logprobs is not None
    tokens = [token_text(t) for t in script]  # every output token, <|return|> included, as vLLM lists them
    assert logprobs.tokens == tokens
    assert logprobs.token_logprobs == [0.0] * len(script)
    tops = logprobs.top_logprobs or []
    assert [next(iter(top.items())) for top in tops] == [(t, 0.0) for t in tokens]  # the chosen token first
    assert all(list(top.values()) == [0.0, -10.0] for top in tops)  # then the scripted sampler's alternative
    offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    assert logprobs.text_offset == offsets
    chunks = stream_payloads(
        post(scripted_server, {"prompt": PROMPT, "max_tokens": 200, "logprobs": 2, "stream": True})
    )
    streamed = [c["choices"][0]["logprobs"] for c in chunks]
    assert [t for lp in streamed for t in lp["tokens"]] == tokens
    assert [o for lp in streamed for o in lp["text_offset"]] == offsets  # offsets run on across chunks
    # the <|return|> that ended the turn has no text: it comes with the finish chunk, as vLLM sends it
    assert chunks[-1]["choices"][0]["text"] == "" and streamed[-1]["tokens"] == ["<|return|>"]


def test_echoed_logprobs_start_with_the_prompt(client: openai.OpenAI) -> None:
    prompt = encode_prompt(PROMPT)
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, logprobs=1, echo=True)
    logprobs = r.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens[: len(prompt)] == [token_text(t) for t in prompt]
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None  # nothing precedes the first
    assert logprobs.token_logprobs[1 : len(prompt)] == [0.0] * (len(prompt) - 1)


def test_stop_strings_cut_the_text(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, stop=["Hello", "zzz"])
    choice = r.choices[0]
    assert choice.text == TEXT[: TEXT.index("Hello")]
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] == "Hello"
    stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=200, stop="Hello", stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    assert chunks[-1].choices[0].model_extra["stop_reason"] == "Hello"


def test_prompt_logprobs_on_completions_and_chat(scripted_server: LiveServer) -> None:
    prompt = encode_prompt(PROMPT)
    body = post(scripted_server, {"prompt": PROMPT, "max_tokens": 5, "prompt_logprobs": 1}).json()
    entries = body["choices"][0]["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(prompt)
    for token, entry in zip(prompt[1:], entries[1:], strict=True):
        assert entry == {str(token): {"logprob": 0.0, "rank": 1, "decoded_token": token_text(token)}}
    assert body["choices"][0]["logprobs"] is None  # prompt logprobs ask for no output logprobs
    chat = post(
        scripted_server, {"messages": [{"role": "user", "content": "hi"}], "prompt_logprobs": 0}, "/v1/chat/completions"
    ).json()
    assert len(chat["prompt_logprobs"]) == chat["usage"]["prompt_tokens"] and chat["prompt_logprobs"][0] is None
    assert all(len(entry) == 1 for entry in chat["prompt_logprobs"][1:])
    plain = post(scripted_server, {"messages": [{"role": "user", "content": "hi"}]}, "/v1/chat/completions").json()
    assert plain["prompt_logprobs"] is None


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"prompt": PROMPT, "suffix": "!"}, "suffix", "suffix is only supported for models with FIM"),
        ({"prompt": [1, 2], "suffix": "!"}, "suffix", "suffix requires text prompt input"),
        ({"prompt": PROMPT, "suffix": "!", "echo": True}, "suffix", "Echo is unsupported with suffix."),
        ({"prompt": [PROMPT] * 5, "n": 13}, "prompt", "at most 64 generations (prompts x n), got 5 prompts x n=13"),
        ({"prompt": PROMPT, "n": 17}, "n", "n must be at most 16, got 17."),
        ({"prompt": PROMPT, "n": 2, "temperature": 0}, None, "n must be 1 when using greedy sampling, got 2."),
        ({"prompt": ""}, "prompt", "Either prompt or prompt_embeds must be provided"),
        ({}, "prompt", "Either prompt or prompt_embeds must be provided"),
        ({"prompt": []}, "prompt", "The prompt is empty."),
        ({"prompt": [5, 201088]}, "prompt", "Token id 201088 is out of vocabulary"),
        ({"prompt": PROMPT, "logprobs": 21}, "logprobs", "Requested sample logprobs of 21"),
        ({"prompt": PROMPT, "logprobs": -2}, "logprobs", "`logprobs` must be a positive value or -1."),
        ({"prompt": PROMPT, "prompt_logprobs": -1}, "prompt_logprobs", "Requested prompt logprobs of 201088"),
        ({"prompt": PROMPT, "prompt_logprobs": 1, "stream": True}, "prompt_logprobs", "not available when"),
        ({"prompt": PROMPT, "stream_options": {"include_usage": True}}, "stream_options", "only be defined"),
        ({"prompt": PROMPT, "max_tokens": 0}, "max_tokens", "max_tokens must be at least 1, got 0."),
        ({"prompt": PROMPT, "stop": ["x"] * 17}, "stop", "At most 16 stop sequences"),
        ({"prompt": PROMPT, "temperature": 3}, "temperature", "less than or equal to 2"),
    ],
)
def test_refusals_in_openais_envelope(
    scripted_server: LiveServer, body: dict[str, Any], param: str | None, message: str
) -> None:
    r = post(scripted_server, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert list(error) == ["message", "type", "param", "code"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and message in error["message"]


def test_chat_refuses_streamed_prompt_logprobs(scripted_server: LiveServer) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "prompt_logprobs": 1, "stream": True}
    r = post(scripted_server, body, "/v1/chat/completions")
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_logprobs"


def test_model_auth_and_prefix(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"prompt": PROMPT, "model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = requests.post(scripted_server.base_url + "/v1/completions", json={"prompt": PROMPT}, timeout=30)
    assert r.status_code == 401 and "error" in r.json()
    r = post(scripted_server, {"prompt": PROMPT, "max_tokens": 200}, "/openai/v1/completions")
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == TEXT


def test_e2e_prefix(scripted_server: LiveServer) -> None:
    body = {"prompt": PROMPT, "max_tokens": 200, "model": "gpt_oss_120b"}
    r = post(scripted_server, body, E2E_BASE + "/completions")
    assert r.status_code == 200, r.text
    answer = r.json()
    BODY.validate(answer)
    uuid.UUID(answer["id"].removeprefix("cmpl-"))  # the gateway's dashed request id
    assert "-" in answer["id"].removeprefix("cmpl-") and answer["model"] == "gpt_oss_120b"
    assert answer["choices"][0]["text"] == TEXT and "token_ids" not in answer["choices"][0]  # that vLLM era
    chunks = stream_payloads(post(scripted_server, {**body, "stream": True}, E2E_BASE + "/completions"))
    assert "".join(c["choices"][0]["text"] for c in chunks) == TEXT
    r = post(scripted_server, {"prompt": PROMPT, "model": "gpt_oss_120b", "suffix": "x"}, E2E_BASE + "/completions")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400 and r.json()["error"]["type"] == "BadRequestError"
    r = post(scripted_server, {"prompt": PROMPT, "model": "gpt_oss_120b", "n": 0}, E2E_BASE + "/completions")
    assert r.status_code == 400 and r.json()["error"]["type"] == "Bad Request"


def test_the_servers_prompt_limits_apply(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_prompt_chars": 100, "max_word_chars": 20})}
    )
    with threaded_server(settings) as live:
        r = post(live, {"prompt": "word " * 30})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt" and "limit is 100" in r.text
        r = post(live, {"prompt": "a" * 50})
        assert r.status_code == 400 and "run of more than 20" in r.json()["error"]["message"]
        r = post(live, {"prompt": list(range(500)), "max_tokens": 3})  # token ids: counted against the context only
        assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 500
