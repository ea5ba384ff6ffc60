"""Plumbing around a TRL training run: the schedule the trainer will use, what a batch trains on, and the
checkpoints it left. The trainer itself (SFTConfig, SFTTrainer, trainer.train) stays in the notebook."""

from __future__ import annotations

import re
from pathlib import Path

from course_lib.ernie import IGNORE_INDEX


def planned_learning_rates(args, max_steps: int) -> list[float]:
    """The learning rate of optimizer steps 1..max_steps, built exactly as `Trainer.create_scheduler` builds it:
    `transformers.get_scheduler` with the arguments' scheduler type, warm-up and learning rate, here stepped
    on a dummy optimizer. Element i is the rate that step i + 1 updates the weights with."""
    import torch
    from transformers import get_scheduler

    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=args.learning_rate)
    scheduler = get_scheduler(args.lr_scheduler_type, dummy, num_warmup_steps=args.get_warmup_steps(max_steps),
                              num_training_steps=max_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    rates = []
    for _ in range(max_steps):
        rates.append(scheduler.get_last_lr()[0])
        dummy.step()
        scheduler.step()
    return rates


def logged_learning_rates(log_history: list[dict]) -> dict[int, float]:
    """{step: learning rate} from `trainer.state.log_history`. transformers 5 logs, at step s, the rate that
    step s used (it reads it before the scheduler moves on)."""
    return {row["step"]: float(row["learning_rate"]) for row in log_history if "learning_rate" in row}


def first_example(batch) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of the first example in a collated batch, without padding.

    A padded batch has one row per example and an attention mask. A padding-free batch (Unsloth turns it on
    by itself on a GPU) is one long row of examples laid end to end, and its position_ids restart at 0
    where each example begins.
    """
    input_ids, labels = batch["input_ids"][0], batch["labels"][0]
    if "attention_mask" in batch:
        end = int(batch["attention_mask"][0].sum())
    else:
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
        end = starts[1] if len(starts) > 1 else len(input_ids)
    return input_ids[:end].tolist(), labels[:end].tolist()


def label_runs(input_ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """The example cut into runs of (trained?, token ids): trained where the label is not IGNORE_INDEX."""
    runs: list[tuple[bool, list[int]]] = []
    for token, label in zip(input_ids, labels):
        trained = label != IGNORE_INDEX
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(token)
        else:
            runs.append((trained, [token]))
    return runs


def checkpoints(folder) -> list[tuple[int, Path]]:
    """(step, path) of every `checkpoint-<step>` folder the trainer saved in `folder`, oldest first."""
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)
