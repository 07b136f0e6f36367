"""Installing as Python users do: the profiles ship in the package, the tiny checkpoint is built without transformers'
model classes, and torchvision & co. stay out of the processes that import vLLM (server/textonly.py), even when
the installed torchvision is a build for another torch (simulated here by a package that fails the same way)."""

from __future__ import annotations

import fnmatch
import json
import os
import struct
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from server import textonly
from server.checkpoint import BUILD_VERSION, TINY_CONFIG, tiny_config, tiny_weights
from server.settings import CONFIG_DIR, default_profile, load_settings, resolve_config_file
from tests.helpers import REPO

BROKEN = "raise RuntimeError('operator {name}::nms does not exist')\n"


def _broken_media_packages(folder: Path) -> Path:
    """torchvision, torchaudio and torchcodec that fail on import as builds for another torch do."""
    for name in textonly.MODULES:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(BROKEN.format(name=name))
    return folder


def _python(code: str, *, pythonpath: list[Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*pythonpath, REPO])
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# -- the packaged profiles --------------------------------------------------------------------------------------------


def test_profiles_resolve_through_the_package() -> None:
    packaged = resources.files("server") / "configs"
    for name in ("cpu.yaml", "gpu.yaml", "gpu-dummy.yaml", "scripted.yaml", "gpt-oss-120b/config.json"):
        assert (packaged / name).is_file(), name
    assert Path(str(packaged)).resolve() == CONFIG_DIR.resolve()
    assert default_profile().parent == CONFIG_DIR and default_profile().is_file()


def test_packaged_profiles_are_the_checkout_profiles() -> None:
    """In a checkout server/configs is configs/ (a link), so the two never drift apart."""
    assert (REPO / "server" / "configs").resolve() == (REPO / "configs").resolve()


def test_package_data_ships_every_profile() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["server"]
    files = [p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*") if p.is_file()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(f"configs/{name}", pattern) for pattern in patterns), name
    assert "textonly_site/sitecustomize.py" in patterns


def test_config_paths_of_the_readme_work_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_file(Path("configs/scripted.yaml")) == CONFIG_DIR / "scripted.yaml"
    assert load_settings(Path("configs/scripted.yaml")).engine.kind == "scripted"
    # a file of the user's own always wins, and other missing paths stay missing
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "scripted.yaml").write_text("engine: {kind: vllm}\n")
    assert resolve_config_file(Path("configs/scripted.yaml")) == Path("configs/scripted.yaml")
    assert resolve_config_file(Path("configs/nope.yaml")) == Path("configs/nope.yaml")
    assert resolve_config_file(Path("elsewhere/cpu.yaml")) == Path("elsewhere/cpu.yaml")


# -- keeping torchvision & co. out ------------------------------------------------------------------------------------


def test_the_simulated_broken_torchvision_breaks_transformers_as_the_real_one_does(tmp_path: Path) -> None:
    broken = _broken_media_packages(tmp_path / "broken")
    # the module vLLM imports at `import vllm` (vllm.transformers_utils.config)
    out = _python("import transformers.models.auto.image_processing_auto", pythonpath=[broken], cwd=tmp_path)
    assert out.returncode != 0 and "operator torchvision::nms does not exist" in out.stderr, out.stderr[-2000:]


def test_site_dir_keeps_them_out_of_a_fresh_interpreter(tmp_path: Path) -> None:
    broken = _broken_media_packages(tmp_path / "broken")
    code = (
        "import importlib.util, sys\n"
        "import transformers.models.auto.image_processing_auto\n"
        "from transformers.utils import is_torchvision_available\n"
        "assert not is_torchvision_available()\n"
        "for name in ('torchvision', 'torchaudio', 'torchcodec'):\n"
        "    assert importlib.util.find_spec(name) is None\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
        "print('ok')\n"
    )
    out = _python(code, pythonpath=[textonly.SITE_DIR, broken], cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_site_dir_runs_the_sitecustomize_it_shadows(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['SHADOWED_SITECUSTOMIZE_RAN'] = '1'\n")
    code = "import os, sys\nprint(os.environ.get('SHADOWED_SITECUSTOMIZE_RAN'), sys.modules['torchvision'])\n"
    out = _python(code, pythonpath=[textonly.SITE_DIR, other], cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["1", "None"], out.stderr[-2000:]


def test_exclude_covers_this_process_and_its_children(tmp_path: Path) -> None:
    broken = _broken_media_packages(tmp_path / "broken")
    code = (
        "import subprocess, sys\n"
        "from server import textonly\n"
        "textonly.exclude()\n"
        "import transformers.image_utils\n"
        "assert sys.modules['torchvision'] is None\n"
        "child = 'import transformers.image_utils, sys; print(sys.modules[\"torchvision\"])'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n"
    )
    out = _python(code, pythonpath=[broken], cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr[-2000:]
    assert textonly.with_site_dir({"PYTHONPATH": f"a{os.pathsep}{textonly.SITE_DIR}"})["PYTHONPATH"] == os.pathsep.join(
        [str(textonly.SITE_DIR), "a"]
    )


def test_the_vllm_engine_module_excludes_them_before_vllm_is_imported() -> None:
    import server.engine.vllm_engine  # noqa: F401

    assert all(sys.modules.get(name) is None for name in textonly.MODULES)
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(textonly.SITE_DIR)


# -- the tiny checkpoint ----------------------------------------------------------------------------------------------


def test_checkpoint_builder_never_touches_torchvision(tmp_path: Path) -> None:
    """Built next to a broken torchvision, with nothing excluded: the builder imports neither the media packages nor
    the transformers modules that import them (modeling_utils, image_utils)."""
    broken = _broken_media_packages(tmp_path / "broken")
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from server.checkpoint import build_tiny_checkpoint\n"
        f"path = build_tiny_checkpoint(Path({str(tmp_path / 'ckpt')!r}), seed=0)\n"
        "bad = [m for m in ('torchvision', 'torchaudio', 'torchcodec', 'transformers.modeling_utils',\n"
        "                   'transformers.image_utils') if m in sys.modules]\n"
        "print(json.dumps({'bad': bad, 'files': sorted(p.name for p in path.iterdir())}))\n"
    )
    out = _python(code, pythonpath=[broken], cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert result["files"] == [
        "build-info.json",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    ckpt = tmp_path / "ckpt"
    config = json.loads((ckpt / "config.json").read_text())
    assert config["architectures"] == ["GptOssForCausalLM"] and config["model_type"] == "gpt_oss"
    assert {k: config[k] for k in TINY_CONFIG} == TINY_CONFIG and config["dtype"] == "bfloat16"
    generation = json.loads((ckpt / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (
        199998,
        200002,
        199999,
    )
    assert json.loads((ckpt / "build-info.json").read_text())["version"] == BUILD_VERSION
    raw = (ckpt / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    weights = tiny_weights(tiny_config(), 0)
    assert header.pop("__metadata__") == {"format": "pt"}
    assert {k: (v["dtype"], v["shape"]) for k, v in header.items()} == {
        k: ("BF16", list(t.shape)) for k, t in weights.items()
    }


def test_tiny_weights_have_the_layout_of_transformers_model() -> None:
    """The names and shapes ``GptOssForCausalLM`` has for the tiny config (built on the meta device: no memory)."""
    import torch

    textonly.exclude()  # this test does import the model classes
    from transformers import GptOssForCausalLM

    config = tiny_config()
    with torch.device("meta"):
        model = GptOssForCausalLM(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = tiny_weights(config, 0)
    assert {k: tuple(t.shape) for k, t in weights.items()} == expected
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert not weights["model.embed_tokens.weight"][config.pad_token_id].any()
    assert bool((weights["model.norm.weight"] == 1).all()) and not weights["lm_head.weight"].isnan().any()
    std = weights["lm_head.weight"].float().std().item()
    assert abs(std - config.initializer_range) < 0.001


def test_tiny_weights_are_deterministic_per_seed() -> None:
    first, again, other = (tiny_weights(tiny_config(), seed) for seed in (0, 0, 1))
    assert all(first[k].equal(again[k]) for k in first)
    assert not first["lm_head.weight"].equal(other["lm_head.weight"])
