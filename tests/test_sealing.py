"""Sealed payloads: what one server seals it opens again; anything else is a 400, never a 500; the key comes from
the environment, a file, or one generated once that concurrent first starts agree on."""

from __future__ import annotations

import base64
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.errors import ConfigError, InvalidRequestError
from server.sealing import Sealer, load_seal_key
from server.settings import StoreSettings
from tests.helpers import REPO

ENV = "GPTOSS_TEST_SEAL_KEY"
PAYLOAD = {"reasoning": "The user wants the weather. ✓ \u0000", "tokens": [1, 2, 3], "nested": {"a": None}}


def b64key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPTOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    return tmp_path


def settings(**kwargs: object) -> StoreSettings:
    return StoreSettings(seal_key_env=ENV, **kwargs)  # type: ignore[arg-type]


def test_round_trip() -> None:
    sealer = Sealer(secrets.token_bytes(32))
    token = sealer.seal(PAYLOAD)
    assert isinstance(token, str) and "reasoning" not in token
    base64.b64decode(token, validate=True)
    assert sealer.open(token) == PAYLOAD
    assert sealer.seal(PAYLOAD) != token  # a fresh nonce each time


def test_a_flipped_byte_anywhere_is_refused() -> None:
    sealer = Sealer(secrets.token_bytes(32))
    raw = bytearray(base64.b64decode(sealer.seal(PAYLOAD)))
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        with pytest.raises(InvalidRequestError):
            sealer.open(base64.b64encode(bytes(tampered)).decode())


def test_a_token_of_another_key_is_refused() -> None:
    token = Sealer(secrets.token_bytes(32)).seal(PAYLOAD)
    with pytest.raises(InvalidRequestError, match="another key") as caught:
        Sealer(secrets.token_bytes(32)).open(token, param="input[0].encrypted_content")
    assert caught.value.status == 400 and caught.value.param == "input[0].encrypted_content"


@pytest.mark.parametrize(
    "token",
    ["", "not base64 at all!", "AAAA", base64.b64encode(b"\x01short").decode(), "=" * 8, "gAAAAA" + "A" * 100],
    ids=["empty", "garbage", "tiny", "truncated", "padding", "lookalike"],
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidRequestError):
        Sealer(secrets.token_bytes(32)).open(token)


def test_truncated_and_huge_tokens_are_refused() -> None:
    sealer = Sealer(secrets.token_bytes(32), max_token_chars=10_000)
    token = sealer.seal(PAYLOAD)
    for cut in (1, 8, len(token) // 2):
        with pytest.raises(InvalidRequestError):
            sealer.open(token[:-cut])
    with pytest.raises(InvalidRequestError, match="past the limit"):
        sealer.open("A" * 10_004)
    with pytest.raises(InvalidRequestError):
        sealer.open(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="past the limit"):
        sealer.seal({"big": "x" * 20_000})


def test_the_generated_key_is_persisted_and_reused(cache: Path) -> None:
    token = Sealer.from_settings(settings()).seal(PAYLOAD)
    key_file = cache / "seal.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    assert Sealer.from_settings(settings()).open(token) == PAYLOAD
    assert [p.name for p in cache.iterdir()] == ["seal.key"]  # no temporary file left


def test_the_environment_key_comes_first_then_the_file(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key, file_key = b64key(), b64key()
    key_file = tmp_path / "shared.key"
    key_file.write_text(file_key + "\n")
    assert load_seal_key(settings(seal_key_file=key_file)) == base64.b64decode(file_key)
    monkeypatch.setenv(ENV, env_key)
    assert load_seal_key(settings(seal_key_file=key_file)) == base64.b64decode(env_key)
    # two servers with the same key read each other's tokens
    token = Sealer.from_settings(settings()).seal(PAYLOAD)
    assert Sealer(base64.b64decode(env_key)).open(token) == PAYLOAD
    assert not (cache / "seal.key").exists()


@pytest.mark.parametrize(
    "value", ["not base64!", base64.b64encode(b"16 bytes only!!!").decode()], ids=["text", "short"]
)
def test_a_malformed_key_is_a_config_error(value: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ConfigError, match=ENV):
        Sealer.from_settings(settings())
    monkeypatch.delenv(ENV)
    bad = cache / "bad.key"
    bad.write_text(value)
    with pytest.raises(ConfigError, match=r"bad\.key"):
        Sealer.from_settings(settings(seal_key_file=bad))
    with pytest.raises(ConfigError, match=r"missing\.key"):
        Sealer.from_settings(settings(seal_key_file=cache / "missing.key"))


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    """Several processes creating the key at the same moment (each imports, then waits for a shared start file) end
    up with one."""
    start = tmp_path / "go"
    code = (
        "import os, time, base64\n"
        "from server.sealing import load_seal_key\n"
        "from server.settings import StoreSettings\n"
        f"open(os.path.join({str(tmp_path)!r}, f'ready-{{os.getpid()}}'), 'w').close()\n"
        f"while not os.path.exists({str(start)!r}): time.sleep(0.001)\n"
        f"print(base64.b64encode(load_seal_key(StoreSettings(seal_key_env={ENV!r}))).decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"GPTOSS_CACHE_DIR": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and all(p.poll() is None for p in procs):
        time.sleep(0.01)  # until every one has imported and waits
    start.touch()
    keys = {proc.communicate(timeout=120)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(keys) == 1 and keys == {(tmp_path / "cache" / "seal.key").read_text().strip()}
