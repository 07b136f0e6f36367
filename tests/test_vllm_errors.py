"""vLLM's errors are classified by type into the core's (no engine is started: vLLM's own exception types and its
SamplingParams validation are used as they are)."""

from __future__ import annotations

import pytest

from server.engine.base import GenerationRequest
from server.engine.vllm_engine import VllmEngine, _request_error
from server.errors import EngineUnavailableError, InvalidRequestError, RateLimitError
from server.settings import VllmSettings
from server.types import SamplingOptions


def test_sampling_validation_errors_are_400() -> None:
    engine = VllmEngine(VllmSettings(), "unused", "gpt-oss-120b")
    request = GenerationRequest(
        request_id="r",
        prompt_token_ids=[1, 2],
        sampling=SamplingOptions(min_tokens=9),
        max_tokens=5,
        stop_token_ids=(200002,),
        constraint=None,
    )
    with pytest.raises(InvalidRequestError) as caught:
        engine.validate(request)
    assert "min_tokens" in caught.value.message and caught.value.status == 400


def test_vllm_exception_types_map_to_core_errors() -> None:
    from vllm.exceptions import MaxQueuedTokensError, QueueOverflowError, VLLMValidationError

    error = _request_error(VLLMValidationError("bad value", parameter="top_p", value=7))
    assert isinstance(error, InvalidRequestError) and error.param == "top_p" and error.message == "bad value"
    assert isinstance(_request_error(ValueError("nope")), InvalidRequestError)
    assert isinstance(_request_error(QueueOverflowError()), EngineUnavailableError)
    assert isinstance(_request_error(MaxQueuedTokensError()), EngineUnavailableError)
    other = RuntimeError("a bug")
    assert _request_error(other) is other  # not the client's fault: left for the core's 500
    assert not isinstance(_request_error(other), RateLimitError)


def test_vllms_environment_is_read_once_while_an_engine_runs_and_afresh_after(monkeypatch: pytest.MonkeyPatch) -> None:
    from vllm import envs

    from server.engine.vllm_engine import cache_vllm_environment

    monkeypatch.setenv("VLLM_COMPUTE_NANS_IN_LOGITS", "0")
    try:
        cache_vllm_environment(True)
        assert envs.VLLM_COMPUTE_NANS_IN_LOGITS is False
        monkeypatch.setenv("VLLM_COMPUTE_NANS_IN_LOGITS", "1")
        assert envs.VLLM_COMPUTE_NANS_IN_LOGITS is False  # cached: vLLM's settings do not change after start-up
        cache_vllm_environment(True)  # twice is once
    finally:
        cache_vllm_environment(False)
    assert envs.VLLM_COMPUTE_NANS_IN_LOGITS is True
    cache_vllm_environment(False)  # and off when off is harmless
