"""Packed rows on Unsloth's GPU path: does each example get the logits it gets alone, in bf16 and in fp16?

    python bench/packing_gpu.py --out packing.json   # on the GPU: ERNIE-4.5-0.3B's shape, random weights
    python bench/packing_gpu.py --smoke              # on a CPU: the code path only (Unsloth's CPU backend)

For each precision: FastLanguageModel loads the model, get_peft_model adds the benchmark's adapters (B starts
at zero, so the logits are the base model's), and an SFTTrainer with packing=True is built only for its
collator, which Unsloth wraps: that collator builds the packed row here, as it does in training. Then
`course_lib.packing.check_packing` compares it with each example alone, in train mode (what training runs)
and in eval mode; TRL's plain collator (no `packed_seq_lengths`) shows transformers' own block mask on the
same GPU. Unsloth's counters say which attention ran: "fast" is its varlen kernel over the examples'
boundaries, "fallback" the wrapped sdpa. A plain fp32 model gives each example's rounding floor: how far
bf16 or fp16 is from fp32 for the example alone, to read the packed differences against.
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
from pathlib import Path

import unsloth  # noqa: F401  (before transformers, peft and trl, which it patches)

N_EXAMPLES = 6  # ~900 tokens in one row: inside max_length, so nothing is cut


def precision_floor(model, token_ids, reference) -> list[float]:
    """max |logit(model) - logit(fp32 reference)| per example, both alone."""
    from course_lib.packing import _logits

    return [(_logits(model, {"input_ids": _tensor(ids)}, False) - _logits(reference, {"input_ids": _tensor(ids)}, False))
            .abs().max().item() for ids in token_ids]


def _tensor(ids):
    import torch

    return torch.tensor([ids])


def attempt(record: dict, key: str, function):
    """Runs one measurement; a failure is written down and the others still run."""
    try:
        record[key] = function()
    except Exception:
        record[key] = {"error": traceback.format_exc()[-3000:]}


def counters() -> dict:
    try:
        from unsloth.utils.hf_packed_attention import HF_PACKED_ATTENTION_STATS
    except ImportError:  # Unsloth's CPU backend: its GPU modules need triton and do not import
        return {}
    return dict(HF_PACKED_ATTENTION_STATS)


def counted(function):
    def run():
        before = counters()
        result = function()
        after = counters()
        return dict(check=result.__dict__, kept_apart=result.kept_apart(),
                    relative_worst=max(result.restarted) / result.logit_scale,
                    unsloth_attention_calls={k: after[k] - before.get(k, 0) for k in after})
    return run


def one_precision(name: str, path: str, conversations, reference, max_length: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel

    from course_lib.packing import check_packing, encode

    gpu = torch.cuda.is_available()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[name]
    model, tokenizer = FastLanguageModel.from_pretrained(model_name=path, max_seq_length=max_length, dtype=dtype,
                                                         load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none", random_state=3407,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth")
    args = SFTConfig(output_dir="/tmp/packing-check", max_steps=1, per_device_train_batch_size=1,
                     max_length=max_length, packing=True, assistant_only_loss=True, bf16=name == "bf16" and gpu,
                     fp16=name == "fp16" and gpu, use_cpu=not gpu, report_to="none", disable_tqdm=True)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, args=args,
                         train_dataset=Dataset.from_list([{"messages": m} for m in conversations]))
    collator = trainer.data_collator
    token_ids = encode(conversations, tokenizer)
    record = dict(
        dtype=str(next(model.parameters()).dtype),
        attn_implementation=model.config._attn_implementation,
        trainer_padding_free=bool(getattr(trainer, "padding_free", False)), args_packing=trainer.args.packing,
        collator=type(collator).__name__, collator_wrapped_by_unsloth=bool(getattr(collator, "_unsloth_packing_wrapped", False)),
        row_keys=sorted(collator([{"input_ids": sum(token_ids, []), "seq_lengths": [len(i) for i in token_ids]}])))
    attempt(record, "unsloth_backend", _backends)
    model.train()
    attempt(record, "unsloth_collator_train_mode", counted(lambda: check_packing(model, token_ids, collator=collator)))
    attempt(record, "trl_collator_train_mode", counted(lambda: check_packing(model, token_ids)))
    model.eval()
    attempt(record, "unsloth_collator_eval_mode", counted(lambda: check_packing(model, token_ids, collator=collator)))
    if reference is not None:
        attempt(record, "alone_vs_fp32", lambda: precision_floor(model, token_ids, reference))
    del trainer, model
    if gpu:
        torch.cuda.empty_cache()
    return record


def _backends() -> dict:
    from unsloth.utils import attention_dispatch
    from unsloth.utils.flash_impl import FLASH_IMPL_STATE

    return dict(varlen=attention_dispatch.select_attention_backend(use_varlen=True),
                dense=attention_dispatch.select_attention_backend(use_varlen=False),
                has_flash_attention=attention_dispatch.HAS_FLASH_ATTENTION,
                has_xformers=attention_dispatch.HAS_XFORMERS,
                flash_impl_state={k: str(v) for k, v in FLASH_IMPL_STATE.items() if k != "logged"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/packing.json"))
    parser.add_argument("--smoke", action="store_true", help="CPU: the tiny slice, to check the code path")
    args = parser.parse_args()

    import torch
    import transformers
    import trl

    from course_lib.data import bundled_rows, to_messages
    from course_lib.tiny_ernie import ensure_tiny_ernie

    path = str(ensure_tiny_ernie("tiny" if args.smoke else "0.3b"))
    conversations = [to_messages(row)["messages"] for row in bundled_rows("train")[:N_EXAMPLES]]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    results = dict(model=path, device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
                   versions={m.__name__: m.__version__ for m in (torch, transformers, trl, unsloth)},
                   reference_attn_implementation=reference.config._attn_implementation)
    from course_lib.packing import check_packing

    # Before any trainer exists: Unsloth wraps transformers' sdpa when a packed trainer is built.
    attempt(results, "fp32_transformers", lambda: check_packing(reference, conversations, tokenizer).__dict__)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in ("bf16", "fp16"):
        attempt(results, name, lambda: one_precision(name, path, conversations, reference, max_length=1024))
        print(name, json.dumps(results[name], indent=1)[:6000], flush=True)
        args.out.write_text(json.dumps(results, indent=1))  # after each precision: a cut-off run keeps the first
    print("wrote", args.out)


if __name__ == "__main__":
    main()
