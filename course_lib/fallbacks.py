"""When a notebook is opened alone: recreate what an earlier notebook would have saved, and say so."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from course_lib.language import tr

CLONE_NAME = "ernie-lora-course"  # the install cell clones the course beside the notebook under this name


def copy_out_script() -> Path:
    """examples/finetune_ernie.py, in this checkout or in the install cell's clone (beside the notebook; on
    Colab /content/ernie-lora-course)."""
    clones = [Path(__file__).resolve().parent.parent, Path.cwd() / CLONE_NAME, Path("/content") / CLONE_NAME]
    for root in clones:
        script = root / "examples" / "finetune_ernie.py"
        if script.exists():
            return script
    raise FileNotFoundError(tr("examples/finetune_ernie.py not found: run notebook 4 first, or clone the course "
                               f"repository to {clones[1]}",
                               f"找不到 examples/finetune_ernie.py：请先运行 notebook 4，或把课程仓库克隆到 {clones[1]}"))


def ensure_adapter(adapter_dir: Path, base_model: str, max_steps: int = 60) -> str:
    """Notebook 4's LoRA adapter in `adapter_dir`; if there is none, train one with the course defaults by
    running the copy-out script (the same Unsloth + TRL calls as notebook 4). Returns what happened."""
    adapter_dir = Path(adapter_dir)
    if (adapter_dir / "adapter_config.json").exists():
        return tr(f"found notebook 4's adapter in {adapter_dir}", f"在 {adapter_dir} 找到了notebook 4 的适配器")
    if adapter_dir.name != "lora-adapter":
        raise ValueError(tr(f"the copy-out script writes to a folder named lora-adapter, not {adapter_dir.name}",
                            f"独立脚本 examples/finetune_ernie.py 写入名为 lora-adapter 的文件夹，而不是 {adapter_dir.name}"))
    from course_lib.data import load_math_dataset

    rows, data_choice = load_math_dataset("train")
    data_file = adapter_dir.parent / "data" / f"{data_choice.source}-train.jsonl"
    data_file.parent.mkdir(parents=True, exist_ok=True)
    data_file.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                                 for q, a in zip(rows["question"], rows["answer"])))
    start = time.perf_counter()
    # The script writes OUTPUT/lora-adapter, so OUTPUT is the adapter's parent folder.
    command = [sys.executable, str(copy_out_script()), "--model", base_model, "--data", str(data_file),
               "--output", str(adapter_dir.parent), "--max-steps", str(max_steps), "--no-merge"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(tr("training the fallback adapter failed:", "训练备用适配器失败：")
                           + f"\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    seconds = time.perf_counter() - start
    return tr(f"notebook 4's adapter was not found: trained one with the course defaults ({max_steps} steps, "
              f"{data_choice.source} data, {seconds:.0f} s) into {adapter_dir}",
              f"没有找到notebook 4 的适配器：已按课程默认设置训练了一个（{max_steps} 步，"
              f"{data_choice.source} 数据，{seconds:.0f} 秒），保存在 {adapter_dir}")
