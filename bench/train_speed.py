"""Training throughput (non-padding tokens/s) and peak GPU memory: Unsloth vs plain transformers + PEFT,
the course default vs the original tutorial's configuration, at 16-bit and 4-bit.

    python bench/train_speed.py                 # every configuration, one GPU, prints a table + ratios
    python bench/train_speed.py --only default  # configurations whose name contains "default"
    python bench/train_speed.py --only tutorial,default,packed --bits 16   # the 2026-12-01 comparison

Model: ERNIE-4.5-0.3B's full shape with random weights (course_lib; the Hub is out of reach on the GPU
machine), so speed and memory are real, losses are not. Data: the bundled word problems through ERNIE's
chat template, so sequence lengths are the bundled set's (tokenized with the slice's tokenizer).
Unsloth patches transformers when imported, so the Unsloth runs and the plain runs happen in two separate
worker processes; each configuration warms up before its timed steps, and the device is synchronised at
both ends of the timed region. Results: JSON lines on stdout and in --out, each worker's whole output beside
it (--out with .unsloth.log / .peft.log). Each result also carries the model FLOPs per second (see
`flops_per_step` for the formula) and Unsloth's count of packed attention calls by route.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
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
    # Past the default (2026-12-01): more packed rows a step, or longer ones, to get past launch overhead.
    dict(name="packed-b16", backend="unsloth", bits=16, **dict(COURSE_DEFAULT, batch=16)),
    dict(name="packed-b32", backend="unsloth", bits=16, **dict(COURSE_DEFAULT, batch=32)),
    dict(name="packed-b8-len2048", backend="unsloth", bits=16, **dict(COURSE_DEFAULT, max_length=2048)),
]

# The H200's dense bf16/fp16 tensor-core peak (data sheet), and what an 8192^3 bf16 matmul ran at on one of
# the lent machines (/work/.library/device/KINDS.md, 2026-10-28): MFU is given against both.
PEAK_TFLOPS = {"spec": 989.0, "matmul": 790.0}


def label(config: dict) -> str:
    return f"{config['name']} / {config['backend']} / {config['bits']}-bit"


class TokenCounter:
    """Wraps the trainer's collator and records, for every micro-batch in order, its non-padding tokens and
    the sum of l(l+1) over its examples (l tokens each): causal attention's work grows with that sum."""

    def __init__(self, collator):
        self.collator, self.tokens, self.attention_pairs, self.examples = collator, [], [], []

    def __call__(self, examples):
        batch = self.collator(examples)
        mask = batch.get("attention_mask")
        # padding-free / packed batches carry no attention mask: every token is real
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        lengths = example_lengths(batch)
        self.attention_pairs.append(sum(length * (length + 1) for length in lengths))
        self.examples.append(len(lengths))
        return batch


def example_lengths(batch) -> list[int]:
    """Tokens of each example: padded rows by their mask, padding-free rows where the positions restart."""
    mask = batch.get("attention_mask")
    if mask is not None or "position_ids" not in batch:
        return [int(n) for n in (mask.sum(dim=1) if mask is not None else [batch["input_ids"].shape[1]])]
    starts = (batch["position_ids"].flatten() == 0).nonzero().flatten().tolist() + [batch["position_ids"].numel()]
    return [end - start for start, end in zip(starts, starts[1:])]


def flops_per_step(model_config: dict, lora_r: int, tokens: float, attention_pairs: float) -> dict:
    """Training FLOPs of one step, two ways (matmuls only; norms, activations and the optimizer left out).

    N counts the weights every token multiplies with: q, k, v, o and the three MLP projections of each layer,
    plus the (tied) output head; the embedding lookup is free. LoRA's frozen base weights need no weight
    gradients, so a token costs 2N forward + 2N backward (gradients w.r.t. the inputs only): "lora" is 4N,
    plus the adapters (forward, and twice that backward). "6n" is the full fine-tuning convention (2N forward,
    4N backward), comparable with published MFU figures; it overstates LoRA's useful work by about 1.5x.
    Both add causal attention: per layer 2 x heads x head_dim x l(l+1) forward (scores and values, one
    example of l tokens attending to its own past), and twice that backward. Gradient checkpointing's
    recomputed forward is not counted in either: it is work the hardware does, not work the model needs.
    """
    h, layers, inner = model_config["hidden_size"], model_config["num_hidden_layers"], model_config["intermediate_size"]
    q = model_config["num_attention_heads"] * model_config["head_dim"]
    kv = model_config["num_key_value_heads"] * model_config["head_dim"]
    projections = [(h, q), (h, kv), (h, kv), (q, h), (h, inner), (h, inner), (inner, h)]
    n = layers * sum(a * b for a, b in projections) + model_config["vocab_size"] * h
    lora_forward = layers * sum(2 * lora_r * (a + b) for a, b in projections)
    attention_forward = layers * 2 * q * attention_pairs
    return dict(n=n, lora=tokens * (4 * n + 3 * lora_forward) + 3 * attention_forward,
                six_n=tokens * 6 * n + 3 * attention_forward)


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


def attention_counters(backend: str) -> dict:
    """Unsloth's own count of packed attention calls: "fast" (eager) and "compiled" (inside its compiled
    blocks) ran its varlen kernel over the examples' boundaries, "fallback" the wrapped sdpa."""
    if backend != "unsloth":
        return {}
    try:
        from unsloth.utils.hf_packed_attention import HF_PACKED_ATTENTION_STATS
    except ImportError:  # Unsloth's CPU backend: its GPU modules need triton and do not import
        return {}
    return dict(HF_PACKED_ATTENTION_STATS)


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
    counters_before = attention_counters(config["backend"])
    started = time.perf_counter()
    trainer.train()
    per_step = config["accumulation"]
    timed = counter.tokens[WARMUP_STEPS * per_step:(WARMUP_STEPS + TIMED_STEPS) * per_step]
    pairs = counter.attention_pairs[WARMUP_STEPS * per_step:(WARMUP_STEPS + TIMED_STEPS) * per_step]
    seconds = stamps[WARMUP_STEPS + TIMED_STEPS] - stamps[WARMUP_STEPS]
    counters_after = attention_counters(config["backend"])
    flops = flops_per_step(model.config.to_dict(), 16, sum(timed) / TIMED_STEPS, sum(pairs) / TIMED_STEPS)
    return dict(config=config, label=label(config), precision=precision.name,
                attn_implementation=model.config._attn_implementation,
                unsloth_attention_calls={k: v - counters_before.get(k, 0) for k, v in counters_after.items()},
                examples_per_step=sum(counter.examples[WARMUP_STEPS * per_step:(WARMUP_STEPS + TIMED_STEPS) * per_step])
                / TIMED_STEPS,
                lora_tflops_per_s=flops["lora"] / (seconds / TIMED_STEPS) / 1e12,
                six_n_tflops_per_s=flops["six_n"] / (seconds / TIMED_STEPS) / 1e12, n_matmul=flops["n"],
                padding_free=bool(getattr(trainer, "padding_free", False)),
                tokens_per_s=sum(timed) / seconds, seconds_per_step=seconds / TIMED_STEPS,
                tokens_per_step=sum(timed) / TIMED_STEPS, warmup_s=stamps[WARMUP_STEPS] - started,
                peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30 if gpu else 0.0,
                peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30 if gpu else 0.0,
                losses=[row["loss"] for row in trainer.state.log_history if "loss" in row])


def chosen(only: str, bits: int | None, smoke: bool) -> list[dict]:
    """Configurations whose name contains one of the comma-separated words of `only` (all when empty)."""
    words = [word for word in only.split(",") if word] or [""]
    return [c for c in CONFIGS if any(word in c["name"] for word in words)
            and (bits is None or c["bits"] == bits) and not (smoke and c["bits"] == 4)]


def worker(backend: str, only: str, bits: int | None, path: str, smoke: bool, reverse: bool) -> None:
    """One process per backend: Unsloth must be imported first there, and never in the plain one."""
    if backend == "unsloth":
        import unsloth  # noqa: F401
    import gc

    import torch

    configs = chosen(only, bits, smoke)
    for config in reversed(configs) if reverse else configs:
        if config["backend"] != backend:
            continue
        try:
            result = run_one(config, path)
        except Exception:  # one configuration out of memory, say, must not cost the others their run
            traceback.print_exc()
            print(f"FAILED {label(config)}", flush=True)
            continue
        print("RESULT " + json.dumps(result), flush=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def table(results: list[dict]) -> str:
    lines = ["| configuration | precision | batch x accum | packing | max_length | examples/step | non-padding tokens/s "
             "| s/step | peak GiB (reserved) | MFU 4N+LoRA (of 989 / 790) | 6N convention (of 989 / 790) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["config"]
        mfu = {key: " / ".join(f"{r[key] / peak:.1%}" for peak in PEAK_TFLOPS.values())
               for key in ("lora_tflops_per_s", "six_n_tflops_per_s") if key in r}
        lines.append(f"| {r['label']} | {r['precision']} | {c['batch']} x {c['accumulation']} | {c['packing']} | "
                     f"{c['max_length']} | {r.get('examples_per_step', float('nan')):.0f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['seconds_per_step']:.3f} | {r['peak_reserved_gib']:.2f} | "
                     f"{mfu.get('lora_tflops_per_s', '-')} | {mfu.get('six_n_tflops_per_s', '-')} |")
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
        for name in ("packed-b16", "packed-b32", "packed-b8-len2048"):
            if (name, "unsloth", bits) in speed and ("tutorial", "unsloth", bits) in speed:
                lines.append(f"{name} / tutorial configuration, {bits}-bit: "
                             f"{speed[name, 'unsloth', bits] / speed['tutorial', 'unsloth', bits]:.2f}x (target >= 3x)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run configurations whose name contains one of these words "
                                                   "(comma-separated)")
    parser.add_argument("--bits", type=int, choices=[4, 16], help="only the 4-bit or only the 16-bit runs")
    parser.add_argument("--reverse", action="store_true", help="run them last to first: does the order matter?")
    parser.add_argument("--out", type=Path, default=Path("bench/results.jsonl"))
    parser.add_argument("--smoke", action="store_true", help="CPU check of the code path: tiny slice, 16-bit, 5 steps")
    parser.add_argument("--worker", choices=["unsloth", "peft"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        global WARMUP_STEPS, TIMED_STEPS
        WARMUP_STEPS, TIMED_STEPS = 2, 3
    if args.worker:
        return worker(args.worker, args.only, args.bits, args.model, args.smoke, args.reverse)

    os.environ["ERNIE_COURSE_MODEL"] = "tiny" if args.smoke else "random-0.3b"
    from course_lib.models import resolve_model

    path = resolve_model().name_or_path  # built once, before the workers start
    results = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for backend in ("unsloth", "peft"):
        if not any(c["backend"] == backend for c in chosen(args.only, args.bits, args.smoke)):
            continue
        command = [sys.executable, __file__, "--worker", backend, "--only", args.only, "--model", path]
        command += (["--smoke"] if args.smoke else []) + (["--bits", str(args.bits)] if args.bits else [])
        command += ["--reverse"] if args.reverse else []
        # Straight to a file, the raw log of the run: what a cut-off run measured so far is still there.
        log = args.out.with_suffix(f".{backend}.log")
        with log.open("w") as sink:
            process = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, text=True)
        output = log.read_text()
        results += [json.loads(line[7:]) for line in output.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0:
            print(f"{backend} worker failed:\n{output[-6000:]}", file=sys.stderr)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(table(results))
    print("\n".join(ratios(results)))


if __name__ == "__main__":
    main()
