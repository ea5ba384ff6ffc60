"""The static check for old TRL names (tests/old_trl_names.py) on cells of old tutorials, and on the course itself."""

import json
from pathlib import Path

import pytest
from old_trl_names import check_source

ROOT = Path(__file__).resolve().parent.parent


def test_source_of_an_old_tutorial_cell():
    cell = """from trl import SFTTrainer, SFTConfig
!pip install trl
model, tokenizer = FastLanguageModel.from_pretrained(model_name="x", max_seq_length=2048)
args = SFTConfig(output_dir="out", max_seq_length=2048)
trainer = SFTTrainer(model=model, tokenizer=tokenizer, dataset_text_field="text", args=args, **more)
"""
    problems = check_source(cell)
    text = "\n".join(map(str, problems))
    # Unsloth's own max_seq_length (line 3) is left alone; line numbers survive the !pip line
    assert "line 3" not in text
    assert "line 4: SFTConfig(max_seq_length=...)" in text
    assert "line 4: SFTConfig(...) sets neither bf16 nor fp16" in text
    assert "line 5: SFTTrainer(tokenizer=...)" in text and "line 5: SFTTrainer(dataset_text_field=...)" in text
    assert len(problems) == 4


def test_source_with_training_arguments_instead_of_sft_config():
    cell = "args = TrainingArguments(output_dir='o', fp16=True)\ntrainer = SFTTrainer(model=m, args=args)\n"
    (problem,) = check_source(cell)
    assert "TrainingArguments" in problem.what and "SFTConfig" in problem.fix


def test_source_that_does_not_parse():
    (problem,) = check_source("trainer = SFTTrainer(model=model,\n")
    assert "does not parse" in problem.what and "line" in problem.what


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "en").glob("[0-9][0-9]_*.*")) +
                         [ROOT / "examples" / "finetune_ernie.py"], ids=lambda p: p.name)
def test_the_course_itself_uses_current_arguments(path):
    """Every notebook (both files of each pair, the .ipynb with its !pip lines) and the copy-out script."""
    if path.suffix == ".ipynb":
        cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    else:
        cells = [path.read_text()]
    assert [problem for cell in cells for problem in check_source(cell)] == []
