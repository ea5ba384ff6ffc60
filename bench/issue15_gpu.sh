#!/usr/bin/env bash
# The 2026-12-01 GPU run in one call (the session's device time is short, and every call restarts nothing
# only while the machine is warm): the packed-attention check under Unsloth in bf16 and fp16, then the
# throughput comparison past the tutorial's configuration. Each step has its own time limit so that the
# second still runs when the first hangs; every log goes to OUT_DIR as it is written.
#   usage, from the repository root with the carried packages on PYTHONPATH:  bench/issue15_gpu.sh OUT_DIR
#   SMOKE=1 (on a CPU, with .venv/bin first on PATH): both scripts' --smoke, one throughput configuration
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: bench/issue15_gpu.sh OUT_DIR}")
mkdir -p "$out"
export ERNIE_COURSE_WORK=/tmp/gpu-work PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"
  python3 -c "from importlib.metadata import version; import torch
for name in ('torch', 'transformers', 'peft', 'trl', 'datasets', 'accelerate', 'bitsandbytes', 'unsloth', 'unsloth_zoo'):
    print(name, version(name))
print('cuda', torch.version.cuda, 'capability', torch.cuda.get_device_capability())"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
timeout "${PACKING_S:-240}" python3 bench/packing_gpu.py ${SMOKE:+--smoke} --out "$out/packing.json" > "$out/packing.log" 2>&1
echo "packing check: rc=$?"
only=tutorial,default,packed; [ -n "${SMOKE:-}" ] && only=default
timeout "${SPEED_S:-330}" python3 bench/train_speed.py ${SMOKE:+--smoke} --only "$only" --bits 16 --out "$out/speed.jsonl" \
  > "$out/speed.log" 2>&1
echo "throughput: rc=$?"
cat "$out/speed.log"
