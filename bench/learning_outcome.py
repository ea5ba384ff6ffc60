"""Does a faster packed configuration learn as well, for the same number of examples? CPU, the tiny slice.

    python bench/learning_outcome.py --out bench/h200-2026-12-01/outcome.json

A configuration with 4x the examples per step takes 4x fewer optimizer steps over the same data, at the same
learning rate: faster on the GPU is no use if it learns less. Each configuration here trains the pre-trained
tiny slice with LoRA (the course's r, alpha, targets, learning rate, warm-up and 8-bit AdamW) on the bundled
training conversations, each for the same 3,120 examples (the course default's MAX_STEPS = 60 steps of 52),
then scores the assistant tokens of the 200 held-out conversations (mean cross-entropy per token: lower is
better).

What the optimizer sees of a GPU configuration is its examples per step: 52.7 for the default (8 packed rows
of 1,024), 105 for 16 rows of 1,024 and for 8 rows of 2,048 alike, 200 for 32 rows (bench/h200-2026-12-01).
The stand-in gives it the same examples per step (52, 104, 208) in padded batches, not packed ones: a
padding-free batch on the CPU is one sequence whose sdpa materialises a (tokens in the batch)^2 mask, about
30,000^2 for 32 rows. The loss is the same either way (each example's assistant tokens, averaged over the
batch's), since tests/test_packing.py shows packed examples kept apart. Plain TRL + PEFT: TRL 1.15's own
loss calls a triton kernel, which a CPU machine lacks, so the model computes the loss (`ModelLoss`); data,
collator, optimizer and schedule are SFTTrainer's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

EXAMPLES = 3120  # notebook 4's MAX_STEPS = 60 at the course default's ~52 examples a step
# (GPU configurations it stands for, examples per step)
CANDIDATES = [("default", 52), ("packed-b16 and packed-b8-len2048", 104), ("packed-b32", 208)]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def heldout_loss(model, tokenizer, conversations, batch_size: int = 16) -> float:
    """Mean cross-entropy over the assistant tokens of every conversation (the tokens TRL trains on)."""
    import torch

    total, count = 0.0, 0
    model.eval()
    for first in range(0, len(conversations), batch_size):
        encoded = [tokenizer.apply_chat_template(m, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
                   for m in conversations[first:first + batch_size]]
        width = max(len(e["input_ids"]) for e in encoded)
        ids = torch.tensor([e["input_ids"] + [tokenizer.pad_token_id] * (width - len(e["input_ids"])) for e in encoded])
        mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in encoded])
        trained = torch.tensor([e["assistant_masks"] + [0] * (width - len(e["input_ids"])) for e in encoded])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets, keep = ids[:, 1:], trained[:, 1:].bool()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total, count = total + losses[keep].sum().item(), count + int(keep.sum())
    return total / count


def model_loss_trainer():
    """SFTTrainer whose loss is the model's own cross-entropy over the labels, as transformers' Trainer
    computes it: TRL 1.15's fused-head loss calls a triton kernel (trl/trainer/utils.py, ChunkedLogProbFunction)
    that is None without triton, so SFTTrainer.train() fails on a CPU."""
    from transformers import Trainer
    from trl import SFTTrainer

    class ModelLoss(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Without a cache, as TRL passes it: transformers then finds the packed examples' boundaries.
            return Trainer.compute_loss(self, model, {**inputs, "use_cache": False}, return_outputs, num_items_in_batch)

    return ModelLoss


def train_one(name: str, batch: int, steps: int, seed: int, path: str, train, heldout) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                             task_type="CAUSAL_LM", target_modules=TARGETS))
    args = SFTConfig(output_dir=f"/tmp/outcome-{name}-{seed}", max_steps=steps, per_device_train_batch_size=batch,
                     learning_rate=2e-4, lr_scheduler_type="linear", warmup_steps=5, optim="adamw_8bit",
                     weight_decay=0.01, max_length=1024, packing=False, assistant_only_loss=True,
                     use_cpu=True, bf16=False, seed=seed, report_to="none", save_strategy="no", logging_steps=1,
                     disable_tqdm=True, dataloader_num_workers=0)
    trainer = model_loss_trainer()(model=model, processing_class=tokenizer, train_dataset=train, args=args)
    examples = []
    collate = trainer.data_collator

    def counting(rows):
        batch_out = collate(rows)
        examples.append(len(batch_out["input_ids"]))
        return batch_out

    trainer.data_collator = counting
    before = heldout_loss(model, tokenizer, heldout)
    started = time.perf_counter()
    trainer.train()
    # the loader collates one batch ahead of the step that uses it
    return dict(name=name, seed=seed, batch=batch, steps=steps, examples=sum(examples[:steps]),
                heldout_loss_before=before, heldout_loss=heldout_loss(model, tokenizer, heldout),
                train_losses=[row["loss"] for row in trainer.state.log_history if "loss" in row],
                seconds=time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/outcome.json"))
    parser.add_argument("--seeds", default="3407,1", help="comma-separated: the spread between seeds is the noise")
    parser.add_argument("--batches", default="", help="comma-separated examples per step to run (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("ERNIE_COURSE_MODEL", "tiny")
    from datasets import Dataset

    from course_lib.data import bundled_rows, to_messages
    from course_lib.tiny_ernie import ensure_tiny_ernie

    path = str(ensure_tiny_ernie("tiny"))
    train = Dataset.from_list([to_messages(row) for row in bundled_rows("train")])
    heldout = [to_messages(row)["messages"] for row in bundled_rows("heldout")]
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, batch in CANDIDATES:
            if args.batches and str(batch) not in args.batches.split(","):
                continue
            results.append(train_one(name, batch, EXAMPLES // batch, seed, path, train, heldout))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "train_losses"}), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
