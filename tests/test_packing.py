"""A packed row keeps its examples apart on the CPU, through transformers' own sdpa and eager attention.

The tiny slice, in fp32, in memory. Each claim comes with the fault that breaks it, so the check is seen to
fail: positions 0..N-1 through the row (nothing marks the boundaries), and a cache left on (transformers
then skips the search for boundaries and builds a plain causal mask).
"""

import pytest
import torch

from course_lib.data import make_word_problems, to_messages
from course_lib.packing import FP32_RELATIVE_TOLERANCE, check_packing, encode, packed_row
from course_lib.tiny_ernie import make_tiny_ernie


@pytest.fixture(scope="module")
def slice_and_examples():
    model, tokenizer = make_tiny_ernie()
    model.eval()
    assert next(model.parameters()).dtype == torch.float32  # the tolerance is an fp32 one
    conversations = [to_messages(row)["messages"] for row in make_word_problems(4, seed=5)]
    return model, tokenizer, conversations


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def check(request, slice_and_examples):
    model, tokenizer, conversations = slice_and_examples
    model.set_attn_implementation(request.param)
    return check_packing(model, conversations, tokenizer)


def test_the_row_is_built_as_trl_builds_it(slice_and_examples):
    _, tokenizer, conversations = slice_and_examples
    token_ids = encode(conversations, tokenizer)
    row = packed_row(token_ids)
    assert "attention_mask" not in row
    assert row["input_ids"][0].tolist() == [token for ids in token_ids for token in ids]
    assert row["position_ids"][0].tolist() == [position for ids in token_ids for position in range(len(ids))]


def test_restarted_positions_keep_the_examples_apart(check):
    assert check.sequences_seen == len(check.lengths) == 4
    assert max(check.restarted) <= FP32_RELATIVE_TOLERANCE * check.logit_scale, check
    assert check.kept_apart()


def test_continuous_positions_leak_far_past_the_tolerance(check):
    # The first example has nothing before it; every later one sees its predecessors.
    assert check.continuous[0] <= FP32_RELATIVE_TOLERANCE * check.logit_scale
    assert min(check.continuous[1:]) > 100 * FP32_RELATIVE_TOLERANCE * check.logit_scale, check


def test_a_cache_left_on_hides_the_boundaries(slice_and_examples):
    model, tokenizer, conversations = slice_and_examples
    model.set_attn_implementation("sdpa")
    leaking = check_packing(model, conversations, tokenizer, use_cache=True)
    assert not leaking.kept_apart()
    assert min(leaking.restarted[1:]) > 100 * FP32_RELATIVE_TOLERANCE * leaking.logit_scale


def test_token_ids_and_conversations_give_the_same_check(slice_and_examples):
    model, tokenizer, conversations = slice_and_examples
    model.set_attn_implementation("sdpa")
    ids = encode(conversations[:2], tokenizer)
    assert check_packing(model, ids) == check_packing(model, conversations[:2], tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        encode(conversations)


def test_conversations_without_a_tokenizer_are_refused_in_chinese(monkeypatch):
    from course_lib.language import LANGUAGE_ENV
    from course_lib.packing import encode

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    with pytest.raises(ValueError, match="对话需要分词器"):
        encode([[{"role": "user", "content": "2 + 3?"}]])
