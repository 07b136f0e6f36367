#!/usr/bin/env bash
# Install if needed, lint, then run the whole test suite (the real vLLM engine tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
