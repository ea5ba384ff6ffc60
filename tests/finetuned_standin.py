"""The stand-in fine-tuned by examples/finetune_ernie.py (the course's pipeline in one file: Unsloth, TRL, LoRA,
the saving format, Unsloth's merge) until it has memorised a few training answers.

Shared by the tests of what the saved folders do (templates, stops, GGUF) and by scripts/llama_cpp_check.py.
A memorised answer is one the model is sure of, token by token, so two engines that compute the same function
must give it word for word; small rounding differences cannot flip a near tie.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "finetune_ernie.py"
MEMORISED_ROWS = 4  # the first training rows
STEPS = 40  # token accuracy reaches 100% by step 25 (loss ~0.05), 0.01 by step 40
LEARNING_RATE = 5e-3  # far above the course's 2e-4: the point is to memorise, fast


@dataclass(frozen=True)
class Finetuned:
    adapter: Path
    merged: Path
    rows: list  # the memorised question/answer rows


_built: dict[Path, Finetuned] = {}


def load_script():
    spec = importlib.util.spec_from_file_location("finetune_ernie", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def memorised_model(output: Path) -> Finetuned:
    """Fine-tune the stand-in on MEMORISED_ROWS training rows into `output` (lora-adapter/, merged-16bit/), once
    per process and folder."""
    from course_lib.data import bundled_rows
    from course_lib.models import resolve_model

    output = Path(output)
    if output not in _built:
        rows = bundled_rows("train")[:MEMORISED_ROWS]
        output.mkdir(parents=True, exist_ok=True)
        data = output / "memorise.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        load_script().main(["--model", resolve_model(mode="tiny").name_or_path, "--data", str(data),
                            "--output", str(output), "--max-steps", str(STEPS),
                            "--learning-rate", str(LEARNING_RATE), "--batch-size", str(MEMORISED_ROWS)])
        _built[output] = Finetuned(output / "lora-adapter", output / "merged-16bit", rows)
    return _built[output]
