#!/usr/bin/env bash
# The race on one GPU: vLLM's own OpenAI server vs our server on gpt-oss-120b, identical engine settings: the GPU
# profile of this machine's GPU (configs/gpu-<family>.yaml, as `serve` picks it; PROFILE=... names another) with the
# benchmark overlay configs/bench-gpu.yaml on top; scripts/race.py --gpu derives vLLM's flags from the merged file.
# One 120b engine fills the GPU, so the servers run one at a time (--sequential), alternating whole servers every
# repetition.
#
# Usage: scripts/race_gpu.sh [MODEL]
#   MODEL: a folder with gpt-oss-120b's weights, or a hub id (default openai/gpt-oss-120b).
#   DUMMY=1 scripts/race_gpu.sh: the full-size architecture with random weights (no download; folder from
#   `python -m server dummy-model-dir`). Random weights never write a harmony header, so TTFT is then close to E2E
#   for both servers (see scripts/race.py); real weights give real streaming.
#   RACE_ARGS="--repetitions 5 ..." passes extra flags to scripts/race.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MODEL=${1:-openai/gpt-oss-120b}
CONFIG=$(mktemp --suffix=.yaml)
trap 'rm -f "$CONFIG"' EXIT
PROFILE=${PROFILE:-$("$PY" -c 'from server.engine.detect import gpu_family, gpus
found = gpus()
print("configs/gpu-%s.yaml" % ((gpu_family(found[0]) if found else None) or "h100"))')}
echo "race_gpu: profile $PROFILE + configs/bench-gpu.yaml" >&2
"$PY" - "$PROFILE" configs/bench-gpu.yaml "$CONFIG" <<'PYEOF'
import sys

import yaml

from server.settings import _deep_merge

profile, overlay, out = sys.argv[1:]
with open(profile) as a, open(overlay) as b:
    merged = _deep_merge(yaml.safe_load(a), yaml.safe_load(b))
with open(out, "w") as f:
    yaml.safe_dump(merged, f)
PYEOF
if [[ "${DUMMY:-0}" == 1 ]]; then
  MODEL=${DUMMY_DIR:-$HOME/.cache/gptoss-server/gpt-oss-120b-dummy}
  [[ -f "$MODEL/config.json" ]] || "$PY" -m server dummy-model-dir --out "$MODEL"
  "$PY" - "$CONFIG" <<'PYEOF'
import sys

import yaml

path = sys.argv[1]
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg["engine"]["vllm"]["load_format"] = "dummy"
with open(path, "w") as f:
    yaml.safe_dump(cfg, f)
PYEOF
fi
# shellcheck disable=SC2086
exec "$PY" scripts/race.py --gpu --sequential --ours-config "$CONFIG" --model "$MODEL" \
  --concurrency 1 8 32 128 --provider-concurrency 32 --prompt-tokens 128 --output-tokens 256 \
  --requests-per-concurrency 4 --ready-timeout 1800 --out-dir bench-results/gpu ${RACE_ARGS:-}
