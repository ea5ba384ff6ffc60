"""The bundled Chinese word problems, checked as tests/test_data.py checks the English ones, and the answer
parser on Chinese text."""

import random
import re
from fractions import Fraction

import pytest

from course_lib import data, data_zh
from test_data import equations_hold

FINAL_LINE = re.compile(r"\n答案是 (\d+(?:\.\d{1,2})?)。$")


def recompute(kind: str, question: str) -> Fraction:
    """The answer worked out again from the numbers printed in the question, with this test's own formulas."""
    x = [Fraction(s) for s in re.findall(r"\d+(?:\.\d+)?", question)]
    formulas = {
        "change_from_a_bill": lambda count, price, bill: bill - count * price,
        "equal_sharing": lambda total, groups: total / groups,
        "distance_from_speed": lambda speed, hours: speed * hours,
        "travel_time": lambda distance, speed: distance / speed,
        "percent_discount": lambda price, percent: price * (100 - percent) / 100,
        "two_item_bill": lambda n1, p1, n2, p2: n1 * p1 + n2 * p2,
        "ages": lambda child, times, years: child * times + years,
        "weeks_of_saving": lambda price, saved, weekly: (price - saved) / weekly,
        "rectangle_perimeter": lambda length, width: 2 * (length + width),
        "share_of_a_class": lambda total, percent: total * percent / 100,
    }
    return formulas[kind](*x)  # a wrong count of numbers in the question raises TypeError


@pytest.fixture(scope="module")
def train():
    return data_zh.make_chinese_word_problems(data_zh.ZH_TRAIN_SIZE, data_zh.ZH_TRAIN_SEED)


def test_same_seed_same_rows_other_seed_other_rows():
    first = data_zh.make_chinese_word_problems(50, seed=1)
    assert first == data_zh.make_chinese_word_problems(50, seed=1)
    other = data_zh.make_chinese_word_problems(50, seed=2)
    assert sum(a["question"] != b["question"] for a, b in zip(first, other)) >= 45


def test_generator_leaves_the_global_random_alone():
    random.seed(0)
    expected = random.random()
    random.seed(0)
    data_zh.make_chinese_word_problems(100, seed=3)
    assert random.random() == expected


def test_split_sizes_no_duplicates_and_no_leak():
    train, heldout = data_zh.bundled_chinese_rows("train"), data_zh.bundled_chinese_rows("heldout")
    assert (len(train), len(heldout)) == (data_zh.ZH_TRAIN_SIZE, data_zh.ZH_HELDOUT_SIZE)
    questions = [row["question"] for row in train]
    assert len(set(questions)) == len(questions)
    assert len({row["question"] for row in heldout}) == len(heldout)
    assert not {row["question"] for row in heldout} & set(questions)
    assert all(set(row) == {"question", "answer"} for row in train + heldout)
    with pytest.raises(ValueError, match="test"):
        data_zh.bundled_chinese_rows("test")


def test_variety_and_chinese_text(train):
    assert {row["kind"] for row in train} == set(data_zh.KINDS)
    assert len({FINAL_LINE.search(row["answer"]).group(1) for row in train}) >= 150
    assert len({name for name, _ in data_zh.NAMES if any(name in row["question"] for row in train)}) >= 10
    for row in train:  # Chinese throughout: no English word in a question or an answer
        assert not re.search(r"[A-Za-z]", row["question"] + row["answer"]), row


@pytest.mark.parametrize("seed", [data_zh.ZH_TRAIN_SEED, data_zh.ZH_HELDOUT_SEED])
def test_every_answer_is_right(seed):
    rows = data_zh.make_chinese_word_problems(data_zh.ZH_TRAIN_SIZE + data_zh.ZH_HELDOUT_SIZE, seed)
    for row in rows:
        match = FINAL_LINE.search(row["answer"])
        assert match, row["answer"]
        assert Fraction(match.group(1)) == recompute(row["kind"], row["question"]), row
        steps = row["answer"].split("\n")[:-1]
        assert 1 <= len(steps) <= 4 and all(equations_hold(step) for step in steps), row["answer"]
        # the course's parser recovers the answer, and it is the clear final number scoring matches on
        assert data.final_answer(row["answer"]) == pytest.approx(float(match.group(1)))
        assert data.clear_final_number(row["answer"]) == data.final_answer(row["answer"])
        assert data.answers_match(row["answer"], f"答案是 {match.group(1)}。")


@pytest.mark.parametrize("text, expected", [
    ("答案是 42。", 42),
    ("答案是42元。", 42),
    ("答案：42", 42),
    ("答案: 3.5", 3.5),
    ("答案为 -3。", -3),
    ("答案是 5。不对，答案是 7。", 7),
    ("答案是 12 个苹果，共 3 袋。", 12),
    ("所以一共找回3.5元。", 3.5),  # no marker: the last number, written without spaces
    ("一共 1,250 元", 1250),
    ("我不知道。", None),
])
def test_final_answer_reads_chinese(text, expected):
    assert data.final_answer(text) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("text, expected", [
    ("先算：3 × 4 = 12。\n答案是 12。", 12),
    ("长是 12 米，宽是 8 米。", None),  # two numbers in the final sentence
    ("还剩下3/4。", None),  # a fraction
])
def test_clear_final_number_reads_chinese_sentences(text, expected):
    assert data.clear_final_number(text) == (None if expected is None else pytest.approx(expected))


def test_english_numbers_inside_words_are_still_no_numbers():
    assert data.numbers_in("x2 B12 and 7") == [7]


def test_to_messages_takes_chinese_rows():
    row = data_zh.bundled_chinese_rows("train")[0]
    assert data.to_messages(row)["messages"][1]["content"].endswith(row["answer"][-6:])
