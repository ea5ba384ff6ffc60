#!/usr/bin/env bash
# Creates .venv with exactly the course's pinned packages. Re-running it is cheap: it does nothing while
# the requirement files are unchanged. Set PYTHON to choose the interpreter (default python3.11) and
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu on a laptop whose pip would fetch a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3.11}
torch_pin=torch==2.13.0  # the CPU build on our machines; Colab keeps its own CUDA build

inputs=(requirements.txt requirements-unsloth.txt requirements-dev.txt constraints.txt pyproject.toml scripts/setup.sh)
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$want" ]; then
  echo "setup: $venv is up to date"
else
  start=$SECONDS
  rm -f "$venv/.installed"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$torch_pin"
  "${pip[@]}" -r requirements.txt -r requirements-dev.txt -c constraints.txt
  "${pip[@]}" --no-deps -r requirements-unsloth.txt
  "${pip[@]}" --no-deps --no-build-isolation -e .
  echo "$want" > "$venv/.installed"
  echo "setup: $venv ready in $((SECONDS - start)) s ($(du -sh "$venv" | cut -f1))"
fi
# llama.cpp's GGUF converter, from llama-cpp-python's pinned, hash-checked source distribution (77 MB, into
# $venv/share); a no-op once it is there. Its version and hash live in course_lib/export.py.
"$venv/bin/python" -m course_lib.export fetch
