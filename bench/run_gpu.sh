#!/usr/bin/env bash
# All five notebooks through Unsloth's GPU path at ERNIE-4.5-0.3B's full shape (random weights: the GPU
# machine has no Hub), in the three configurations the course claims work:
#   bf16  - what the course picks on this GPU (compute capability >= 8)
#   fp16  - the T4's choice, forced with ERNIE_COURSE_PRECISION=fp16
#   4bit  - LOAD_IN_4BIT=True (QLoRA), injected after each notebook's settings cell
# Writes, under OUT_DIR, each configuration's executed notebooks, its log, and timings.json (seconds and
# peak GPU memory per notebook). PARALLEL=1 runs the three at once on the one GPU: faster, but their wall
# times then include each other's load.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: bench/run_gpu.sh OUT_DIR}")
mkdir -p "$out"
export ERNIE_COURSE_MODEL=random-0.3b PYTHONUNBUFFERED=1
shared=/tmp/gpu-work-shared
ERNIE_COURSE_WORK=$shared python3 -c "from course_lib.models import resolve_model; print(resolve_model().banner())"

run() {  # NAME [run_course.py arguments...]
  local name=$1; shift
  mkdir -p "/tmp/gpu-work-$name" && ln -sfn "$shared/models" "/tmp/gpu-work-$name/models"
  if ERNIE_COURSE_WORK="/tmp/gpu-work-$name" python3 scripts/run_course.py --measure-gpu --out "$out/$name" "$@" \
       > "$out/$name.log" 2>&1; then
    echo "$name: ok"; cat "$out/$name/en/timings.json"
  else
    echo "$name: FAILED"; tail -40 "$out/$name.log"; return 1
  fi
}

if [ "${PARALLEL:-0}" = 1 ]; then
  run bf16 & a=$!; ERNIE_COURSE_PRECISION=fp16 run fp16 & b=$!; run 4bit --set LOAD_IN_4BIT=True & c=$!
  status=0; for pid in $a $b $c; do wait "$pid" || status=1; done; exit $status
else
  run bf16; ERNIE_COURSE_PRECISION=fp16 run fp16; run 4bit --set LOAD_IN_4BIT=True
fi
