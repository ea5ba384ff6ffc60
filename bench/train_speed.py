"""Training throughput (non-padding tokens/s) and peak GPU memory: Unsloth vs plain transformers + PEFT,
the course default vs the original tutorial's configuration, at 16-bit and 4-bit.

    python bench/train_speed.py                 # every configuration, one GPU, prints a table + ratios
    python bench/train_speed.py --only default  # configurations whose name contains "default"

Model: ERNIE-4.5-0.3B's full shape with random weights (course_lib; the Hub is out of reach on the GPU
machine), so speed and memory are real, losses are not. Data: the bundled word problems through ERNIE's
chat template, so sequence lengths are the bundled set's (tokenized with the slice's tokenizer).
Unsloth patches transformers when imported, so the Unsloth runs and the plain runs happen in two separate
worker processes; each configuration warms up before its timed steps, and the device is synchronised at
both ends of the timed region. Results: JSON lines on stdout and in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WARMUP_STEPS = 5  # Unsloth compiles during the first step (~30 s): never timed
TIMED_STEPS = 30

# The course default, chosen from the 2026-11-28 run (bench/RESULTS.md): packed rows fill each step.
COURSE_DEFAULT = dict(batch=8, accumulation=1, packing=True, max_length=1024, precision="auto", rslora=False)
UNPACKED = dict(COURSE_DEFAULT, packing=False)  # the first default: 8 padded examples a step
TUTORIAL = dict(batch=1, accumulation=8, packing=True, max_length=4096, precision="fp16", rslora=True)
CONFIGS = [
    dict(name="default", backend="unsloth", bits=16, **COURSE_DEFAULT),
    dict(name="default", backend="unsloth", bits=4, **COURSE_DEFAULT),
    dict(name="batch8", backend="unsloth", bits=16, **UNPACKED),
    dict(name="batch8", backend="peft", bits=16, **UNPACKED),
    dict(name="batch8", backend="unsloth", bits=4, **UNPACKED),
    dict(name="batch8", backend="peft", bits=4, **UNPACKED),
    dict(name="tutorial", backend="unsloth", bits=16, **TUTORIAL),
    dict(name="tutorial", backend="unsloth", bits=4, **TUTORIAL),
    dict(name="batch16", backend="unsloth", bits=16, **dict(UNPACKED, batch=16)),
]


def label(config: dict) -> str:
    return f"{config['name']} / {config['backend']} / {config['bits']}-bit"


class TokenCounter:
    """Wraps the trainer's collator and records the non-padding tokens of every micro-batch, in order."""

    def __init__(self, collator):
        self.collator, self.tokens = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        mask = batch.get("attention_mask")
        # padding-free / packed batches carry no attention mask: every token is real
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch


def load_model(config: dict, path: str, dtype):
    import torch

    if config["backend"] == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(model_name=path, max_seq_length=config["max_length"],
                                                             dtype=dtype, load_in_4bit=config["bits"] == 4)
        model = FastLanguageModel.get_peft_model(
            model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none", target_modules=TARGETS,
            use_gradient_checkpointing="unsloth", random_state=3407, use_rslora=config["rslora"])
        return model, tokenizer
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype) if config["bits"] == 4 else None
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, quantization_config=quantization,
                                                 device_map={"": 0} if torch.cuda.is_available() else None,
                                                 attn_implementation="sdpa")
    if quantization is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                                             target_modules=TARGETS, use_rslora=config["rslora"]))
    return model, AutoTokenizer.from_pretrained(path)


TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def run_one(config: dict, path: str) -> dict:
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from course_lib.data import load_math_dataset, to_messages
    from course_lib.environment import choose_precision

    gpu = torch.cuda.is_available()
    capability = torch.cuda.get_device_capability() if gpu else None
    force = None if config["precision"] == "auto" or not gpu else config["precision"]
    precision = choose_precision(capability, force=force)
    synchronize = torch.cuda.synchronize if gpu else (lambda: None)
    model, tokenizer = load_model(config, path, precision.torch_dtype)
    rows, _ = load_math_dataset("train", source="bundled")
    dataset = rows.map(to_messages, remove_columns=rows.column_names)

    stamps = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (WARMUP_STEPS, WARMUP_STEPS + TIMED_STEPS):
                synchronize()
                stamps[state.global_step] = time.perf_counter()

    args = SFTConfig(
        output_dir="/tmp/bench-out", max_steps=WARMUP_STEPS + TIMED_STEPS,
        per_device_train_batch_size=config["batch"], gradient_accumulation_steps=config["accumulation"],
        learning_rate=2e-4, warmup_steps=2, optim="adamw_8bit", weight_decay=0.01, logging_steps=5,
        save_strategy="no", max_length=config["max_length"], packing=config["packing"], assistant_only_loss=True,
        bf16=precision.bf16, fp16=precision.fp16, use_cpu=not gpu, gradient_checkpointing=config["backend"] == "peft",
        seed=3407, report_to="none", dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset, args=args,
                         callbacks=[Clock()])
    counter = TokenCounter(trainer.data_collator)
    trainer.data_collator = counter
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    per_step = config["accumulation"]
    timed = counter.tokens[WARMUP_STEPS * per_step:(WARMUP_STEPS + TIMED_STEPS) * per_step]
    seconds = stamps[WARMUP_STEPS + TIMED_STEPS] - stamps[WARMUP_STEPS]
    return dict(config=config, label=label(config), precision=precision.name,
                padding_free=bool(getattr(trainer, "padding_free", False)),
                tokens_per_s=sum(timed) / seconds, seconds_per_step=seconds / TIMED_STEPS,
                tokens_per_step=sum(timed) / TIMED_STEPS, warmup_s=stamps[WARMUP_STEPS] - started,
                peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30 if gpu else 0.0,
                peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30 if gpu else 0.0,
                losses=[row["loss"] for row in trainer.state.log_history if "loss" in row])


def worker(backend: str, only: str, path: str, smoke: bool) -> None:
    """One process per backend: Unsloth must be imported first there, and never in the plain one."""
    if backend == "unsloth":
        import unsloth  # noqa: F401
    import gc

    import torch

    for config in CONFIGS:
        if config["backend"] != backend or only not in config["name"] or (smoke and config["bits"] == 4):
            continue
        result = run_one(config, path)
        print("RESULT " + json.dumps(result), flush=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def table(results: list[dict]) -> str:
    lines = ["| configuration | precision | batch x accum | packing | max_length | non-padding tokens/s | s/step | peak GiB (reserved) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["config"]
        lines.append(f"| {r['label']} | {r['precision']} | {c['batch']} x {c['accumulation']} | {c['packing']} | "
                     f"{c['max_length']} | {r['tokens_per_s']:,.0f} | {r['seconds_per_step']:.3f} | "
                     f"{r['peak_reserved_gib']:.2f} |")
    return "\n".join(lines)


def ratios(results: list[dict]) -> list[str]:
    speed = {(r["config"]["name"], r["config"]["backend"], r["config"]["bits"]): r["tokens_per_s"] for r in results}
    lines = []
    for bits in (16, 4):
        if ("batch8", "unsloth", bits) in speed and ("batch8", "peft", bits) in speed:
            lines.append(f"Unsloth / plain PEFT, batch 8 unpacked, {bits}-bit: "
                         f"{speed['batch8', 'unsloth', bits] / speed['batch8', 'peft', bits]:.2f}x (target >= 2.0x)")
        if ("default", "unsloth", bits) in speed and ("tutorial", "unsloth", bits) in speed:
            lines.append(f"course default / tutorial configuration, {bits}-bit: "
                         f"{speed['default', 'unsloth', bits] / speed['tutorial', 'unsloth', bits]:.2f}x (target >= 3x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run configurations whose name contains this")
    parser.add_argument("--out", type=Path, default=Path("bench/results.jsonl"))
    parser.add_argument("--smoke", action="store_true", help="CPU check of the code path: tiny slice, 16-bit, 5 steps")
    parser.add_argument("--worker", choices=["unsloth", "peft"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        global WARMUP_STEPS, TIMED_STEPS
        WARMUP_STEPS, TIMED_STEPS = 2, 3
    if args.worker:
        return worker(args.worker, args.only, args.model, args.smoke)

    os.environ["ERNIE_COURSE_MODEL"] = "tiny" if args.smoke else "random-0.3b"
    from course_lib.models import resolve_model

    path = resolve_model().name_or_path  # built once, before the workers start
    results = []
    for backend in ("unsloth", "peft"):
        command = [sys.executable, __file__, "--worker", backend, "--only", args.only, "--model", path]
        command += ["--smoke"] if args.smoke else []
        process = subprocess.run(command, capture_output=True, text=True)
        results += [json.loads(line[7:]) for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0:
            print(f"{backend} worker failed:\n{process.stdout[-3000:]}\n{process.stderr[-6000:]}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(table(results))
    print("\n".join(ratios(results)))


if __name__ == "__main__":
    main()
