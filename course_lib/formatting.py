"""What the trainer sees: which tokens are trained, and what padding or packing costs on a data set.

`show_trained_tokens` renders an assistant-only loss mask as text that reads well in a notebook and in CI
logs. `padding_stats` counts the slots a padded batch computes against the rows that TRL's packing fills,
using the same best-fit-decreasing rule as TRL 1.15's `pack_dataset(strategy="bfd")`.
"""

from __future__ import annotations

import bisect
import math

from course_lib.ernie import IGNORE_INDEX
from course_lib.language import tr
from course_lib.training import label_runs

# datasets.map's default batch_size. TRL's pack_dataset packs with a batched map, so each block of this many
# examples (in dataset order) is packed on its own, and rows never mix examples of two blocks.
TRL_PACK_BLOCK = 1000


def show_trained_tokens(tokenizer, input_ids: list[int], mask: list[int]) -> str:
    """The decoded text, with every run of untrained tokens (mask 0) written as `[masked: ...]`.

    Trained tokens (mask 1) are shown as they are; special tokens are kept so the end marker shows. The marker
    stays `[masked: ...]` in every language: it is part of the text the notebooks count (`.count('[masked: ')`).
    """
    if len(input_ids) != len(mask):
        raise ValueError(tr(f"{len(input_ids)} token ids but {len(mask)} mask values",
                            f"有 {len(input_ids)} 个 token id，却有 {len(mask)} 个 mask 值"))
    runs = label_runs(input_ids, [1 if keep else IGNORE_INDEX for keep in mask])
    texts = [(trained, tokenizer.decode(ids, skip_special_tokens=False)) for trained, ids in runs]
    return "".join(text if trained else f"[masked: {text}]" for trained, text in texts)


def pack_best_fit_decreasing(lengths: list[int], max_length: int, block: int = TRL_PACK_BLOCK) -> list[list[int]]:
    """Rows of example indices, as TRL's "bfd" packing builds them.

    Within each block of `block` consecutive examples: longest first, each example goes into the open row
    with the least room that still fits it, else into a new row. Examples longer than `max_length` are
    truncated to it first (TRL drops their overflow tokens).
    """
    rows: list[list[int]] = []
    for first in range(0, len(lengths), block):
        indices = range(first, min(first + block, len(lengths)))
        longest_first = sorted(indices, key=lambda i: -min(lengths[i], max_length))
        room: list[tuple[int, int]] = []  # (free slots, row number) of open rows, sorted
        for i in longest_first:
            length = min(lengths[i], max_length)
            if length == 0:
                continue  # TRL filters out empty sequences
            fit = bisect.bisect_left(room, (length, -1))
            if fit < len(room):
                free, row = room.pop(fit)
            else:
                free, row = max_length, len(rows)
                rows.append([])
            rows[row].append(i)
            if free - length > 0:
                bisect.insort(room, (free - length, row))
    return rows


def padding_stats(lengths: list[int], batch_size: int, max_length: int) -> dict:
    """Padded batches against packed rows, for examples of `lengths` tokens.

    Padded: batches of `batch_size` consecutive examples, each padded to its longest example (TRL's collator
    pads to the longest in the batch). In dataset order, which for a shuffled data set is what a shuffling
    loader sees on average. Packed: rows of `max_length` filled by `pack_best_fit_decreasing`. Both truncate
    examples to `max_length`, as TRL does. Fractions are of the slots computed.
    """
    clipped = [min(n, max_length) for n in lengths]
    real = sum(clipped)
    batches = [clipped[i:i + batch_size] for i in range(0, len(clipped), batch_size)]
    padded_slots = sum(len(batch) * max(batch) for batch in batches)
    rows = pack_best_fit_decreasing(lengths, max_length)
    packed_slots = len(rows) * max_length
    return {
        "examples": len(lengths),
        "truncated": sum(n > max_length for n in lengths),
        "real_tokens": real,
        "padded_batches": len(batches),
        "padded_slots": padded_slots,
        "padded_padding": padded_slots - real,
        "padded_fraction": (padded_slots - real) / padded_slots if padded_slots else 0.0,
        "packed_rows": len(rows),
        "packed_batches": math.ceil(len(rows) / batch_size),
        "packed_slots": packed_slots,
        "packed_padding": packed_slots - real,
        "packed_fraction": (packed_slots - real) / packed_slots if packed_slots else 0.0,
        "examples_per_row": len(lengths) / len(rows) if rows else 0.0,
    }
