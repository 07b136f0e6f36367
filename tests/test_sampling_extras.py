"""vLLM's extra request fields on /v1 and E2E (chat and completions) are honoured, ignored where vLLM ignores them for
gpt-oss, or refused with vLLM's (or this server's) message: none is silently dropped.

``stop_token_ids`` end the answer at that token (``stop_reason`` is the token id, as vLLM reports it),
``include_stop_str_in_output`` keeps the stop string, ``bad_words`` and ``allowed_token_ids`` go to the engine's
sampling parameters, ``include_reasoning: false`` drops the reasoning; stop strings wait for ``min_tokens``; the
engine options (``priority``, ``cache_salt``, ``session_id``, ``vllm_xargs``, ``kv_transfer_params``) reach the
engine; ``request_id`` names the answer; ``return_tokens_as_token_ids`` writes ``token_id:N``; a raw prompt honours
``truncate_prompt_tokens``, ``skip_special_tokens`` and its constraint (``response_format``, ``structured_outputs``).
See ``routes/shared/vllm_sampling.py`` for each field's fate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.harmony.encoding import get_encoding
from tests.helpers import API_KEY, LiveServer, WatchedEngine, scripted_settings, threaded_server

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
PATHS = ("/v1/chat/completions", "/project/p-1/genai/gpt_oss_120b/v1/chat/completions")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(Path(tmp_path_factory.mktemp("extras")), prefix_cache=True)
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


COMPLETIONS = tuple(p.replace("/chat/completions", "/completions") for p in PATHS)
# a raw prompt the scripted engine answers with the last user message
RAW_PROMPT = "<|start|>user<|message|>alpha beta gamma<|end|><|start|>assistant"


def model_of(path: str) -> str:
    return "gpt_oss_120b" if path.startswith("/project") else "gpt-oss-120b"


def post(live: LiveServer, path: str, body: dict) -> httpx.Response:
    return httpx.post(live.base_url + path, json={"model": model_of(path), **body}, headers=HEADERS, timeout=30)


def chat(live: LiveServer, path: str, **fields: object) -> dict:
    r = post(live, path, {"messages": [{"role": "user", "content": "alpha beta gamma"}], **fields})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def complete(live: LiveServer, path: str, **fields: object) -> dict:
    r = post(live, path, {"prompt": RAW_PROMPT, "max_tokens": 50, **fields})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def refused(live: LiveServer, path: str, body: dict) -> dict:
    r = post(live, path, body)
    assert r.status_code == 400, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def chunks_of(r: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]


def tokens(text: str) -> list[int]:
    return list(get_encoding().encode(text, disallowed_special=()))


@pytest.mark.parametrize("path", PATHS)
def test_stop_token_ids_end_the_answer(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    (beta,) = get_encoding().encode(" beta", disallowed_special=())
    choice = chat(live, path, stop_token_ids=[beta])["choices"][0]
    # the answer ends at the token, which vLLM's harmony parser (fed every output token) keeps in the text
    assert choice["message"]["content"] == "alpha beta"
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", beta)


@pytest.mark.parametrize("path", PATHS)
def test_include_stop_str_in_output_keeps_the_stop_string(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    kept = chat(live, path, stop=[" gamma"], include_stop_str_in_output=True)["choices"][0]
    cut = chat(live, path, stop=[" gamma"])["choices"][0]
    assert kept["message"]["content"] == "alpha beta gamma" and cut["message"]["content"] == "alpha beta"
    assert kept["stop_reason"] == cut["stop_reason"] == " gamma"


def test_bad_words_and_allowed_token_ids_reach_the_engine(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    chat(live, PATHS[0], bad_words=["gamma"], allowed_token_ids=[1, 2, 3])
    sampling = engine.requests[-1].sampling
    assert (sampling.bad_words, sampling.allowed_token_ids) == (["gamma"], [1, 2, 3])


@pytest.mark.parametrize("path", PATHS)
def test_include_reasoning_false_drops_the_reasoning(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    model = "gpt_oss_120b" if path.startswith("/project") else "gpt-oss-120b"
    body = {"model": model, "messages": [{"role": "user", "content": "reason"}]}
    url = live.base_url + path

    def reasoning(message: dict) -> object:
        return message.get("reasoning", message.get("reasoning_content"))

    shown = httpx.post(url, json=body, headers=HEADERS, timeout=30).json()["choices"][0]["message"]
    hidden = httpx.post(url, json={**body, "include_reasoning": False}, headers=HEADERS, timeout=30).json()
    message = hidden["choices"][0]["message"]
    assert reasoning(shown) == "User says hi. Reply politely."
    assert reasoning(message) is None and message["content"] == "Hello! How can I help?"
    stream = httpx.post(url, json={**body, "include_reasoning": False, "stream": True}, headers=HEADERS, timeout=30)
    chunks = [json.loads(line[6:]) for line in stream.text.split("\n\n") if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not [d for d in deltas if reasoning(d)]
    assert "".join(d.get("content") or "" for d in deltas) == "Hello! How can I help?"


# ---- the raw-prompt path: the fields the chat path passes, and the shared helper ----------------------------------


@pytest.mark.parametrize("path", COMPLETIONS)
def test_completions_pass_the_chat_paths_sampling_fields(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    (beta,) = tokens(" beta")
    choice = complete(live, path, stop_token_ids=[beta])["choices"][0]
    assert choice["text"] == "finalalpha beta" and (choice["finish_reason"], choice["stop_reason"]) == ("stop", beta)
    kept = complete(live, path, stop=[" gamma"], include_stop_str_in_output=True)["choices"][0]
    assert kept["text"] == "finalalpha beta gamma" and kept["stop_reason"] == " gamma"
    complete(live, path, bad_words=["gamma"], allowed_token_ids=[1, 2, 3])
    sampling = engine.requests[-1].sampling
    assert (sampling.bad_words, sampling.allowed_token_ids) == (["gamma"], [1, 2, 3])


# ---- stop strings and min_tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_stop_strings_are_not_matched_before_min_tokens(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    # the answer's tokens: <|channel|> final <|message|> alpha " beta" " gamma" <|return|>; " beta" is the 5th
    assert tokens("alpha beta gamma") == [*tokens("alpha"), *tokens(" beta"), *tokens(" gamma")]
    early = chat(live, path, stop=[" beta"], min_tokens=5)["choices"][0]
    assert early["message"]["content"] == "alpha beta gamma" and early["stop_reason"] is None
    after = chat(live, path, stop=[" beta"], min_tokens=4)["choices"][0]
    assert after["message"]["content"] == "alpha" and after["stop_reason"] == " beta"
    later = chat(live, path, stop=[" beta", " gamma"], min_tokens=5)["choices"][0]
    assert later["message"]["content"] == "alpha beta" and later["stop_reason"] == " gamma"
    stream = post(
        live,
        path,
        {
            "messages": [{"role": "user", "content": "alpha beta gamma"}],
            "stop": [" beta"],
            "min_tokens": 5,
            "stream": True,
        },
    )
    deltas = [c["choices"][0]["delta"] for c in chunks_of(stream) if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "alpha beta gamma"


@pytest.mark.parametrize("path", COMPLETIONS)
def test_completion_stop_strings_wait_for_min_tokens(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    assert complete(live, path, stop=[" beta"], min_tokens=5)["choices"][0]["text"] == "finalalpha beta gamma"
    assert complete(live, path, stop=[" beta"], min_tokens=4)["choices"][0]["text"] == "finalalpha"


# ---- engine options -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS + COMPLETIONS)
def test_engine_options_reach_the_engine(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    fields = {
        "priority": -3,
        "cache_salt": "salt-1",
        "session_id": "conv-7",
        "vllm_xargs": {"tag": "x", "n": [1, 2]},
        "kv_transfer_params": {"do_remote_decode": True},
        "ec_transfer_params": {"k": 1},
    }
    body = chat(live, path, **fields) if "chat" in path else complete(live, path, **fields)
    sampling = engine.requests[-1].sampling
    assert (sampling.priority, sampling.cache_salt, sampling.session_id) == (-3, "salt-1", "conv-7")
    assert sampling.extra_args == {
        "tag": "x",
        "n": [1, 2],
        "kv_transfer_params": {"do_remote_decode": True},
        "ec_transfer_params": {"k": 1},
    }
    assert body["kv_transfer_params"] is None  # what the engine returned: nothing, with no KV connector (as vLLM)
    # vLLM's fallback: the session id from vllm_xargs
    chat(live, PATHS[0], vllm_xargs={"session_id": "from-xargs"})
    assert engine.requests[-1].sampling.session_id == "from-xargs"


def test_cache_salt_separates_the_prefix_cache(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, _ = server
    words = " ".join(f"w{i}" for i in range(60))
    body = {"messages": [{"role": "user", "content": words}], "max_tokens": 5}

    def cached(**fields: object) -> int:
        r = post(live, PATHS[0], {**body, **fields})
        assert r.status_code == 200, r.text
        return int((r.json()["usage"]["prompt_tokens_details"] or {}).get("cached_tokens", 0))

    cached(cache_salt="first")
    assert cached(cache_salt="first") > 0
    assert cached(cache_salt="second") == 0  # another salt shares nothing
    # unsalted prompts share only the system prompt of earlier unsalted requests, not this salted one's words
    assert cached() < cached(cache_salt="first")


def test_cache_salt_is_checked_on_completions_as_vllm_does(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, _ = server
    error = refused(live, COMPLETIONS[0], {"prompt": "hi", "cache_salt": "a/b"})
    assert error["param"] == "cache_salt" and "must not contain '@', '/'" in error["message"]


@pytest.mark.parametrize("path", PATHS)
def test_stream_interval_raises_the_servers_for_the_request(
    server: tuple[LiveServer, WatchedEngine], path: str
) -> None:
    live, _ = server
    body = {"messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}

    def content_chunks(**fields: object) -> list[str]:
        chunks = chunks_of(post(live, path, {**body, **fields}))
        return [
            c["choices"][0]["delta"]["content"]
            for c in chunks
            if c["choices"] and c["choices"][0]["delta"].get("content")
        ]

    plain, batched = content_chunks(), content_chunks(stream_interval=100)
    assert "".join(plain) == "".join(batched) == "one two three four five six"
    assert len(plain) == 6 and len(batched) == 2  # the first text at once, the rest at the end


# ---- ids and logprobs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS + COMPLETIONS)
def test_request_id_names_the_answer(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    body = chat(live, path, request_id="my-req-1") if "chat" in path else complete(live, path, request_id="my-req-1")
    assert body["id"] == ("chatcmpl-my-req-1" if "chat" in path else "cmpl-my-req-1")
    assert engine.requests[-1].request_id.startswith(body["id"])
    again = chat(live, path, request_id="my-req-1") if "chat" in path else complete(live, path, request_id="my-req-1")
    assert again["id"] == body["id"]  # the same id twice is fine: the engine's ids stay distinct
    assert engine.requests[-1].request_id != engine.requests[-2].request_id


@pytest.mark.parametrize("path", PATHS)
def test_return_tokens_as_token_ids_on_chat_logprobs(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    fields = {"logprobs": True, "top_logprobs": 2, "return_tokens_as_token_ids": True}
    content = chat(live, path, **fields)["choices"][0]["logprobs"]["content"]
    ids = [*tokens("alpha"), *tokens(" beta"), *tokens(" gamma")]
    answer = [e for e in content if e["token"] in {f"token_id:{i}" for i in ids}]
    assert [e["token"] for e in answer] == [f"token_id:{i}" for i in ids]
    assert answer[1]["bytes"] == list(b" beta")  # the chosen token's bytes stay its text's, as vLLM writes them
    top = answer[1]["top_logprobs"]
    assert top[0]["token"] == f"token_id:{ids[1]}" and top[0]["bytes"] == list(f"token_id:{ids[1]}".encode())
    assert all(e["token"].startswith("token_id:") for e in content)
    stream = post(live, path, {"messages": [{"role": "user", "content": "alpha beta gamma"}], "stream": True, **fields})
    streamed = [
        e for c in chunks_of(stream) if c["choices"] for e in (c["choices"][0]["logprobs"] or {}).get("content") or []
    ]
    assert streamed and all(e["token"].startswith("token_id:") for e in streamed)
    plain = chat(live, path, logprobs=True)["choices"][0]["logprobs"]["content"]
    assert not [e for e in plain if e["token"].startswith("token_id:")]


# ---- what vLLM ignores on the harmony path ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_chat_fields_the_harmony_path_never_reads(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    chat(live, path)
    plain = engine.requests[-1].prompt_token_ids
    body = chat(
        live,
        path,
        chat_template="{{ messages }}",
        chat_template_kwargs={"enable_thinking": False},
        documents=[{"title": "t", "text": "x"}],
        add_generation_prompt=False,
        add_special_tokens=True,
        truncate_prompt_tokens=3,
        truncation_side="right",
        skip_special_tokens=False,
        spaces_between_special_tokens=False,
        mm_processor_kwargs={"a": 1},
        media_io_kwargs={"image": {}},
        return_prompt_text=True,
        watermarking=True,
        length_penalty=2.0,
        routed_experts_prompt_start=2,
        return_token_offsets=True,
        mm_payload="none",
    )
    assert engine.requests[-1].prompt_token_ids == plain  # the whole harmony prompt, as vLLM renders it
    assert body["usage"]["prompt_tokens"] == len(plain)
    assert body["choices"][0]["message"]["content"] == "alpha beta gamma"


@pytest.mark.parametrize("path", PATHS)
def test_chat_echo_prepends_nothing_on_the_harmony_path(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    messages = [
        {"role": "user", "content": "alpha beta gamma"},
        {"role": "assistant", "content": "earlier"},
        {"role": "user", "content": "alpha beta gamma"},
    ]
    assert chat(live, path, messages=messages, echo=True)["choices"][0]["message"]["content"] == "alpha beta gamma"
    # a tool call's missing answer text reads "" with echo (vLLM's ``last_msg_content + (content or "")``)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    call = {"messages": [{"role": "user", "content": "forecast"}], "tools": tools}
    assert chat(live, path, **call)["choices"][0]["message"]["content"] is None
    assert chat(live, path, **call, echo=True)["choices"][0]["message"]["content"] == ""


# ---- the raw prompt: truncation, special tokens, constraints ------------------------------------------------------


@pytest.mark.parametrize("path", COMPLETIONS)
def test_truncate_prompt_tokens_keeps_the_last_tokens(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    ids = list(get_encoding().encode(RAW_PROMPT, allowed_special="all"))
    whole = complete(live, path)
    assert whole["usage"]["prompt_tokens"] == len(ids)
    left = complete(live, path, truncate_prompt_tokens=4)
    assert left["usage"]["prompt_tokens"] == 4 and engine.requests[-1].prompt_token_ids == ids[-4:]
    right = complete(live, path, truncate_prompt_tokens=4, truncation_side="right")
    assert right["usage"]["prompt_tokens"] == 4 and engine.requests[-1].prompt_token_ids == ids[:4]
    as_ids = complete(live, path, prompt=ids, truncate_prompt_tokens=5, echo=True, max_tokens=1)
    assert engine.requests[-1].prompt_token_ids == ids[-5:]
    assert as_ids["choices"][0]["text"].startswith(RAW_PROMPT)  # vLLM echoes the prompt as sent
    assert complete(live, path, truncate_prompt_tokens=-1)["usage"]["prompt_tokens"] == len(ids)


def test_truncate_prompt_tokens_refusals_are_vllms(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, _ = server
    too_many = refused(live, COMPLETIONS[0], {"prompt": "hi", "truncate_prompt_tokens": 10**9})
    assert too_many["param"] == "truncate_prompt_tokens"
    assert too_many["message"].startswith("truncate_prompt_tokens=1000000000 cannot be greater than max_model_len = ")
    assert too_many["message"].endswith("Please request a smaller truncation size.")
    suffix = refused(live, COMPLETIONS[0], {"prompt": [1, 2], "suffix": "x", "truncate_prompt_tokens": 1})
    assert (suffix["message"], suffix["param"]) == ("suffix is not supported with truncate_prompt_tokens", "suffix")
    below = refused(live, COMPLETIONS[0], {"prompt": "hi", "truncate_prompt_tokens": -2})
    assert below["param"] == "truncate_prompt_tokens"


@pytest.mark.parametrize("path", COMPLETIONS)
def test_skip_special_tokens_false_spells_control_tokens(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    text = complete(live, path, skip_special_tokens=False)["choices"][0]["text"]
    assert text == "<|channel|>final<|message|>alpha beta gamma<|return|>"


@pytest.mark.parametrize("path", COMPLETIONS)
def test_completion_constraints_reach_the_engine(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    complete(live, path, response_format={"type": "json_object"})
    assert engine.requests[-1].constraint == {"json_object": True}
    complete(live, path, structured_outputs={"regex": "[a-z]+"})
    assert engine.requests[-1].constraint == {"regex": "[a-z]+"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    complete(
        live,
        path,
        structured_outputs={"json": {"type": "string"}},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    assert engine.requests[-1].constraint == {"json": schema}  # response_format overrides its own key only
    complete(live, path)
    assert engine.requests[-1].constraint is None
    error = refused(live, path, {"prompt": "hi", "structured_outputs": {"regex": "a", "grammar": "root ::= x"}})
    assert error["message"].startswith("You can only use one kind of structured outputs constraint")
    two = refused(live, path, {"prompt": "hi", "structured_outputs": {"regex": "a", "choice": ["b"]}})
    assert two["param"] == "structured_outputs" and two["message"].startswith(
        "You can only use one kind of constraints"
    )


# ---- refused ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", (PATHS[0], COMPLETIONS[0]))
def test_fields_this_server_cannot_run_are_refused(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    base = {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi", "logprobs": 1}
    if "chat" in path:
        base["logprobs"] = True
    cases = {
        "use_beam_search": ({"use_beam_search": True}, "This server does not support beam search."),
        "logprob_token_ids": ({"logprob_token_ids": [1, 2]}, "`logprob_token_ids` is not supported by this server."),
        "repetition_detection": (
            {"repetition_detection": {"max_pattern_size": 4, "min_count": 3}},
            "`repetition_detection` is not supported by this server.",
        ),
    }
    for param, (fields, message) in cases.items():
        error = refused(live, path, {**base, **fields})
        assert error["param"] == param and error["message"].startswith(message), error
    # vLLM's own checks come first, with its messages
    bad = refused(live, path, {**base, "repetition_detection": {"max_pattern_size": 4, "min_count": 1}})
    assert bad["message"].startswith("min_count must be >= 2 to detect repetitive patterns")
    # a disabled detection is no detection
    assert post(live, path, {**base, "repetition_detection": {"max_pattern_size": 0}}).status_code == 200


@pytest.mark.parametrize("path", (PATHS[0], COMPLETIONS[0]))
def test_thinking_token_budget_is_refused_as_vllm_refuses_it(
    server: tuple[LiveServer, WatchedEngine], path: str
) -> None:
    live, _ = server
    base = {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"}
    error = refused(live, path, {**base, "thinking_token_budget": 100})
    assert error["message"].startswith("thinking_token_budget is set but reasoning_config is not configured.")
    invalid = refused(live, path, {**base, "thinking_token_budget": -2})
    assert invalid["param"] == "thinking_token_budget"
    assert invalid["message"] == "`thinking_token_budget` must be a non-negative integer or -1 for unlimited."
    assert post(live, path, {**base, "thinking_token_budget": -1}).status_code == 200  # -1: unlimited (unset)


def test_prompt_embeds_are_refused_as_vllm_refuses_them(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, _ = server
    error = refused(live, COMPLETIONS[0], {"prompt_embeds": "AAAA"})
    assert error["message"] == "You must set `--enable-prompt-embeds` to input `prompt_embeds`."


@pytest.mark.parametrize("path", PATHS)
def test_reasoning_efforts_harmony_lacks_are_refused(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    base = {"messages": [{"role": "user", "content": "hi"}]}
    none = refused(live, path, {**base, "reasoning_effort": "none"})
    assert (none["message"], none["param"]) == ("Harmony does not support reasoning_effort='none'", "reasoning_effort")
    minimal = refused(live, path, {**base, "reasoning_effort": "minimal"})
    assert minimal["message"] == (
        "reasoning_effort='minimal' is not supported by Harmony. Supported values are: high, medium, low."
    )


@pytest.mark.parametrize("path", PATHS)
def test_kv_transfer_prompt_token_ids_run_as_the_prompt(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, engine = server
    chat(live, path)
    rendered = engine.requests[-1].prompt_token_ids
    other = chat(live, path, messages=[{"role": "user", "content": "something else"}])
    assert other["choices"][0]["message"]["content"] == "something else"
    # a disaggregated prefill's ids run instead of the messages, and leave kv_transfer_params (as in vLLM)
    fields = {"kv_transfer_params": {"prompt_token_ids": rendered, "x": 1}}
    reused = chat(live, path, messages=[{"role": "user", "content": "something else"}], **fields)
    assert engine.requests[-1].prompt_token_ids == rendered
    assert engine.requests[-1].sampling.extra_args == {"kv_transfer_params": {"x": 1}}
    assert reused["choices"][0]["message"]["content"] == "alpha beta gamma"
    assert reused["usage"]["prompt_tokens"] == len(rendered)
    # with echo the messages are rendered instead
    chat(live, path, echo=True, kv_transfer_params={"prompt_token_ids": [1, 2, 3]})
    assert engine.requests[-1].prompt_token_ids == rendered
    bad = refused(
        live,
        path,
        {"messages": [{"role": "user", "content": "x"}], **{"kv_transfer_params": {"prompt_token_ids": [-1]}}},
    )
    assert bad["param"] == "kv_transfer_params.prompt_token_ids"
    assert (
        bad["message"] == "`kv_transfer_params['prompt_token_ids']` must be a non-empty list of non-negative integers."
    )
    huge = refused(
        live,
        path,
        {"messages": [{"role": "user", "content": "x"}], "kv_transfer_params": {"prompt_token_ids": [10**7]}},
    )
    assert (huge["message"], huge["param"]) == (
        "Token id 10000000 is out of vocabulary",
        "kv_transfer_params.prompt_token_ids",
    )
