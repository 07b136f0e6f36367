"""Errors on the OpenAI route: status codes and OpenAI's error envelope, never FastAPI's 422."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import requests

from tests.helpers import LiveServer

URL = "/v1/chat/completions"
GOOD = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}


def post(
    server: LiveServer,
    body: Any = None,
    *,
    key: str | None = "default",
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    h = dict(headers or {})
    if key == "default":
        key = server.api_key
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    if raw is not None:
        return requests.post(server.base_url + URL, data=raw, headers=h, timeout=30)
    return requests.post(server.base_url + URL, json=body, headers=h, timeout=30)


def assert_error(r: requests.Response, status: int, param: str | None = ..., code: str | None = ...) -> dict[str, Any]:  # type: ignore[assignment]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert list(err) == ["message", "type", "param", "code"]
    assert isinstance(err["message"], str) and err["message"]
    if param is not ...:
        assert err["param"] == param
    if code is not ...:
        assert err["code"] == code
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, None),
        ("wrong", None),
        ("sk-test-0123456789abcde", None),  # a prefix of the real key
        ("SK-TEST-0123456789ABCDEF", None),  # wrong case
        (None, {"X-API-Key": "sk-test-0123456789abcdef"}),  # right key, wrong header
        (None, {"Authorization": "Basic c2stdGVzdA=="}),
    ],
)
def test_auth_failures(scripted_server: LiveServer, key: str | None, headers: dict[str, str] | None) -> None:
    err = assert_error(post(scripted_server, GOOD, key=key, headers=headers), 401)
    assert err["type"] == "authentication_error"
    assert scripted_server.api_key not in err["message"]


def test_second_key_works(scripted_server: LiveServer) -> None:
    assert post(scripted_server, GOOD, key="second-key-xyz").status_code == 200


def test_models_requires_auth(scripted_server: LiveServer) -> None:
    assert requests.get(scripted_server.base_url + "/v1/models", timeout=10).status_code == 401


def test_health_is_public(scripted_server: LiveServer) -> None:
    r = requests.get(scripted_server.base_url + "/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert requests.get(scripted_server.base_url + "/live", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1,2,3]", None),
        (b'"a string"', None),
    ],
)
def test_bad_bodies(scripted_server: LiveServer, raw: bytes, param: str | None) -> None:
    err = assert_error(post(scripted_server, raw=raw, headers={"Content-Type": "application/json"}), 400, param)
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-oss-120b"}, "messages"),
        ({"model": "gpt-oss-120b", "messages": []}, "messages"),
        ({**GOOD, "temperature": 2.5}, "temperature"),
        ({**GOOD, "temperature": -1}, "temperature"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "top_p": 0}, "top_p"),
        ({**GOOD, "top_p": 1.5}, "top_p"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_tokens": -1}, "max_tokens"),
        ({**GOOD, "max_tokens": 2**64}, "max_tokens"),
        ({**GOOD, "n": 10**9}, "n"),
        ({**GOOD, "n": 17}, "n"),  # over limits.max_n
        ({**GOOD, "top_logprobs": 50, "logprobs": True}, "top_logprobs"),
        ({**GOOD, "presence_penalty": 3}, "presence_penalty"),
        ({**GOOD, "logit_bias": {"abc": 1}}, "logit_bias"),
        ({**GOOD, "logit_bias": {"5": 1000}}, "logit_bias"),
        ({**GOOD, "stop": ["x"] * 100}, "stop"),
        ({"model": "gpt-oss-120b", "messages": [{"role": "user"}]}, "messages.0"),
        ({"model": "gpt-oss-120b", "messages": [{"content": "x"}]}, "messages.0.role"),
        (
            {
                "model": "gpt-oss-120b",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x"}}]}
                ],
            },
            "messages.0.content",
        ),
        ({**GOOD, "messages": "hi"}, "messages"),
    ],
)
def test_validation_errors_are_400(scripted_server: LiveServer, body: dict[str, Any], param: str) -> None:
    err = assert_error(post(scripted_server, body), 400)
    assert err["param"] == param or (err["param"] or "").startswith(param)


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
NAMED_USAGE = 'Correct usage: `{"type": "function", "function": {"name": "my_function"}}`'
AUTHOR_ERROR = (
    "1 validation error for Author\nrole\n  Input should be 'user', 'assistant', 'system', 'developer' or 'tool' "
    "[type=enum, input_value='{role}', input_type=str]\n    For further information visit "
    "https://errors.pydantic.dev/{version}/v/enum"
)


@pytest.mark.parametrize("path", [URL, "/project/p-5915/genai/gpt_oss_120b/v1/chat/completions"])
@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "Stream options can only be defined when `stream=True`.",
         "stream_options"),
        ({"stream": False, "stream_options": {"continuous_usage_stats": True}},
         "Stream options can only be defined when `stream=True`.", "stream_options"),
        ({"tools": []}, "`tools` must not be an empty array. Either provide at least one tool or omit the field "
         "entirely.", "tools"),
        ({"tool_choice": "auto"}, "When using `tool_choice`, `tools` must be set.", "tool_choice"),
        ({"tool_choice": "required"}, "When using `tool_choice`, `tools` must be set.", "tool_choice"),
        ({"tools": [TOOL], "tool_choice": "any"},
         'Invalid value for `tool_choice`: any! Only named tools, "none", "auto" or "required" are supported.',
         "tool_choice"),
        ({"tools": [TOOL], "tool_choice": {"type": "function"}},
         f"Invalid value for `function`: `None` in `tool_choice`! {NAMED_USAGE}", "tool_choice.function"),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {}}},
         f"Expected field `name` in `function` in `tool_choice`! {NAMED_USAGE}", "tool_choice.function.name"),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
         "The tool specified in `tool_choice` does not match any of the specified `tools`", "tool_choice"),
        ({"top_logprobs": 2}, "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"),
        ({"stream": True, "prompt_logprobs": 1}, "`prompt_logprobs` are not available when `stream=True`.",
         "prompt_logprobs"),
        ({"response_format": {"type": "json_schema"}},
         "When response_format type is 'json_schema', the 'json_schema' field must be provided.", "response_format"),
        ({"continue_final_message": True, "add_generation_prompt": True},
         "Cannot set both `continue_final_message` and `add_generation_prompt` to True.", None),
        ({"logprob_token_ids": [5]}, "when using `logprob_token_ids`, `logprobs` must be set to true.",
         "logprob_token_ids"),
        ({"cache_salt": ""}, "Parameter 'cache_salt' must be a non-empty string if provided.", "cache_salt"),
        ({"cache_salt": "a/b"}, "Parameter 'cache_salt' must be at most 128 characters and must not contain '@', "
         "'/', '\\\\', or NUL.", "cache_salt"),
        # several faults: pydantic runs vLLM's validators last-defined first (tools before stream_options)
        ({"tools": [], "stream_options": {"include_usage": True}}, "`tools` must not be an empty array. Either "
         "provide at least one tool or omit the field entirely.", "tools"),
    ],
)  # fmt: skip
def test_vllm_request_checks(
    scripted_server: LiveServer, path: str, fields: dict[str, Any], message: str, param: str | None
) -> None:
    """vLLM's own ChatCompletionRequest checks: 400 with its messages, on /v1 and on E2E (vLLM behind a gateway)."""
    model = "gpt_oss_120b" if path.startswith("/project") else "gpt-oss-120b"
    body = {**GOOD, "model": model, **fields}
    headers = {"Authorization": f"Bearer {scripted_server.api_key}"}
    r = requests.post(scripted_server.base_url + path, json=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == message and r.json()["error"]["param"] == param


def test_stream_options_with_stream_or_empty_are_fine(scripted_server: LiveServer) -> None:
    assert post(scripted_server, {**GOOD, "stream_options": {}}).status_code == 200  # vLLM checks truthiness
    assert post(scripted_server, {**GOOD, "stream": True, "stream_options": {"include_usage": True}}).status_code == 200
    assert post(scripted_server, {**GOOD, "tool_choice": "none"}).status_code == 200  # no tools needed for "none"


@pytest.mark.parametrize("role", ["function", "narrator", ""])
def test_roles_harmony_lacks_are_refused_as_vllm_refuses_them(scripted_server: LiveServer, role: str) -> None:
    """vLLM takes any role, then its harmony path fails making an Author of it: 400 with pydantic's text."""
    body = {**GOOD, "messages": [{"role": "user", "content": "hi"}, {"role": role, "content": "x"}]}
    err = assert_error(post(scripted_server, body), 400, param=None)
    version = ".".join(pydantic.VERSION.split(".")[:2])
    assert err["message"] == AUTHOR_ERROR.format(role=role, version=version)


def test_nan_and_infinity_rejected(scripted_server: LiveServer) -> None:
    raw = b'{"model":"gpt-oss-120b","messages":[{"role":"user","content":"hi"}],"temperature":NaN}'
    assert_error(post(scripted_server, raw=raw, headers={"Content-Type": "application/json"}), 400)


def test_unknown_model_is_404(scripted_server: LiveServer) -> None:
    err = assert_error(post(scripted_server, {**GOOD, "model": "gpt-4o"}), 404, "model", "model_not_found")
    assert "gpt-4o" in err["message"]


def test_model_alias_accepted_and_echoed(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {**GOOD, "model": "openai/gpt-oss-120b"})
    assert r.status_code == 200 and r.json()["model"] == "openai/gpt-oss-120b"


def test_context_too_long(scripted_server: LiveServer) -> None:
    big = "word " * 140_000
    err = assert_error(post(scripted_server, {**GOOD, "messages": [{"role": "user", "content": big}]}), 400)
    assert err["code"] == "context_length_exceeded" and "maximum context length" in err["message"]
    err = assert_error(post(scripted_server, {**GOOD, "max_tokens": 200_000}), 400, "max_tokens")
    assert err["code"] == "context_length_exceeded"


def test_body_too_large(scripted_server: LiveServer) -> None:
    raw = b'{"messages":[{"role":"user","content":"' + b"a" * (5 * 1024 * 1024) + b'"}]}'
    assert_error(post(scripted_server, raw=raw, headers={"Content-Type": "application/json"}), 413)


def test_unknown_path_and_method(scripted_server: LiveServer) -> None:
    r = requests.get(scripted_server.base_url + "/v1/does-not-exist", timeout=10)
    assert_error(r, 404)
    r = requests.get(scripted_server.base_url + URL, timeout=10)
    assert_error(r, 405)


def test_unknown_fields_ignored(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {**GOOD, "some_future_field": {"a": 1}, "chat_template": "{{ evil }}"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "hi"


def test_server_survives_hostile_inputs(scripted_server: LiveServer) -> None:
    assert post(scripted_server, GOOD).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        "a" * 100_000,  # one 100k-letter "word": quadratic to tokenize
        "漢" * 20_000,
        "a" * 1_000_000,  # crashes the tokenizer outright
    ],
    ids=["latin-run", "cjk-run", "million-run"],
)
def test_pathological_words_are_400_not_a_stall(scripted_server: LiveServer, content: str) -> None:
    err = assert_error(post(scripted_server, {**GOOD, "messages": [{"role": "user", "content": content}]}), 400)
    assert err["param"] == "messages.0.content" and "letters or digits" in err["message"]
    assert post(scripted_server, GOOD).status_code == 200


def test_long_normal_text_is_fine(scripted_server: LiveServer) -> None:
    text = "word " * 20_000 + "x" * 4000  # long, but every run is short enough
    assert post(scripted_server, {**GOOD, "messages": [{"role": "user", "content": text}]}).status_code == 200


def _nested(depth: int) -> str:
    """A schema nested ``depth`` levels, as JSON text (too deep for Python's own json encoder)."""
    return '{"type":"object","properties":{"x":' * depth + '{"type":"string"}' + "}}" * depth


@pytest.mark.parametrize("field", ["response_format", "tools"])
@pytest.mark.parametrize("depth", [70, 500])  # past ~1000 the JSON parser itself refuses the body (also a 400)
def test_deep_schemas_are_400(scripted_server: LiveServer, field: str, depth: int) -> None:
    schema = _nested(depth)
    extra = (
        f'"response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{schema}}}}}'
        if field == "response_format"
        else f'"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]'
    )
    raw = f'{{"model":"gpt-oss-120b","messages":[{{"role":"user","content":"hi"}}],{extra}}}'.encode()
    err = assert_error(post(scripted_server, raw=raw, headers={"Content-Type": "application/json"}), 400)
    assert "levels deep" in err["message"]
    assert post(scripted_server, GOOD).status_code == 200
