"""Do the examples of a packed row see each other? Measured by running the model, not assumed.

With `packing=True`, TRL's collator builds padding-free batches: one row holding the examples' token ids end
to end, `position_ids` that restart at 0 at each example, and no attention_mask. Nothing else marks where one
example ends, so the attention has to read the boundaries from the positions (transformers 5 does it in
`masking_utils.find_packed_sequence_indices`, but only when no attention_mask and no cache are passed) or
from the lengths Unsloth adds to the batch (`packed_seq_lengths`, which its varlen kernels read on a GPU).

`check_packing` runs the model on such a row and on each example alone. If the examples are kept apart, each
one's logits are the same both ways, up to rounding. The same row with positions 0..N-1 straight through and
no boundaries is the fault that shows the check can fail: there every example after the first also attends
to the ones before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.language import tr

# Kept apart means max |packed - alone| <= this x max |logit|, in fp32. Measured on the CPU (sdpa and eager):
# 7e-7 on the tiny slice and 1.4e-6 on ERNIE-4.5-0.3B's full shape, from summing in a different order under
# a block mask than under a plain causal one. 1e-4 leaves room for deeper and trained models, and the leak
# is of the order of the logits themselves, 10,000 times above it. bf16 and fp16 round far more.
FP32_RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PackingCheck:
    """Per example, in row order: max |logit(in the packed row) - logit(alone)|."""

    lengths: tuple[int, ...]
    restarted: tuple[float, ...]  # the row as the collator built it: TRL's padding-free one restarts the positions
    continuous: tuple[float, ...]  # positions 0..N-1 and no boundaries: the first example has nothing to leak from
    logit_scale: float  # max |logit| of the examples alone, to read the differences against
    attn_implementation: str
    sequences_seen: int  # how many examples transformers finds in the restarted row's position_ids

    def kept_apart(self, relative_tolerance: float = FP32_RELATIVE_TOLERANCE) -> bool:
        return max(self.restarted) <= relative_tolerance * self.logit_scale


def encode(examples, tokenizer=None) -> list[list[int]]:
    """Token ids of each example: lists of ids pass through, conversations go through the chat template."""
    if all(isinstance(example[0], int) for example in examples):
        return [list(example) for example in examples]
    if tokenizer is None:
        raise ValueError(tr("conversations need a tokenizer to be turned into token ids",
                            "对话需要分词器才能变成 token id"))
    return [list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)) for messages in examples]


def packed_row(token_ids: list[list[int]], collator=None) -> dict:
    """One packed row as TRL's packing hands it to the collator (`seq_lengths` beside the ids), collated by
    `collator`: by default TRL's own padding-free one; pass a trainer's `data_collator` to see what it builds
    (Unsloth wraps it to add `packed_seq_lengths`)."""
    if collator is None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    row = {"input_ids": [token for ids in token_ids for token in ids], "seq_lengths": [len(ids) for ids in token_ids]}
    return collator([row])


def _logits(model, inputs: dict, use_cache: bool):
    import torch

    inputs = {key: value.to(model.device) for key, value in inputs.items() if key != "labels"}
    with torch.no_grad():
        # use_cache=False as TRL's compute_loss passes it: with a cache, transformers skips the boundary search.
        return model(**inputs, use_cache=use_cache).logits[0].float()


def _differences(packed, alone: list) -> tuple[float, ...]:
    starts = [0]
    for logits in alone:
        starts.append(starts[-1] + len(logits))
    return tuple((packed[start:start + len(logits)] - logits).abs().max().item()
                 for start, logits in zip(starts, alone))


def check_packing(model, examples, tokenizer=None, collator=None, use_cache: bool = False) -> PackingCheck:
    """Packed row vs each example alone, with restarted and with continuous positions. Leaves the model's
    train/eval mode as it is: call it in eval mode, or with dropout off."""
    import torch
    from transformers.masking_utils import find_packed_sequence_indices

    token_ids = encode(examples, tokenizer)
    batch = packed_row(token_ids, collator)
    alone = [_logits(model, {"input_ids": torch.tensor([ids])}, use_cache=False) for ids in token_ids]
    restarted = _differences(_logits(model, batch, use_cache), alone)
    total = batch["input_ids"].shape[1]
    one_sequence = {"input_ids": batch["input_ids"], "position_ids": torch.arange(total).unsqueeze(0)}
    continuous = _differences(_logits(model, one_sequence, use_cache), alone)
    # A collator that is not padding-free (Unsloth's CPU backend turns packing off) sends a mask, no positions.
    found = find_packed_sequence_indices(batch["position_ids"]) if "position_ids" in batch else None
    return PackingCheck(
        lengths=tuple(len(ids) for ids in token_ids), restarted=restarted, continuous=continuous,
        logit_scale=max(logits.abs().max().item() for logits in alone),
        attn_implementation=model.config._attn_implementation,
        sequences_seen=1 if found is None else int(found.max()) + 1)
