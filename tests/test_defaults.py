"""The course's defaults live in course_lib/defaults.py; everything that repeats them must agree: every notebook's
settings cell (both editions), examples/finetune_ernie.py's argument defaults, the budget estimator, and the
numbers the prose quotes. A planted disagreement (tests below) shows the comparison can fail."""

import ast
import importlib.util
import inspect
import re
from pathlib import Path

import jupytext
import pytest

from course_lib import budget, defaults
from course_lib.tiny_ernie import FULL_SHAPE

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*/[0-9][0-9]_*.py"))


def settings_cell(source_text: str) -> dict:
    """NAME -> value of each constant assigned in the cell tagged "parameters" (values that are not literals,
    such as paths built by a function, are left out)."""
    notebook = jupytext.reads(source_text, fmt="py:percent")
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    found = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def disagreements(values: dict) -> list[str]:
    course = defaults.as_dict()
    return [f"{name} = {value!r}, the course's default is {course[name]!r}" for name, value in values.items()
            if name in course and value != course[name]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_settings_cell_agrees_with_the_defaults(path):
    values = settings_cell(path.read_text())
    assert values and disagreements(values) == []


def test_the_notebooks_cover_the_defaults():
    named = {name for path in NOTEBOOKS for name in settings_cell(path.read_text())}
    assert set(defaults.as_dict()) <= named, set(defaults.as_dict()) - named


def test_a_changed_default_in_one_notebook_is_caught():
    text = (ROOT / "notebooks" / "en" / "04_training.py").read_text().replace("LORA_R = 16 ", "LORA_R = 32 ", 1)
    assert disagreements(settings_cell(text)) == ["LORA_R = 32, the course's default is 16"]


def copy_out_parser():
    spec = importlib.util.spec_from_file_location("finetune_ernie", ROOT / "examples" / "finetune_ernie.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_copy_out_script_defaults_agree():
    script = copy_out_parser()
    args = script.parse_args(["--data", "x.jsonl", "--output", "out"])
    assert (args.model, args.max_seq_length, args.r, args.learning_rate, args.max_steps, args.batch_size,
            args.grad_accumulation, args.seed, not args.no_packing, args.load_in_4bit) == (
        defaults.MODEL_NAME, defaults.MAX_SEQ_LENGTH, defaults.LORA_R, defaults.LEARNING_RATE, defaults.MAX_STEPS,
        defaults.BATCH_SIZE, defaults.GRAD_ACCUMULATION, defaults.SEED, defaults.PACKING, defaults.LOAD_IN_4BIT)
    assert script.TARGET_MODULES == defaults.TARGET_MODULES


def test_the_budget_estimates_the_default_run():
    parameters = inspect.signature(budget.estimate).parameters
    assert {name: parameters[name].default for name in ("model", "r", "batch", "max_length", "packing", "steps")} == {
        "model": defaults.MODEL_NAME, "r": defaults.LORA_R, "batch": defaults.BATCH_SIZE,
        "max_length": defaults.MAX_LENGTH, "packing": defaults.PACKING, "steps": defaults.MAX_STEPS}


def lora_parameters_0_3b(r: int) -> int:
    """r x (in + out) for the seven projections of each of ERNIE-4.5-0.3B's blocks, from its published shape."""
    hidden, inter, heads = FULL_SHAPE["hidden_size"], FULL_SHAPE["intermediate_size"], FULL_SHAPE["num_attention_heads"]
    q, kv = heads * FULL_SHAPE["head_dim"], FULL_SHAPE["num_key_value_heads"] * FULL_SHAPE["head_dim"]
    per_block = (hidden + q) + 2 * (hidden + kv) + (q + hidden) + 3 * (hidden + inter)
    return r * per_block * FULL_SHAPE["num_hidden_layers"]


def quoted(r: int) -> dict[str, str]:
    """Where the prose quotes a number derived from the defaults, and what it must say."""
    lora = f"{lora_parameters_0_3b(r):,}"
    return {"notebooks/en/02_lora_configuration.py": f"gives {lora} parameters",
            "notebooks/zh/02_lora_configuration.py": lora}


def test_numbers_quoted_in_the_prose_follow_the_defaults():
    assert budget.SHAPES["0.3b"].lora_params_per_rank * defaults.LORA_R == lora_parameters_0_3b(defaults.LORA_R)
    for path, words in quoted(defaults.LORA_R).items():
        assert words in (ROOT / path).read_text(), f"{path} should say {words!r}"


def test_a_quoted_number_from_another_rank_is_caught():
    assert quoted(defaults.LORA_R)["notebooks/en/02_lora_configuration.py"] == "gives 6,045,696 parameters"
    words = quoted(32)["notebooks/en/02_lora_configuration.py"]
    assert words not in (ROOT / "notebooks/en/02_lora_configuration.py").read_text()
