"""course_lib.validation on the learner's side of things: files with bad lines and bad values, misnamed and
wrapped files, the five shapes and their mixes, conversations of several turns, and lengths measured with the
tiny slice's tokenizer against what TRL's SFTTrainer really tokenizes, cuts and trains."""

import json

import datasets
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib.data import bundled_rows, to_messages
from course_lib.ernie import END_OF_TURN
from course_lib.tiny_ernie import ensure_tiny_ernie
from course_lib.training import label_runs
from course_lib.validation import Rows, detect_shape, load_rows, to_question_answer, token_lengths, validate


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ensure_tiny_ernie("tiny"))


def write_jsonl(path, rows_or_lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in rows_or_lines) + "\n")
    return path


def trl_dataset(tokenizer, rows, tmp_path, max_length=None):
    """The train_dataset a real SFTTrainer tokenizes from these conversations (assistant-only loss, as notebook 4)."""
    from trl import SFTConfig, SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny"))
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", assistant_only_loss=True, max_steps=1,
                     max_length=max_length, shuffle_dataset=False)
    return SFTTrainer(model=model, processing_class=tokenizer, train_dataset=datasets.Dataset.from_list(rows),
                      args=args).train_dataset


def test_the_course_data_is_clean(tokenizer):
    rows = bundled_rows("train")
    report = validate(rows, tokenizer, max_length=1024)
    assert report.ok and report.bad_rows == [] and 100 < report.longest < 1024
    assert "OK" in str(report)
    clean, message = report.drop_bad()
    assert message == "kept 2,000 of 2,000 rows"
    assert clean[0] == to_messages(rows[0]) | rows[0]  # the course's shape: messages, question, answer


NOTEBOOK_FILE = [  # notebook 3's example: Alpaca rows with the usual accidents, line 5 missing a comma
    '{"instruction": "What is 12 x 3?", "input": "", "output": "12 x 3 = 36.\\nThe answer is 36."}',
    '{"instruction": "Share 20 sweets among 4 children.", "input": "How many each?", "output": ""}',
    '{"instruction": 7, "input": "", "output": "The answer is 7."}',
    '{"instruction": "What is 12 x 3?", "input": "", "output": "12 x 3 = 36.\\nThe answer is 36."}',
    '{"instruction": "How many legs do 3 cats have?" "output": "3 x 4 = 12.\\nThe answer is 12."}',
    '{"instruction": "What is 9 - 4?", "input": "", "output": "9 - 4 = 5.\\nThe answer is 5."}',
]


def test_a_broken_line_is_reported_with_every_other_problem_in_one_pass(tmp_path):
    rows = to_question_answer(load_rows(write_jsonl(tmp_path / "my_data.jsonl", NOTEBOOK_FILE)))
    report = validate(rows)
    print(report)
    text = str(report)
    assert "1 line of my_data.jsonl could not be read" in text
    assert "line 5: not valid JSON: Expecting ',' delimiter (column 49)" in text
    assert report.bad_fields == {1: "answer is empty", 2: "question is an int (7), not text"}
    assert report.duplicates == {3: 0} and rows.lines == [1, 2, 3, 4, 6]
    assert "row 4" not in text and "row 2 (my_data.jsonl line 3): question is an int" in text
    assert "3 of 5 rows would train badly, and 1 line could not be read" in text and not report.ok
    clean, message = report.drop_bad()
    assert [row["question"] for row in clean] == ["What is 12 x 3?", "What is 9 - 4?"]
    assert message.endswith("; left out 1 unreadable line of my_data.jsonl")


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
    assert report.bad_fields == {1: "answer is empty", 2: "question is an int (42), not text", 4: "answer is null",
                                 5: "question is only whitespace",
                                 6: "answer is missing: the row has the columns question"}
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
    assert message == ("kept 2 of 8 rows; dropped 6 (5 with empty, null or non-text fields, 1 duplicate): "
                       "rows 1, 2, 3, 4, 5, 6")


def test_rows_of_other_columns_name_the_columns_they_have_and_how_to_map_them(tmp_path):
    path = write_jsonl(tmp_path / "mixed_names.jsonl", [
        {"question": "What is 2 + 2?", "answer": "4"},
        {"query": "What is 3 + 3?", "response": "6"},        # another dataset's names
        {"question": "What is 4 + 4?", "response": "8"},     # half renamed
    ])
    report = validate(to_question_answer(load_rows(path)))
    print(report)
    assert report.kind("columns") == {1: "has the columns query, response, which fit no shape the course reads: map "
                                         "them, e.g. to_question_answer(rows, columns={'query': 'question', "
                                         "'response': 'answer'})",
                                      2: "has the columns question, response, which fit no shape the course reads: "
                                         "map them, e.g. to_question_answer(rows, columns={'response': 'answer'})"}
    fixed = to_question_answer(load_rows(path), columns={"query": "question", "response": "answer"})
    assert validate(fixed).ok and [row["answer"] for row in fixed] == ["4", "6", "8"]
    whole = validate(load_rows(write_jsonl(tmp_path / "all.jsonl", [{"query": "a?", "response": "b"}])))
    assert whole.missing_columns and "map them: to_question_answer(rows, columns={'query': 'question', " in str(whole)
    half = validate([{"question": "a?", "answer": "b"}, {"question": "c?", "output": "d"}])
    assert half.bad_fields == {1: "answer is missing: the row has the columns question, output; if 'output' holds "
                                  "the answer, map it: to_question_answer(rows, columns={'output': 'answer'})"}


def test_more_than_five_problems_are_counted_and_the_first_five_shown():
    rows = [{"question": f"q{i}", "answer": ""} for i in range(12)]
    text = str(validate(rows))
    assert "12 rows with empty, null or non-text fields" in text and "... and 7 more" in text
    assert "row 4: answer is empty" in text and "row 5:" not in text


def test_malformed_jsonl_names_every_bad_line_and_keeps_the_good_ones(tmp_path):
    path = write_jsonl(tmp_path / "broken.jsonl", [{"question": "a", "answer": "b"},
                                                   '{"question": "Half of 10?" "answer": "5"}', "[1, 2]",
                                                   '{"question": "c", "answer": "d"}', "{'single': 'quotes'}"])
    rows = load_rows(path)
    assert list(rows) == [{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}] and rows.lines == [1, 4]
    assert sorted(rows.unreadable) == [2, 3, 5]
    assert rows.unreadable[2].startswith("not valid JSON: Expecting ',' delimiter (column 28)")
    assert rows.unreadable[3].startswith("a JSON list, not an object")
    assert "Expecting property name enclosed in double quotes" in rows.unreadable[5]
    assert "3 lines of broken.jsonl could not be read" in str(validate(rows))
    with pytest.raises(ValueError, match=r"no row could be read\.\n  line 1: not valid JSON"):
        load_rows(write_jsonl(tmp_path / "none.jsonl", ["{'a': 1}", "{'b': 2}"]))


def test_misnamed_and_wrapped_files_are_read_and_said_so(tmp_path):
    rows = [{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}]
    cases = {  # file -> (contents, what the note says it is)
        "array.jsonl": (json.dumps(rows, indent=1), "array.jsonl is one JSON array, not JSON Lines: read it as one"),
        "wrapped.json": (json.dumps({"version": 2, "data": rows}, indent=2),
                         "wrapped.json holds the rows under the key 'data': read them from there"),
        "table.jsonl": ("question,answer\na,b\n\"c\",d\n", "table.jsonl is CSV (its first line is 'question,answer'), "
                                                            "not JSON Lines: read it as CSV. Rename it to .csv."),
        "excel.csv": ("question;answer\na;b\nc;d\n", "excel.csv is separated by semicolons, not commas"),
        "lines.json": ("\n".join(json.dumps(row) for row in rows), "lines.json is JSON Lines (one object a line)"),
    }
    for name, (text, note) in cases.items():
        (tmp_path / name).write_text(text)
        loaded = load_rows(tmp_path / name)
        assert list(loaded) == rows and loaded.notes[0].startswith(note), (name, loaded.notes)
        assert validate(loaded).ok and f"note: {note}" in str(validate(loaded))
    assert load_rows(tmp_path / "wrapped.json").lines == [4, 8]  # where each object starts, as an editor shows


def test_rows_that_are_not_objects_name_the_file_and_line(tmp_path):
    (tmp_path / "list.json").write_text('[\n  {"question": "a", "answer": "b"},\n  "just text",\n  [1, 2]\n]\n')
    rows = load_rows(tmp_path / "list.json")
    assert rows.unreadable == {3: "a JSON str, not an object {...}: '\"just text\"'",
                               4: "a JSON list, not an object {...}: '[1, 2]'"}
    assert "  line 3: a JSON str, not an object" in str(validate(rows)) and "of list.json could not be read" in str(
        validate(rows))
    (tmp_path / "two.json").write_text(json.dumps({"train": [{"question": "a", "answer": "b"}],
                                                   "test": [{"question": "c", "answer": "d"}]}))
    with pytest.raises(ValueError, match=r"keys 'train', 'test'.*several hold rows.*\['train'\]"):
        load_rows(tmp_path / "two.json")
    with pytest.raises(ValueError, match=r"not valid JSON at line 2, column 1"):
        (tmp_path / "bad.json").write_text('[{"question": "a"}\n}')
        load_rows(tmp_path / "bad.json")


def test_a_file_mixing_two_shapes_loses_neither(tmp_path):
    path = write_jsonl(tmp_path / "two_shapes.jsonl", [
        {"question": "a?", "answer": "b"}, {"question": "c?", "answer": "d"}, {"question": "e?", "answer": "f"},
        {"instruction": "g?", "output": "h"}, "", {"instruction": "i?", "input": "j", "output": "k"}])
    with pytest.raises(ValueError, match=r"2 shapes: 3 rows question_answer \(lines 1-3\); 2 rows alpaca \(lines 4, 6\)"):
        detect_shape(load_rows(path))
    rows = to_question_answer(load_rows(path))
    assert [row["question"] for row in rows] == ["a?", "c?", "e?", "g?", "i?\n\nj"]
    assert rows.notes == ["the rows are in 2 shapes, each read in its own: 3 rows question_answer (lines 1-3); "
                          "2 rows alpaca (lines 4, 6)"]
    assert validate(rows).ok
    one_shape = validate(to_question_answer(load_rows(path), shape="question_answer"))
    assert sorted(one_shape.kind("columns")) == [3, 4]
    assert "the alpaca shape, not question_answer: call to_question_answer(rows) without shape=" in str(one_shape)


def test_lines_of_a_file_with_the_wrong_number_of_fields_are_reported(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text("question,answer\nHow many?,3\nHow much?,3,50 dollars\n")
    report = validate(load_rows(path))
    print(report)
    assert "line 3: 3 fields, the header has 2 (question, answer)" in str(report) and "double quotes" in str(report)
    assert report.drop_bad()[1] == "kept 1 of 1 row; left out 1 unreadable line of commas.csv"


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
    assert rows.lines == [2, 4, 5] and rows[0]["answer"] == "2 + 2 = 4.\nThe answer is 4." and not rows.notes
    assert "row 1 (mine.csv line 4): answer is empty" in str(validate(rows))


SAME = ("What is 6 x 7?", "6 x 7 = 42.\nThe answer is 42.")


@pytest.mark.parametrize("shape, row", [
    ("question_answer", {"question": SAME[0], "answer": SAME[1], "source": "mine"}),
    ("alpaca", {"instruction": SAME[0], "input": "", "output": SAME[1]}),
    ("prompt_response", {"prompt": SAME[0], "response": SAME[1]}),
    ("sharegpt", {"conversations": [{"from": "human", "value": SAME[0]}, {"from": "gpt", "value": SAME[1]}]}),
    ("sharegpt", {"conversations": [{"from": "user", "value": SAME[0]}, {"from": "assistant", "value": SAME[1]}]}),
    ("openai", {"messages": [{"role": "user", "content": SAME[0]}, {"role": "assistant", "content": SAME[1]}]}),
], ids=["question_answer", "alpaca", "prompt_response", "sharegpt-human-gpt", "sharegpt-user-assistant", "openai"])
def test_every_shape_becomes_question_and_answer(shape, row):
    assert detect_shape([row]) == shape
    for given in (None, shape):  # detected, and declared
        rows = to_question_answer([row], shape=given)
        assert list(rows) == [{"question": SAME[0], "answer": SAME[1]}] and not rows.notes
        assert validate(rows).ok


def test_a_system_turn_is_kept_and_said_so():
    system = {"role": "system", "content": "Be brief."}
    rows = to_question_answer([{"messages": [system, {"role": "user", "content": SAME[0]},
                                             {"role": "assistant", "content": SAME[1]}]}])
    assert rows[0]["messages"][0] == system and rows.notes == ["kept the system turn of 1 row (it is read, never trained)"]
    report = validate(rows)
    assert report.ok and "note: kept the system turn" in str(report)
    assert report.drop_bad()[0] == [{"messages": rows[0]["messages"]}]


def test_alpaca_input_follows_the_instruction():
    rows = to_question_answer([{"instruction": "Add the numbers.", "input": "3 and 4", "output": "7"}])
    assert rows[0]["question"] == "Add the numbers.\n\n3 and 4"


TWO_TURNS = [{"from": "human", "value": "Maya buys 3 pens at $2 each. How much?"}, {"from": "gpt", "value": "$6."},
             {"from": "user", "value": "And 5 pens?"}, {"from": "assistant", "value": "$10."}]


def test_conversation_problems_are_their_own_kind(tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", [
        {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        {"conversations": TWO_TURNS},
        {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"},
                           {"from": "gpt", "value": "c"}]},
        {"conversations": TWO_TURNS[:3]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]},
        {"conversations": "human: a / gpt: b"},
        {"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": ""}]},
        {"conversations": [{"from": "human", "value": "a"}, {"from": "system", "value": "b"},
                           {"from": "gpt", "value": "c"}]},
    ])
    report = validate(to_question_answer(load_rows(path), "sharegpt"))
    print(report)
    assert report.kind("conversation") == {
        2: "conversations has the turns ['assistant', 'user']: starts with the assistant: the first turn after any "
           "system turn must be the user's",
        3: "conversations has the turns ['user', 'user', 'assistant']: two user turns in a row (turns 1 and 2): user "
           "and assistant must take turns",
        4: "conversations has the turns ['user', 'assistant', 'user']: ends with the user: nothing after it to train",
        5: "turn 2 has the role 'bot': use 'human'/'user', 'gpt'/'assistant' or 'system'",
        6: "conversations is str, not a list of turns",
        7: "turn 1 of conversations needs 'from' and 'value': {'role': 'user', 'content': 'a'}",
        9: "conversations has the turns ['user', 'system', 'assistant']: a system turn after the first turn"}
    assert report.bad_fields == {8: "turn 2 (assistant) value is empty"}  # an empty answer is a field, not a shape
    text = str(report)
    assert "7 rows whose turns are not user and assistant in turn" in text and "1 row with empty, null" in text
    assert "row 6 (chats.jsonl line 7): conversations is str" in text
    assert report.drop_bad()[1] == ("kept 2 of 10 rows; dropped 8 (1 with empty, null or non-text fields, 7 with "
                                    "misordered turns): rows 2, 3, 4, 5, 6, 7, 8, 9")


def test_several_turns_are_kept_as_messages_and_trl_trains_every_answer(tokenizer, tmp_path):
    rows = to_question_answer([{"conversations": TWO_TURNS}])
    report = validate(rows, tokenizer, max_length=1024)
    assert report.ok, str(report)
    clean, _ = report.drop_bad()
    assert clean == [{"messages": [{"role": "user", "content": TWO_TURNS[0]["value"]},
                                   {"role": "assistant", "content": "$6."},
                                   {"role": "user", "content": "And 5 pens?"},
                                   {"role": "assistant", "content": "$10."}]}]
    tokenized = trl_dataset(tokenizer, clean, tmp_path)
    assert [len(ids) for ids in tokenized["input_ids"]] == list(report.lengths.values())
    trained = [tokenizer.decode(ids).removeprefix(" ")  # the tokenizer joins the space after "Assistant:" to the answer
               for keep, ids in label_runs(tokenized[0]["input_ids"], tokenized[0]["labels"]) if keep]
    assert trained == [f"$6.{END_OF_TURN}", f"$10.{END_OF_TURN}"]  # both answers, nothing of the questions


def test_shape_detection_explains_what_it_found():
    with pytest.raises(ValueError) as error:
        detect_shape([{"q": "a", "a": "b"}])
    print(error.value)
    assert "its columns are ['q', 'a']" in str(error.value) and "alpaca: instruction, output" in str(error.value)
    assert "map them: to_question_answer(rows, columns={'q': 'question', 'a': 'answer'})" in str(error.value)
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
    rows = bundled_rows("train")[:6] + [{"question": "How many? " * 40, "answer": "The answer is 3."}]
    max_length = 100  # the bundled rows here are 91 to 136 tokens long: some fit, some are cut
    report = validate(rows, tokenizer, max_length=max_length)
    print(report)
    assert "TRL cuts them to their first max_length tokens" in str(report)
    assert f"Raise max_length to {report.longest}, or drop them" in str(report)
    assert 6 in report.too_long and 2 <= len(report.too_long) <= 5  # the long question, and some cut, some not

    messages = [to_messages(row) for row in rows]
    whole = trl_dataset(tokenizer, messages, tmp_path)
    assert [len(ids) for ids in whole["input_ids"]] == token_lengths(tokenizer, [m["messages"] for m in messages])
    assert {i: len(ids) for i, ids in enumerate(whole["input_ids"]) if len(ids) > max_length} == report.too_long

    cut = trl_dataset(tokenizer, messages, tmp_path, max_length=max_length)
    assert len(cut) == len(rows) - 1  # the row of a long question is gone
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    kept = [i for i in range(len(rows)) if i != 6]
    for i, labels in zip(kept, cut["labels"]):
        assert (labels[-1] == end) == (i not in report.too_long), i  # a cut row never trains its end marker


def test_length_advice_never_goes_past_what_the_model_takes(tokenizer, caplog):
    """Rows longer than tokenizer.model_max_length (4,096 here, as ERNIE's) cannot be fixed by raising max_length:
    the report says to drop or split them, and transformers' own too-long warning stays out of it."""
    assert tokenizer.model_max_length == 4096
    rows = [{"question": "What is 2 + 2?", "answer": "4"}, {"question": "Count: " + "one two " * 600, "answer": "ok"},
            {"question": "Count: " + "one two " * 3000, "answer": "ok"}, {"question": "x" * 2_000_000, "answer": "ok"}]
    report = validate(rows, tokenizer, max_length=1024)
    print(report)
    lengths = report.lengths
    assert 1024 < lengths[1] <= 4096 < lengths[2] < lengths[3] == report.longest
    text = str(report)
    assert (f"2 of them are longer than the model takes at all (4,096 tokens, tokenizer.model_max_length): drop "
            f"or split them; for the others, raise max_length to {lengths[1]:,} (at most 4,096), or drop them") in text
    assert f"to {report.longest:,}" not in text
    assert "Token indices sequence length" not in caplog.text
    tokenizer("one two " * 3000)  # the warning is silenced for the measuring only: a learner's own call still gets it
    assert "Token indices sequence length is longer" in caplog.text


def test_rows_keep_their_lines_through_conversion(tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "a", "output": "b"}, "",
                                                   {"instruction": "c", "output": ""}])
    rows = to_question_answer(load_rows(path))
    assert isinstance(rows, Rows) and rows.lines == [1, 3]
    assert "row 1 (alpaca.jsonl line 3): answer is empty" in str(validate(rows))


def test_the_report_speaks_chinese_and_still_names_the_rows(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    report = validate([{"question": "q", "answer": ""}, {"question": "q2", "answer": "a"},
                       {"question": "q2", "answer": "a"}])
    lines = str(report).splitlines()
    assert lines[0] == "已检查 3 行（行号从 0 开始，和 rows[i] 一样）"
    assert "1 行有空的、null 或不是文本的字段" in lines and "  行 2：重复第 1 行" in lines
    assert "  行 0：answer 是空的" in lines  # the row's own reason too, not only the report around it
    assert lines[-1] == "3 行中有 2 行会训练出问题：请在数据中修正它们，或调用 report.drop_bad() 把它们去掉。"
    assert report.drop_bad()[1] == "3 行中保留 1 行；去掉 2 行（1 字段有误，1 重复）：第 0, 2 行"
