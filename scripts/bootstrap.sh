#!/usr/bin/env bash
# Create .venv and install the project (editable) with the CPU engine, tests and benchmarks: the same
# `pip install` a user runs, nothing more. Idempotent: a stamp keyed on pyproject.toml makes later runs instant.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[cpu,checkpoint,test,bench]"
  touch "$stamp"
fi
