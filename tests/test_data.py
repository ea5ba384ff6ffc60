"""The bundled word problems, the answer parser and the data loader. No network: the Hub is never asked."""

import importlib.util
import random
import re
import subprocess
import sys
import types
from fractions import Fraction

import pytest

from course_lib import data

FINAL_LINE = re.compile(r"\nThe answer is (-?\d+(?:\.\d{1,2})?)\.$")
# "$10 - $6.50 = $3.50", "36 × 1 ÷ 2 = 18": the arithmetic a worked step shows.
EQUATION = re.compile(r"((?:\$?\d+(?:\.\d+)?\s[×÷+-]\s)+\$?\d+(?:\.\d+)?) = \$?(\d+(?:\.\d+)?)")
SMALL_UNIT_FACTOR = {"grams": 1000, "millilitres": 1000, "metres": 1000, "minutes": 60, "centimetres": 100}


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
        "ages": lambda times, child, years: times * child + years,
        "carpet_cost": lambda length, width, rate: length * width * rate,
        "fence_perimeter": lambda length, width: 2 * (length + width),
        "units_left_over": lambda amount, used: (
            amount * SMALL_UNIT_FACTOR[re.findall(r"[Hh]ow many (\w+)", question)[-1]] - used),
        "workers_and_days": lambda workers, days, crew: workers * days / crew,
        "weeks_of_saving": lambda price, saved, weekly: (price - saved) / weekly,
        "fractions_left": lambda total, a, b, c, d: total * (1 - a / b) * (1 - c / d),
        "average": lambda *values: sum(values) / len(values),
        "unit_price": lambda few, total, more: total / few * more,
    }
    return formulas[kind](*x)  # a wrong count of numbers in the question raises TypeError


def evaluate(expression: str) -> Fraction:
    """Works out "$10 - 3 × $2.50" exactly, × and ÷ before + and -."""
    tokens = expression.replace("$", "").split()
    terms = []
    for i in range(0, len(tokens), 2):
        previous = tokens[i - 1] if i else "+"
        value = Fraction(tokens[i])
        if previous in "+-":
            terms.append(value if previous == "+" else -value)
        else:
            terms[-1] = terms[-1] * value if previous == "×" else terms[-1] / value
    return sum(terms)


def equations_hold(step: str) -> bool:
    """True when the step shows at least one equation and every one of them is right."""
    found = EQUATION.findall(step)
    return bool(found) and all(evaluate(left) == Fraction(right) for left, right in found)


@pytest.fixture(scope="module")
def train():
    return data.make_word_problems(data.TRAIN_SIZE, data.TRAIN_SEED)


@pytest.fixture(scope="module")
def heldout():
    return data.bundled_rows("heldout")


def test_same_seed_same_rows_other_seed_other_rows():
    assert data.make_word_problems(50, seed=1) == data.make_word_problems(50, seed=1)
    first, other = data.make_word_problems(50, seed=1), data.make_word_problems(50, seed=2)
    assert sum(a["question"] != b["question"] for a, b in zip(first, other)) >= 45


def test_generator_leaves_the_global_random_alone():
    random.seed(0)
    expected = random.random()
    random.seed(0)
    data.make_word_problems(100, seed=3)
    assert random.random() == expected


def test_split_sizes_and_no_leak(train, heldout):
    bundled_train = data.bundled_rows("train")
    assert len(bundled_train) == data.TRAIN_SIZE >= 2000
    assert len(heldout) == data.HELDOUT_SIZE >= 200
    train_questions = [row["question"] for row in bundled_train]
    assert len(set(train_questions)) == len(train_questions)
    assert not {row["question"] for row in heldout} & set(train_questions)
    assert all(set(row) == {"question", "answer"} for row in bundled_train + heldout)


def test_variety_of_kinds_lengths_and_numbers(train):
    kinds = {row["kind"] for row in train}
    assert len(kinds) >= 8 and kinds <= set(data.KINDS)
    lengths = [len(row["question"]) for row in train]
    assert max(lengths) >= 2 * min(lengths)
    finals = {FINAL_LINE.search(row["answer"]).group(1) for row in train}
    assert len(finals) >= 300
    assert len({re.findall(r"\d+", row["question"])[0] for row in train}) >= 100
    assert len({name for name, _, _ in data.NAMES if any(name in row["question"] for row in train)}) >= 10


def test_step_checker_catches_wrong_arithmetic():
    assert evaluate("$10 - 3 × $2.50 + 12 ÷ 4") == Fraction(11, 2)
    assert equations_hold("The change is $10 - $6.50 = $3.50.")
    assert not equations_hold("The change is $10 - $6.50 = $4.50.")
    assert not equations_hold("No arithmetic shown here.")


@pytest.mark.parametrize("seed", [data.TRAIN_SEED, data.HELDOUT_SEED])
def test_every_answer_is_right(seed):
    rows = data.make_word_problems(data.TRAIN_SIZE + data.HELDOUT_SIZE, seed)
    for row in rows:
        match = FINAL_LINE.search(row["answer"])
        assert match, row["answer"]
        assert Fraction(match.group(1)) == recompute(row["kind"], row["question"]), row
        steps = row["answer"].split("\n")[:-1]
        assert 1 <= len(steps) <= 5 and all(equations_hold(step) for step in steps), row["answer"]
        assert data.final_answer(row["answer"]) == pytest.approx(float(match.group(1)))


def test_answers_are_short(train):
    lengths = sorted(len(row["answer"]) for row in train)
    assert 60 <= lengths[0] and lengths[-1] <= 500
    assert 120 <= lengths[len(lengths) // 2] <= 300


@pytest.mark.parametrize("text, expected", [
    ("3 × 4 = 12.\nThe answer is 12.", 12),
    ("The answer is $1,250.", 1250),
    ("The answer is 1,234,567.89", 1234567.89),
    ("The answer is -7.5.", -7.5),
    ("The answer is −3.", -3),
    ("The answer is -$4.", -4),
    ("The answer is .75", 0.75),
    ("The answer is 12.50.", 12.5),
    ("The answer is 5. No wait, the answer is 7.", 7),
    ("The answer is 12 apples, from 3 bags.", 12),
    ("We get 9. The answer is", 9),
    ("First 20 - 7 = 13 and the rest\n#### 42", 42),
    ("The answer is: **1,000**", 1000),
    ("She had 20 apples and gave away 8, so she has 12 apples left.", 12),
    ("The temperature dropped to -4 degrees.", -4),
    ("So the total comes to $3.50.", 3.5),
    ("It is a 3-5 day trip", 5),
    ("I don't know.", None),
    ("", None),
])
def test_final_answer(text, expected):
    assert data.final_answer(text) == (None if expected is None else pytest.approx(expected))


def test_answers_match():
    assert data.answers_match("The answer is 12.", "... so she has 12 apples left.")
    assert data.answers_match("The answer is 3.50.", "The answer is 3.5.")
    assert not data.answers_match("The answer is 13.", "The answer is 12.")
    assert not data.answers_match("no idea", "The answer is 12.")
    assert not data.answers_match("The answer is 12.", "no number")


def test_to_messages():
    row = {"question": "What is 2 + 2?", "answer": "2 + 2 = 4.\nThe answer is 4."}
    assert data.to_messages(row) == {"messages": [{"role": "user", "content": "What is 2 + 2?"},
                                                  {"role": "assistant", "content": "2 + 2 = 4.\nThe answer is 4."}]}


def test_import_is_cheap_and_silent():
    code = "import sys, course_lib.data; print(sorted({'datasets', 'requests', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n" and result.stderr == ""


@pytest.fixture
def hub(monkeypatch):
    """Our own switch for Hub reachability; any call to it is counted, so a test can insist on none."""
    try:
        import course_lib.environment as environment
    except ImportError:  # environment.py is written beside this module; the loader only needs the switch
        environment = types.ModuleType("course_lib.environment")
        monkeypatch.setitem(sys.modules, "course_lib.environment", environment)
    calls = []
    state = types.SimpleNamespace(reachable=False, calls=calls)

    def hub_reachable(timeout: float = 3.0) -> bool:
        calls.append(timeout)
        return state.reachable

    monkeypatch.setattr(environment, "hub_reachable", hub_reachable, raising=False)
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    return state


@pytest.mark.parametrize("split, size", [("train", data.TRAIN_SIZE), ("heldout", data.HELDOUT_SIZE)])
def test_bundled_loader(hub, split, size):
    import datasets

    table, choice = data.load_math_dataset(split, source="bundled")
    assert isinstance(table, datasets.Dataset)
    assert table.column_names == ["question", "answer"]
    assert table.num_rows == choice.num_rows == size
    assert table[0] == data.bundled_rows(split)[0]
    assert choice.source == "bundled" and "bundled" in choice.name
    assert "bundled" in choice.banner().lower() and "offline" in choice.banner().lower()
    assert hub.calls == []


def test_env_var_overrides_auto(hub, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, "bundled")
    _, choice = data.load_math_dataset("heldout")
    assert choice.source == "bundled" and data.DATA_ENV_VAR in choice.reason
    assert hub.calls == []


def test_explicit_argument_beats_env_var(hub, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, "hub")
    _, choice = data.load_math_dataset("heldout", source="bundled")
    assert choice.source == "bundled" and hub.calls == []


@pytest.mark.parametrize("value", ["cloud", "offline"])
def test_bad_env_value_raises(hub, monkeypatch, value):
    monkeypatch.setenv(data.DATA_ENV_VAR, value)
    with pytest.raises(ValueError, match=rf"(?s){value}.*bundled"):
        data.load_math_dataset()


def test_bad_split_or_source_raises(hub):
    with pytest.raises(ValueError, match="test"):
        data.load_math_dataset("test", source="bundled")
    with pytest.raises(ValueError, match="local"):
        data.load_math_dataset("train", source="local")


def test_auto_falls_back_to_bundled_when_hub_unreachable(hub):
    table, choice = data.load_math_dataset("heldout")
    assert hub.calls, "auto must ask whether the Hub is reachable"
    assert choice.source == "bundled" and table.num_rows == data.HELDOUT_SIZE
    assert "not reachable" in choice.reason
    assert choice.banner().startswith("OFFLINE")


def test_forced_hub_unreachable_says_what_to_do(hub):
    with pytest.raises(ConnectionError, match=f"{data.DATA_ENV_VAR}=bundled"):
        data.load_math_dataset("train", source="hub")


@pytest.mark.parametrize("text, expected", [
    ("The answer is 12.", 12),
    ("... so she has 12 apples left.", 12),
    ("First 3 + 4 = 7.\nThen 7 × 2 = 14.\nSo the total is $14.", 14),
    ("It costs $3.50.", 3.5),
    ("The area is 25 cm^2.", 25),  # the power of a unit is no number
    ("Therefore the number is 48. I hope this helps.", 48),
    ("The length is 12 cm and the width is 8 cm.", None),  # two numbers in the final sentence
    ("So 3/4 of the cake is left.", None),  # a fraction
    ("The ratio of boys to girls is 2:3.", None),  # a ratio
    ("The answer is 12 apples, from 3 bags.", None),
    ("x = 3 and y = 4", None),
    ("I don't know.", None),
])
def test_clear_final_number(text, expected):
    assert data.clear_final_number(text) == (None if expected is None else pytest.approx(expected))


def test_a_clear_final_number_is_the_final_answer(train):
    """Scoring matches final answers: a reference's clear number must be the one `final_answer` finds."""
    for row in train:
        assert data.clear_final_number(row["answer"]) == data.final_answer(row["answer"]) is not None


def test_normalised_keeps_words_and_numbers_only():
    assert data.normalised("  Find the AREA:\n 2,500.5 m  by 3 m!! ") == "find the area 2,500.5 m by 3 m"
    assert data.normalised("Maya's $12-pen?") == "maya s 12 pen"


# Orca-style questions written for this test (orca-math itself is not reachable offline). Rewordings keep the
# numbers; how much wording they keep decides whether a word-overlap rule can see them. Variants change a
# number, and are other problems.
REWORDED = [  # (training question, held-out question, 3-gram Jaccard)
    ("Jungkook has 6 red balls and 3 blue balls. How many balls does Jungkook have in total?",
     "Jungkook has 6 red balls and 3 blue balls. How many balls does he have altogether?", 0.61),
    ("The sum of two consecutive even numbers is 34. What is the larger number?",
     "Two consecutive even numbers add up to 34. What is the larger of the two numbers?", 0.24),
    ("A number divided by 4 gives 12. What is the number?",
     "When a certain number is divided by 4, the result is 12. Find the number.", 0.05),
]
VARIANTS = [
    ("A number divided by 4 gives 12. What is the number?", "A number divided by 4 gives 13. What is the number?"),
    ("Jungkook has 6 red balls and 3 blue balls. How many balls does Jungkook have in total?",
     "Jungkook has 6 red balls and 5 blue balls. How many balls does Jungkook have in total?"),
]


def test_training_repeats_exact_near_and_not():
    train_questions = ["What is 2 + 2?"] + [a for a, _, _ in REWORDED] + [a for a, _ in VARIANTS]
    held_out = ["what is 2+2", *[b for _, b, _ in REWORDED], *[b for _, b in VARIANTS], "What is 2 + 3?"]
    for a, b, overlap in REWORDED:
        assert data.jaccard(data.word_trigrams(a), data.word_trigrams(b)) == pytest.approx(overlap, abs=0.005)
    # The last rewording shares too few words for any word-overlap rule: a limit of the cheap measure.
    assert data.training_repeats(train_questions, held_out) == ["exact", "near", "near", None, None, None, None]


def test_the_near_repeat_threshold_as_measured_on_the_bundled_data():
    """Bundled questions of different templates never share NEAR_REPEAT_JACCARD of their word 3-grams, and every
    held-out candidate the rule flags is the same problem (template and numbers) as a training row."""
    train = data.make_word_problems(data.TRAIN_SIZE, data.TRAIN_SEED)
    candidates = data.make_word_problems(data.HELDOUT_SIZE + 100, data.HELDOUT_SEED)
    grams = [data.word_trigrams(row["question"]) for row in train]
    index = {}
    for i, row_grams in enumerate(grams):
        for gram in row_grams:
            index.setdefault(gram, set()).add(i)
    across_kinds = 0.0
    for row in candidates:
        row_grams = data.word_trigrams(row["question"])
        sharing = set().union(*(index.get(gram, set()) for gram in row_grams))
        across_kinds = max([across_kinds] + [data.jaccard(row_grams, grams[i]) for i in sharing
                                             if train[i]["kind"] != row["kind"]])
    assert 0.1 < across_kinds < data.NEAR_REPEAT_JACCARD

    def problem(row):
        return row["kind"], tuple(sorted(data.numbers_in(row["question"])))

    labels = data.training_repeats([row["question"] for row in train], [row["question"] for row in candidates])
    same_problem = {problem(row) for row in train}
    flagged = [row for row, label in zip(candidates, labels) if label]
    assert flagged and all(problem(row) in same_problem for row in flagged)


def test_drop_training_repeats_from_the_bundled_heldout_split():
    import datasets

    train, heldout = (datasets.Dataset.from_list(data.bundled_rows(split)) for split in ("train", "heldout"))
    kept, dropped = data.drop_training_repeats(heldout, train)
    assert dropped["near"] > 0  # the bundled split holds near repeats: one template, the same numbers
    assert len(kept) + dropped["exact"] + dropped["near"] == len(heldout)
    assert data.training_repeats(list(train["question"]), list(kept["question"])) == [None] * len(kept)


@pytest.mark.skipif(importlib.util.find_spec("modelscope") is not None,
                    reason="the modelscope client is installed here: this test is about a machine without it")
def test_modelscope_without_its_client_says_how_to_install_it(hub, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, "modelscope")
    with pytest.raises(ModuleNotFoundError, match="pip install modelscope"):
        data.load_math_dataset("heldout")
    assert hub.calls == []  # asked for ModelScope: the Hub is not consulted


@pytest.mark.skipif(importlib.util.find_spec("modelscope") is not None,
                    reason="the modelscope client is installed here: this test is about a machine without it")
def test_auto_with_the_model_from_modelscope_falls_back_and_says_why(hub, monkeypatch):
    """ERNIE_COURSE_MODEL=modelscope makes auto try ModelScope's orca-math when the Hub is out of reach; without the
    client that fails, and the bundled problems come with the reason."""
    monkeypatch.setenv("ERNIE_COURSE_MODEL", "modelscope")
    table, choice = data.load_math_dataset("heldout")
    assert choice.source == "bundled" and table.num_rows == data.HELDOUT_SIZE
    assert "ModelScope" in choice.reason and "pip install modelscope" in choice.reason


def test_offline_data_banner_says_how_to_reach_orca_math_in_both_languages(hub, monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    _, choice = data.load_math_dataset("heldout")
    assert "HF_ENDPOINT=https://hf-mirror.com" in choice.banner() and "modelscope" in choice.banner()
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    _, choice = data.load_math_dataset("heldout")
    assert choice.banner().startswith("离线数据") and "HF_ENDPOINT=https://hf-mirror.com" in choice.banner()
