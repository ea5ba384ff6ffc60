"""Execute the course's notebooks top to bottom, each in a fresh kernel, and keep the executed copies.

    python scripts/run_course.py                       # all five English notebooks -> runs/executed/en/
    python scripts/run_course.py --edition zh 04       # one notebook of the Chinese edition
    python scripts/run_course.py --set MAX_STEPS=30    # override a settings-cell constant, as papermill does
    python scripts/run_course.py --measure-gpu         # also record each kernel's peak GPU memory (bench/run_gpu.sh)

Models, data and the merged model land in $ERNIE_COURSE_WORK (default here: runs/work). Per-notebook wall
times are printed and written to runs/executed/<edition>/timings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def inject_parameters(notebook, assignments: list[str]) -> None:
    """Add a cell after the one tagged "parameters" that reassigns the given constants (papermill's convention)."""
    if not assignments:
        return
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "# injected by scripts/run_course.py --set\n" + "\n".join(assignments)
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, cell)


MEASURE_GPU = """# appended by scripts/run_course.py --measure-gpu
import json, torch
print("PEAK_GPU " + json.dumps({"peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
                                "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}))"""


def run(path: Path, out_dir: Path, assignments: list[str], timeout: int, measure_gpu: bool) -> dict:
    notebook = nbformat.read(path, as_version=4)
    inject_parameters(notebook, assignments)
    if measure_gpu:
        notebook.cells.append(nbformat.v4.new_code_cell(MEASURE_GPU))
    start = time.perf_counter()
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out_dir / path.name)  # also when it failed: the traceback is in the copy
    result = {"seconds": round(time.perf_counter() - start, 1)}
    if measure_gpu:
        text = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
        result.update(json.loads(text.split("PEAK_GPU ", 1)[1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="numbers or name prefixes (default: all)")
    parser.add_argument("--edition", default="en")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "executed")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--measure-gpu", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("ERNIE_COURSE_WORK", str(ROOT / "runs" / "work"))
    paths = sorted((ROOT / "notebooks" / args.edition).glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in args.notebooks)]
    out_dir = args.out / args.edition
    load = os.getloadavg()[0]  # times depend on it: quote them with the machine and the load
    timings = {}
    for path in paths:
        print(f"running {path.relative_to(ROOT)} ...", flush=True)
        timings[path.name] = run(path, out_dir, args.assignments, args.timeout, args.measure_gpu)
        print(f"  done: {timings[path.name]} -> {out_dir / path.name}", flush=True)
        # Rewritten after every notebook, so that a run cut short still leaves what it measured.
        (out_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    total = sum(t["seconds"] for t in timings.values())
    print(f"\nmeasured on {platform.machine()} with {os.cpu_count()} cores, load average {load:.1f} at the start:")
    for name, timing in timings.items():
        print(f"  {name:<32} {timing['seconds']:>7.1f} s")
    print(f"all {len(paths)} notebooks in {total:.0f} s; work folder: {os.environ['ERNIE_COURSE_WORK']}")


if __name__ == "__main__":
    main()
