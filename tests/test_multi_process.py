"""examples/finetune_ernie.py under `accelerate launch` with examples/accelerate/ddp.yaml, on two CPU processes
(torch.distributed over gloo): data parallel must end with the adapter that one process makes from the same
effective batch (batch x accumulation x processes), and a different effective batch must not.

Tolerance: both runs do the same float32 arithmetic on the same examples in the same order; only the sum of
the two halves of each step's gradient is formed in another place (gloo's all-reduce instead of gradient
accumulation). Measured here: identical to the bit. 1e-6 leaves room for another machine's reduction order and
is still far below what a different effective batch changes (~5e-4 after 5 steps, with lora_B at ~4e-4)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from course_lib.data import bundled_rows
from course_lib.tiny_ernie import ensure_tiny_ernie
from processes import free_port

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-6
STEPS = 5  # the script logs every 5 steps


def train(tmp: Path, data: Path, name: str, processes: int, batch: int, accumulation: int) -> dict:
    output = tmp / name
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "examples/accelerate/ddp.yaml"), "--num_processes", str(processes),
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               str(ROOT / "examples/finetune_ernie.py"), "--model", str(ensure_tiny_ernie("tiny")),
               "--data", str(data), "--output", str(output), "--max-steps", str(STEPS),
               "--batch-size", str(batch), "--grad-accumulation", str(accumulation),
               "--max-seq-length", "256", "--no-merge"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # one thread: same sums in every process
    log = tmp / f"{name}.log"
    with log.open("w") as sink:
        launcher = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = launcher.wait(timeout=600)
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and every training process under it
                launcher.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    effective = batch * accumulation * processes
    assert (f"effective batch: {batch} per GPU x {accumulation} accumulation x {processes} processes = "
            f"{effective} sequences per step") in text
    return load_file(output / "lora-adapter" / "adapter_model.safetensors")


def largest_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max((first[key] - second[key]).abs().max().item() for key in first)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi-process")
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in bundled_rows("train")[:40]))
    return {
        "two processes, batch 2": train(tmp, data, "two", processes=2, batch=2, accumulation=1),
        "one process, batch 2 x 2 accumulation": train(tmp, data, "one", processes=1, batch=2, accumulation=2),
        "one process, batch 2": train(tmp, data, "smaller", processes=1, batch=2, accumulation=1),
    }


def test_two_processes_end_with_the_one_process_adapter(runs):
    two, one = runs["two processes, batch 2"], runs["one process, batch 2 x 2 accumulation"]
    assert any(value.abs().max() > 0 for key, value in two.items() if "lora_B" in key)  # it trained
    assert largest_difference(two, one) <= TOLERANCE


def test_a_different_effective_batch_is_told_apart(runs):
    """The planted fault: the same data and steps with half the effective batch must exceed the tolerance."""
    two, smaller = runs["two processes, batch 2"], runs["one process, batch 2"]
    assert largest_difference(two, smaller) > 100 * TOLERANCE


def launcher_environment(config: str) -> dict:
    """The environment `accelerate launch --config_file examples/accelerate/CONFIG.yaml` gives each process."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(ROOT / f"examples/accelerate/{config}.yaml"),
                                               str(ROOT / "examples/finetune_ernie.py")])
    args, defaults, _ = _validate_launch_command(args)
    if not args.use_deepspeed:
        return prepare_multi_gpu_env(args)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    return prepare_deepspeed_cmd_env(args)[1]


def test_the_sharded_configurations_ask_for_what_their_comments_say():
    """Static: they were not run sharded here (no GPUs; on a CPU the Trainer does not apply FSDP)."""
    fsdp = launcher_environment("fsdp_qlora")
    assert (fsdp["ACCELERATE_USE_FSDP"], fsdp["FSDP_VERSION"], fsdp["FSDP_STATE_DICT_TYPE"]) == (
        "true", "2", "FULL_STATE_DICT")  # version 2 is what Unsloth's FSDP2 QLoRA path looks for
    assert set(fsdp["FSDP_TRANSFORMER_CLS_TO_WRAP"].split(",")) == {"Ernie4_5_MoeDecoderLayer", "Ernie4_5DecoderLayer"}
    zero = launcher_environment("deepspeed_zero3")
    assert zero["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3" and zero["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    assert "ACCELERATE_USE_FSDP" not in launcher_environment("ddp")
