"""examples/finetune_ernie.py: the whole pipeline in one plain file, run for real on the tiny slice."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import ernie, fallbacks, tiny_ernie
from course_lib.data import bundled_rows
from course_lib.models import resolve_model

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "finetune_ernie.py"


def load_script():
    spec = importlib.util.spec_from_file_location("finetune_ernie", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_uses_no_course_helpers():
    assert "course_lib" not in SCRIPT.read_text()


def test_script_template_is_the_course_template():
    assert load_script().TRAINING_CHAT_TEMPLATE == ernie.TRAINING_CHAT_TEMPLATE


def test_script_constants_are_the_course_constants():
    script = load_script()
    assert script.TARGET_MODULES == ernie.LORA_TARGETS
    assert script.END_OF_TURN == ernie.END_OF_TURN


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_script_trains_saves_merges_and_serves(tmp_path, capsys):
    """--serve: transformers serve on 127.0.0.1 answers as in-process generate does (else the script exits),
    and is stopped afterwards."""
    import psutil
    from transformers import AutoModelForCausalLM

    model = resolve_model(mode="tiny").name_or_path
    data = write_jsonl(tmp_path / "mine.jsonl", bundled_rows("train")[:200])
    losses = load_script().main(["--model", model, "--data", str(data), "--output", str(tmp_path / "out"),
                                 "--max-steps", "20", "--learning-rate", "1e-3", "--serve", "--max-new-tokens", "48"])
    assert losses[-1] < losses[0], losses
    printed = capsys.readouterr().out
    assert "at http://127.0.0.1:" in printed and "server's answer == in-process generate's: True" in printed
    merged_dir = str((tmp_path / "out" / "merged-16bit").resolve())
    assert not [p for p in psutil.process_iter(["cmdline"]) if merged_dir in (p.info["cmdline"] or [])]
    assert (tmp_path / "out" / "lora-adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "merged-16bit", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    ids = torch.tensor([[3, 10, 11, 12, 13]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-3)  # training changed the weights


def test_script_names_missing_columns(tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "hi", "response": "hello"}])
    result = subprocess.run([sys.executable, str(SCRIPT), "--model", resolve_model(mode="tiny").name_or_path,
                             "--data", str(data), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "no column(s) ['answer', 'question']; found ['prompt', 'response']" in result.stderr


def test_serve_without_a_merged_model_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        load_script().parse_args(["--data", "x.jsonl", "--output", "out", "--serve", "--no-merge"])
    assert exited.value.code == 2
    assert "--serve needs the merged model: transformers serve cannot load an adapter" in capsys.readouterr().err


def test_fallback_trains_an_adapter_only_when_missing(tmp_path):
    adapter = tmp_path / "lora-adapter"
    message = fallbacks.ensure_adapter(adapter, resolve_model(mode="tiny").name_or_path, max_steps=5)
    assert "was not found" in message and (adapter / "adapter_model.safetensors").exists()
    stamp = (adapter / "adapter_model.safetensors").stat().st_mtime_ns
    assert "found notebook 4's adapter" in fallbacks.ensure_adapter(adapter, "unused")
    assert (adapter / "adapter_model.safetensors").stat().st_mtime_ns == stamp


def test_fallback_refuses_a_folder_the_script_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="lora-adapter"):
        fallbacks.ensure_adapter(tmp_path / "my-adapter", "unused")
