"""Trained-token rendering, padding and packing counts: hand-computed cases, then agreement with TRL itself."""

import pytest
from datasets import Dataset
from trl import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from course_lib.data import bundled_rows, to_messages
from course_lib.formatting import pack_best_fit_decreasing, padding_stats, show_trained_tokens
from course_lib.ernie import END_OF_TURN
from course_lib.tiny_ernie import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    rows = bundled_rows("train")
    return build_tokenizer([f"User: {row['question']}\nAssistant: {row['answer']}" for row in rows])


@pytest.fixture(scope="module")
def train_ids(tokenizer):
    """The bundled training split, tokenized with the chat template exactly as TRL tokenizes it."""
    conversations = [to_messages(row)["messages"] for row in bundled_rows("train")]
    return [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in conversations]


def test_padding_stats_hand_computed():
    # Batches [2, 6] [3, 5] [1, 7] pad to 6, 5, 7: 12 + 10 + 14 = 36 slots for 24 tokens.
    # Best fit decreasing into rows of 8: 7+1, 6+2, 5+3, so 3 full rows.
    assert padding_stats([2, 6, 3, 5, 1, 7], batch_size=2, max_length=8) == {
        "examples": 6, "truncated": 0, "real_tokens": 24,
        "padded_batches": 3, "padded_slots": 36, "padded_padding": 12, "padded_fraction": 12 / 36,
        "packed_rows": 3, "packed_batches": 2, "packed_slots": 24, "packed_padding": 0, "packed_fraction": 0.0,
        "examples_per_row": 2.0,
    }


def test_padding_stats_truncates_and_pads_a_short_last_batch():
    # 10 is cut to 8. Batches [8, 3] [4] -> 16 + 4 = 20 slots for 15 tokens. Rows: 8 | 4+3 -> 2 rows, 16 slots.
    stats = padding_stats([10, 3, 4], batch_size=2, max_length=8)
    assert (stats["truncated"], stats["real_tokens"], stats["padded_slots"], stats["padded_padding"]) == (1, 15, 20, 5)
    assert (stats["packed_rows"], stats["packed_slots"], stats["packed_padding"]) == (2, 16, 1)


def test_best_fit_decreasing_rows():
    # Longest first: 6 opens row 0 (2 free), 5 does not fit there and opens row 1 (3 free), 3 fits only
    # row 1, and 2 fills row 0.
    assert pack_best_fit_decreasing([5, 2, 6, 3], max_length=8) == [[2, 1], [0, 3]]


def test_packing_blocks_are_packed_separately():
    # Four examples of 4 in rows of 8 fit 2 rows, but in blocks of 3 they take 2 + 1 rows.
    assert len(pack_best_fit_decreasing([4, 4, 4, 4], max_length=8)) == 2
    assert len(pack_best_fit_decreasing([4, 4, 4, 4], max_length=8, block=3)) == 3


@pytest.mark.parametrize("max_length", [1024, 333, 150])
def test_packing_agrees_with_trl(train_ids, max_length):
    lengths = [len(ids) for ids in train_ids]
    assert len(lengths) == 2000  # two of TRL's packing blocks
    packed = pack_dataset(Dataset.from_dict({"input_ids": train_ids}), seq_length=max_length, strategy="bfd")
    trl_fills = sorted(len(row) for row in packed["input_ids"])
    ours = pack_best_fit_decreasing(lengths, max_length)
    assert sorted(sum(min(lengths[i], max_length) for i in row) for row in ours) == trl_fills
    stats = padding_stats(lengths, batch_size=8, max_length=max_length)
    assert stats["packed_rows"] == len(packed)
    assert stats["packed_padding"] == len(packed) * max_length - sum(trl_fills)
    if max_length < max(lengths):
        assert stats["truncated"] > 0


def test_padded_slots_agree_with_trl_collator(train_ids):
    collator = DataCollatorForLanguageModeling(pad_token_id=0)
    slots = sum(collator([{"input_ids": ids} for ids in train_ids[i:i + 8]])["input_ids"].numel()
                for i in range(0, len(train_ids), 8))
    assert padding_stats([len(ids) for ids in train_ids], batch_size=8, max_length=1024)["padded_slots"] == slots


def test_show_trained_tokens_marks_the_prompt(tokenizer):
    row = bundled_rows("train")[0]
    out = tokenizer.apply_chat_template(to_messages(row)["messages"], tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    shown = show_trained_tokens(tokenizer, out["input_ids"], out["assistant_masks"])
    # ERNIE's tokenizer joins the space after "Assistant:" to the answer's first word, so it is trained with it
    assert shown == f"[masked: <|begin_of_sentence|>User: {row['question']}\nAssistant:] {row['answer']}{END_OF_TURN}"


def test_show_trained_tokens_marks_every_untrained_span(tokenizer):
    messages = [{"role": "user", "content": "Q one"}, {"role": "assistant", "content": "A one"},
                {"role": "user", "content": "Q two"}, {"role": "assistant", "content": "A two"}]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert show_trained_tokens(tokenizer, out["input_ids"], out["assistant_masks"]) == (
        f"[masked: <|begin_of_sentence|>User: Q one\nAssistant:] A one{END_OF_TURN}"
        f"[masked: User: Q two\nAssistant:] A two{END_OF_TURN}")


def test_show_trained_tokens_checks_lengths(tokenizer):
    with pytest.raises(ValueError, match="3 token ids but 2 mask values"):
        show_trained_tokens(tokenizer, [5, 6, 7], [0, 1])


def test_a_length_mismatch_is_refused_in_chinese(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    with pytest.raises(ValueError, match="有 2 个 token id，却有 1 个 mask 值"):
        show_trained_tokens(None, [1, 2], [1])
