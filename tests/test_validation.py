"""course_lib.validation on the learner's side of things: files with bad lines and bad values, the five shapes,
and lengths measured with the tiny slice's tokenizer against what TRL's SFTTrainer really tokenizes and cuts."""

import json

import datasets
import pytest
from transformers import AutoTokenizer

from course_lib.data import bundled_rows, to_messages
from course_lib.ernie import END_OF_TURN
from course_lib.tiny_ernie import ensure_tiny_ernie
from course_lib.validation import Rows, detect_shape, load_rows, to_question_answer, token_lengths, validate


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ensure_tiny_ernie("tiny"))


def write_jsonl(path, rows_or_lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in rows_or_lines) + "\n")
    return path


def test_the_course_data_is_clean(tokenizer):
    rows = bundled_rows("train")
    report = validate(rows, tokenizer, max_length=1024)
    assert report.ok and report.bad_rows == [] and 100 < report.longest < 1024
    assert "OK" in str(report)
    clean, message = report.drop_bad()
    assert message == "kept 2,000 of 2,000 rows"
    assert clean[0] == to_messages(rows[0]) | rows[0]  # the course's shape: messages, question, answer


def test_bad_values_are_reported_by_row_and_line(tmp_path):
    good = {"question": "What is 2 + 2?", "answer": "2 + 2 = 4.\nThe answer is 4."}
    path = write_jsonl(tmp_path / "mine.jsonl", [
        good,                                                  # line 1, row 0
        {"question": "What is 3 + 3?", "answer": ""},          # line 2, row 1: empty
        {"question": 42, "answer": "The answer is 42."},       # line 3, row 2: not text
        "",                                                    # line 4: blank, skipped
        good,                                                  # line 5, row 3: duplicate of row 0
        {"question": "Half of 10?", "answer": None},           # line 6, row 4: null
        {"question": "   ", "answer": "5"},                    # line 7, row 5: whitespace
        {"question": "Half of 10?"},                           # line 8, row 6: no answer key
        {"question": "Double 4?", "answer": "8"},              # line 9, row 7: fine
    ])
    report = validate(load_rows(path))
    print(report)
    assert not report.ok and repr(report) == str(report)  # a cell ending in `report` shows the readable text
    assert report.bad_fields == {1: "answer is empty", 2: "question is an int (42), not text", 4: "answer is missing",
                                 5: "question is only whitespace", 6: "answer is missing"}
    assert report.duplicates == {3: 0}
    assert report.bad_rows == [1, 2, 3, 4, 5, 6]
    text = str(report)
    assert "row 1 (mine.jsonl line 2): answer is empty" in text
    assert "row 3 (mine.jsonl line 5): repeats row 0" in text
    assert "row numbers count from 0" in text and "lines of mine.jsonl from 1" in text
    with pytest.raises(ValueError, match=r"6 of 8 rows would train badly.*drop_bad"):
        report.raise_if_bad()
    clean, message = report.drop_bad()
    assert [row["question"] for row in clean] == ["What is 2 + 2?", "Double 4?"]
    assert clean[1]["messages"] == [{"role": "user", "content": "Double 4?"}, {"role": "assistant", "content": "8"}]
    assert message == ("kept 2 of 8 rows; dropped 6 (5 with empty or non-string fields, 1 duplicate): "
                       "rows 1, 2, 3, 4, 5, 6")


def test_more_than_five_problems_are_counted_and_the_first_five_shown():
    rows = [{"question": f"q{i}", "answer": ""} for i in range(12)]
    text = str(validate(rows))
    assert "12 rows with empty or non-string fields" in text and "... and 7 more" in text
    assert "row 4: answer is empty" in text and "row 5:" not in text


def test_malformed_jsonl_names_every_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "broken.jsonl", [{"question": "a", "answer": "b"},
                                                   '{"question": "Half of 10?" "answer": "5"}', "[1, 2]",
                                                   '{"question": "c", "answer": "d"}', "{'single': 'quotes'}"])
    with pytest.raises(ValueError) as error:
        load_rows(path)
    print(error.value)
    message = str(error.value)
    assert "3 lines not valid JSON Lines" in message
    assert "line 2: Expecting ',' delimiter (column 28)" in message
    assert "line 3: a JSON list, not an object" in message
    assert "line 5: Expecting property name enclosed in double quotes" in message
    assert "line 1" not in message and "line 4" not in message


def test_a_json_array_saved_as_jsonl_is_explained(tmp_path):
    path = tmp_path / "array.jsonl"
    path.write_text(json.dumps([{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}], indent=1))
    with pytest.raises(ValueError, match="one JSON array, not JSON Lines; name it .json"):
        load_rows(path)
    renamed = path.rename(tmp_path / "array.json")
    assert [row["question"] for row in load_rows(renamed)] == ["a", "c"]


def test_empty_missing_and_non_utf8_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="has no rows"):
        load_rows(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rows(tmp_path / "nope.jsonl")
    (tmp_path / "latin1.csv").write_bytes("question,answer\nCafé?,Oui\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text .*CSV UTF-8"):
        load_rows(tmp_path / "latin1.csv")


def test_csv_rows_keep_their_line_numbers_across_quoted_newlines(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('\ufeffquestion,answer\n'            # line 1: header, with Excel's byte-order mark
                    '"What is 2 + 2?","2 + 2 = 4.\nThe answer is 4."\n'  # lines 2-3: one row
                    'What is 3 + 3?,\n'                 # line 4: empty answer
                    'What is 5 + 5?,10\n')              # line 5
    rows = load_rows(path)
    assert rows.lines == [2, 4, 5] and rows[0]["answer"] == "2 + 2 = 4.\nThe answer is 4."
    assert "row 1 (mine.csv line 4): answer is empty" in str(validate(rows))


def test_csv_with_a_stray_comma_names_the_line(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text("question,answer\nHow many?,3\nHow much?,3,50 dollars\n")
    with pytest.raises(ValueError) as error:
        load_rows(path)
    print(error.value)
    assert "line 3: 3 fields, the header has 2 (question, answer)" in str(error.value)
    assert "double quotes" in str(error.value)


SAME = ("What is 6 x 7?", "6 x 7 = 42.\nThe answer is 42.")


@pytest.mark.parametrize("shape, row", [
    ("question_answer", {"question": SAME[0], "answer": SAME[1], "source": "mine"}),
    ("alpaca", {"instruction": SAME[0], "input": "", "output": SAME[1]}),
    ("prompt_response", {"prompt": SAME[0], "response": SAME[1]}),
    ("sharegpt", {"conversations": [{"from": "human", "value": SAME[0]}, {"from": "gpt", "value": SAME[1]}]}),
    ("openai", {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": SAME[0]},
                             {"role": "assistant", "content": SAME[1]}]}),
])
def test_every_shape_becomes_question_and_answer(shape, row):
    assert detect_shape([row]) == shape
    for given in (None, shape):  # detected, and declared
        rows = to_question_answer([row], shape=given)
        assert list(rows) == [{"question": SAME[0], "answer": SAME[1]}]
        assert validate(rows).ok
    if shape == "openai":
        assert rows.note.startswith("left out the system turn of 1 row:")
        assert "note: left out the system turn" in str(validate(rows))


def test_alpaca_input_follows_the_instruction():
    rows = to_question_answer([{"instruction": "Add the numbers.", "input": "3 and 4", "output": "7"}])
    assert rows[0]["question"] == "Add the numbers.\n\n3 and 4"


def test_conversations_that_are_not_one_question_and_one_answer_are_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", [
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
                           {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]},
        {"conversations": "human: a / gpt: b"},
        {"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ])
    report = validate(to_question_answer(load_rows(path), "sharegpt"))
    print(report)
    assert report.bad_fields == {
        1: "conversations has the turns ['human', 'gpt', 'human', 'gpt']; the course trains exactly one 'human' "
           "turn then one 'gpt' turn: split longer conversations into pairs",
        2: "conversations has the turns ['human', 'bot']; the course trains exactly one 'human' turn then one "
           "'gpt' turn: split longer conversations into pairs",
        3: "conversations is str, not a list of turns",
        4: "every turn of conversations needs 'from' and 'value'"}
    assert "row 3 (chats.jsonl line 4): conversations is str" in str(report)
    assert [row["question"] for row in report.drop_bad()[0]] == ["Hi?"]


def test_shape_detection_explains_what_it_found():
    with pytest.raises(ValueError) as error:
        detect_shape([{"q": "a", "a": "b"}])
    print(error.value)
    assert "its columns are ['q', 'a']" in str(error.value) and "alpaca: instruction, output" in str(error.value)
    course_rows = [to_messages({"question": "a", "answer": "b"}) | {"question": "a", "answer": "b"}]
    with pytest.raises(ValueError) as error:
        to_question_answer(course_rows)
    print(error.value)
    assert "several shapes (question_answer, openai)" in str(error.value)
    assert "shape='question_answer'" in str(error.value)
    with pytest.raises(ValueError, match=r"shape='alpaca' needs the column\(s\) \['instruction', 'output'\]"):
        to_question_answer([{"question": "a", "answer": "b"}], shape="alpaca")


def test_rows_of_another_shape_report_missing_columns_and_the_fix():
    report = validate([{"instruction": "Add 3 and 4.", "input": "", "output": "7"}])
    print(report)
    assert report.missing_columns == ["question", "answer"] and not report.ok
    assert "rows have ['instruction', 'input', 'output']" in str(report)
    assert "look like the 'alpaca' shape: call to_question_answer(rows) first" in str(report)
    with pytest.raises(ValueError, match="MISSING COLUMNS"):
        report.drop_bad()


def test_datasets_dataframes_and_lists_load_alike():
    import pandas as pd

    rows = bundled_rows("heldout")[:3]
    table = datasets.Dataset.from_list(rows)
    assert list(load_rows(table)) == list(load_rows(pd.DataFrame(rows))) == list(load_rows(rows)) == rows
    assert validate(table).ok
    with pytest.raises(ValueError, match=r"pick a split, e.g. load_rows\(dataset\['train'\]\)"):
        load_rows(datasets.DatasetDict({"train": table}))
    with pytest.raises(ValueError, match="row 1: 'just text'"):
        load_rows([rows[0], "just text"])


def test_pandas_missing_values_are_reported_not_crashed_on():
    import pandas as pd

    frame = pd.DataFrame({"question": ["a", None, "c"], "answer": ["x", "y", float("nan")]})
    assert validate(frame).bad_fields == {1: "question is missing (NaN: an empty cell)",
                                           2: "answer is missing (NaN: an empty cell)"}


def test_lengths_are_what_trl_tokenizes_and_long_rows_are_really_cut(tokenizer, tmp_path):
    """Validate with a small max_length, then hand the same rows to a real SFTTrainer: the lengths agree with its
    tokenized dataset, a long row loses its answer's end marker, and a row whose question alone fills
    max_length vanishes from the trainer's dataset, as the report says."""
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows = bundled_rows("train")[:6] + [{"question": "How many? " * 40, "answer": "The answer is 3."}]
    max_length = 100  # the bundled rows here are 91 to 136 tokens long: some fit, some are cut
    report = validate(rows, tokenizer, max_length=max_length)
    print(report)
    assert "TRL cuts them to their first max_length tokens" in str(report)
    assert 6 in report.too_long and 2 <= len(report.too_long) <= 5  # the long question, and some cut, some not

    model = AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny"))
    args = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", assistant_only_loss=True, max_steps=1)
    messages = datasets.Dataset.from_list([to_messages(row) for row in rows])
    whole = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=messages,
                       args=SFTConfig(**args, max_length=None, shuffle_dataset=False)).train_dataset
    assert [len(ids) for ids in whole["input_ids"]] == token_lengths(tokenizer, list(messages["messages"]))
    assert {i: len(ids) for i, ids in enumerate(whole["input_ids"]) if len(ids) > max_length} == report.too_long

    cut = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=messages,
                     args=SFTConfig(**args, max_length=max_length, shuffle_dataset=False)).train_dataset
    assert len(cut) == len(rows) - 1  # the row of a long question is gone
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    kept = [i for i in range(len(rows)) if i != 6]
    for i, labels in zip(kept, cut["labels"]):
        assert (labels[-1] == end) == (i not in report.too_long), i  # a cut row never trains its end marker


def test_rows_keep_their_lines_through_conversion(tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "a", "output": "b"}, "",
                                                   {"instruction": "c", "output": ""}])
    rows = to_question_answer(load_rows(path))
    assert isinstance(rows, Rows) and rows.lines == [1, 3]
    assert "row 1 (alpaca.jsonl line 3): answer is empty" in str(validate(rows))
