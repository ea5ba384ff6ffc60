"""Check a learner's own data before training on it: load it, map its shape to question/answer, and report
every row that would train badly, by number, with what to do about it.

Row numbers count from 0, as `rows[i]` and `dataset[i]` do; line numbers of a file count from 1, as
editors show them. The clean rows come out in the course's shape: `question`, `answer` and `messages`
(a user turn and an assistant turn, as `course_lib.data.to_messages` makes them).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.data import to_messages

# shape -> the columns it needs. Alpaca's `input` is optional: when present it is added to the instruction.
SHAPES = {
    "question_answer": ("question", "answer"),
    "alpaca": ("instruction", "output"),
    "prompt_response": ("prompt", "response"),
    "sharegpt": ("conversations",),
    "openai": ("messages",),
}
TURN_KEYS = {"sharegpt": ("from", "value", "human", "gpt"), "openai": ("role", "content", "user", "assistant")}
SHOWN = 5  # problem rows printed per kind; the counts are always complete


def count(n: int, noun: str) -> str:
    """count(1, "row") -> "1 row", count(2000, "row") -> "2,000 rows"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


class Rows(list):
    """A list of row dicts that remembers where each row came from (`lines[i]`: its line in the file, or
    None) and why a row could not be converted (`problems[i]`)."""

    def __init__(self, rows=(), lines=None, source="", problems=None, note=""):
        super().__init__(rows)
        self.lines = list(lines) if lines is not None else [None] * len(self)
        self.source, self.problems, self.note = source, dict(problems or {}), note


def where(rows, i: int) -> str:
    """"row 3" or "row 3 (data.jsonl line 5)"."""
    line = rows.lines[i]
    return f"row {i}" if line is None else f"row {i} ({Path(rows.source).name} line {line})"


def load_rows(source) -> Rows:
    """Rows from a .jsonl / .json / .csv file, a list of dicts, a pandas DataFrame or a `datasets.Dataset`.

    A file that cannot be read raises ValueError naming its bad lines, so you can fix them in an editor.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (or is a folder): give the path of a .jsonl or .csv file")
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark, as Excel writes, is skipped
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#x} at position "
                             f"{error.start}); save it as UTF-8 (Excel: 'CSV UTF-8')") from None
        if path.suffix.lower() == ".csv":
            return read_csv(text, str(path))
        if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
            return read_json_array(text, str(path))
        return read_jsonl(text, str(path))
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas
        source = source.to_dict("records")
    if hasattr(source, "keys"):  # a DatasetDict, or one row instead of a list of rows
        raise ValueError(f"expected rows, got a mapping with keys {list(source.keys())}: pick a split, "
                         "e.g. load_rows(dataset['train']), or pass a list of rows")
    rows = list(source)  # a datasets.Dataset iterates as dicts
    not_dicts = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if not_dicts:
        raise ValueError(f"{count(len(not_dicts), 'row')} not a dict, e.g. row {not_dicts[0]}: "
                         f"{rows[not_dicts[0]]!r:.80}; each row must be a dict like "
                         "{'question': ..., 'answer': ...}")
    return Rows(rows)


def read_jsonl(text: str, source: str) -> Rows:
    rows, lines, bad = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines, often one at the end, are harmless
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            bad.append(f"line {number}: {error.msg} (column {error.colno}): {line.strip()[:60]!r}")
            continue
        if not isinstance(row, dict):
            bad.append(f"line {number}: a JSON {type(row).__name__}, not an object {{...}}: {line.strip()[:60]!r}")
            continue
        rows.append(row)
        lines.append(number)
    if bad:
        hint = ""
        if text.lstrip().startswith("["):
            hint = (" The file starts with '[': it is one JSON array, not JSON Lines; name it .json, or write one "
                    "object per line.")
        raise ValueError(f"{source}: {count(len(bad), 'line')} not valid JSON Lines (one {{...}} object a line):\n  "
                         + "\n  ".join(bad[:SHOWN]) + ("\n  ..." if len(bad) > SHOWN else "")
                         + f"\nFix or delete {'this line' if len(bad) == 1 else 'these lines'} in the file.{hint}")
    if not rows:
        raise ValueError(f"{source} has no rows: it is empty or blank")
    return Rows(rows, lines, source)


def read_json_array(text: str, source: str) -> Rows:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not valid JSON at line {error.lineno}, column {error.colno}: "
                         f"{error.msg}") from None
    return Rows(load_rows(rows), source=source)


def read_csv(text: str, source: str) -> Rows:
    reader = csv.reader(text.splitlines(keepends=True))
    header, rows, lines, bad = None, [], [], []
    while True:
        start = reader.line_num + 1  # the line a record starts on, even when a quoted field spans lines
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ValueError(f"{source} line {start}: {error}; check the quotes on that line") from None
        if not fields:
            continue
        if header is None:
            header = [name.strip() for name in fields]
        elif len(fields) != len(header):
            bad.append(f"line {start}: {len(fields)} fields, the header has {len(header)} "
                       f"({', '.join(header)}): {','.join(fields)[:60]!r}")
        else:
            rows.append(dict(zip(header, fields)))
            lines.append(start)
    if bad:
        raise ValueError(f"{source}: {count(len(bad), 'line')} with the wrong number of fields:\n  "
                         + "\n  ".join(bad[:SHOWN])
                         + ("\n  ..." if len(bad) > SHOWN else "")
                         + "\nA comma inside a value needs the value in double quotes: \"3,5 apples\".")
    if not rows:
        raise ValueError(f"{source} has no data rows" + (f" (its header is {header})" if header else " (it is empty)"))
    return Rows(rows, lines, source)


def columns_of(rows) -> list[str]:
    """Every column that occurs in any row, in first-seen order."""
    seen = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def detect_shape(rows) -> str:
    """The one shape whose columns the rows have; ValueError saying what was found when none or several fit."""
    columns = columns_of(rows)
    fits = [shape for shape, needed in SHAPES.items() if all(c in columns for c in needed)]
    if len(fits) == 1:
        return fits[0]
    known = "; ".join(f"{shape}: {', '.join(needed)}" for shape, needed in SHAPES.items())
    if not fits:
        raise ValueError(f"cannot tell the shape of this data: its columns are {columns}. The shapes the course "
                         f"reads are ({known}). Rename your columns to one of these.")
    raise ValueError(f"the data fits several shapes ({', '.join(fits)}): its columns are {columns}. Say which "
                     f"to read: to_question_answer(rows, shape={fits[0]!r})")


def to_question_answer(rows, shape: str | None = None) -> Rows:
    """Rows of `question` and `answer` from any shape in SHAPES; shape=None detects it.

    A row that cannot be converted (a multi-turn conversation, a turn with the wrong role...) keeps
    question/answer None and its reason in `.problems`; `validate` reports it and `drop_bad` leaves it out.
    Alpaca's `input`, when not empty, goes after the instruction, separated by a blank line. System turns of
    conversations are left out (the course trains one user turn and one assistant turn); `.note` says so.
    """
    rows = rows if isinstance(rows, Rows) else load_rows(rows)
    shape = shape or detect_shape(rows)
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r} is not one of {list(SHAPES)}")
    missing = [c for c in SHAPES[shape] if c not in columns_of(rows)]
    if missing:
        raise ValueError(f"shape={shape!r} needs the column(s) {missing}; your rows have {columns_of(rows)}")
    out, problems, n_system = [], {}, 0
    for i, row in enumerate(rows):
        question, answer = None, None
        if shape == "question_answer":
            question, answer = row.get("question"), row.get("answer")
        elif shape == "alpaca":
            question, answer = row.get("instruction"), row.get("output")
            extra = row.get("input")
            if isinstance(question, str) and isinstance(extra, str) and extra.strip():
                question = f"{question}\n\n{extra}"
        elif shape == "prompt_response":
            question, answer = row.get("prompt"), row.get("response")
        else:
            turns, why, system = conversation_pair(row.get(SHAPES[shape][0]), shape)
            n_system += system
            if why:
                problems[i] = why
            else:
                question, answer = turns
        out.append({"question": question, "answer": answer})
    note = ""
    if n_system:
        note = (f"left out the system turn of {count(n_system, 'row')}: the course trains one user turn and one "
                "assistant turn")
    return Rows(out, rows.lines, rows.source, {**rows.problems, **problems}, note)


def conversation_pair(turns, shape: str):
    """((question, answer), None, system turns) for a one-question conversation, else (None, why, ...)."""
    role_key, text_key, user, assistant = TURN_KEYS[shape]
    column = SHAPES[shape][0]
    if not isinstance(turns, list):
        return None, f"{column} is {type(turns).__name__}, not a list of turns", 0
    if not all(isinstance(t, dict) and role_key in t and text_key in t for t in turns):
        return None, f"every turn of {column} needs '{role_key}' and '{text_key}'", 0
    system = [t for t in turns if t[role_key] == "system"]
    rest = [t for t in turns if t[role_key] != "system"]
    roles = [t[role_key] for t in rest]
    if roles != [user, assistant]:
        return None, (f"{column} has the turns {roles}; the course trains exactly one '{user}' turn then one "
                      f"'{assistant}' turn: split longer conversations into pairs"), len(system)
    return (rest[0][text_key], rest[1][text_key]), None, len(system)


@dataclass(repr=False)  # the generated repr would print every row; a notebook shows __repr__, so it is __str__
class Report:
    """What `validate` found. Row numbers count from 0; `str(report)` lists the first few of each kind."""

    rows: Rows
    columns: list[str]
    missing_columns: list[str] = field(default_factory=list)
    bad_fields: dict[int, str] = field(default_factory=dict)  # row -> what is wrong with question/answer
    duplicates: dict[int, int] = field(default_factory=dict)  # row -> the earlier row it repeats
    too_long: dict[int, int] = field(default_factory=dict)  # row -> tokens, when longer than max_length
    max_length: int | None = None
    longest: int | None = None  # tokens of the longest row, when a tokenizer was given
    shape_hint: str = ""

    @property
    def bad_rows(self) -> list[int]:
        """Rows that `drop_bad` leaves out: bad fields, later copies of a duplicate, and rows over max_length."""
        return sorted(set(self.bad_fields) | set(self.duplicates) | set(self.too_long))

    @property
    def ok(self) -> bool:
        return not self.missing_columns and not self.bad_rows

    def __str__(self) -> str:
        n = len(self.rows)
        if self.missing_columns:
            return (f"MISSING COLUMNS {self.missing_columns}: the rows have {self.columns}, and every row needs "
                    f"'question' and 'answer'.{self.shape_hint}")
        head = f"{count(n, 'row')} checked (row numbers count from 0, as in rows[i]"
        head += f"; lines of {Path(self.rows.source).name} from 1)" if self.rows.source else ")"
        if self.longest is not None:
            head += f"; longest {self.longest} tokens in the chat template"
        lines = [head + (f"; max_length {self.max_length}" if self.max_length else "")]
        if self.rows.note:
            lines.append(f"note: {self.rows.note}")
        if self.ok:
            return "\n".join(lines + ["OK: every question and answer is non-empty text, no duplicates"
                                      + (", none too long" if self.longest is not None and self.max_length else "")])
        sections = [
            ("with empty or non-string fields", self.bad_fields, lambda i: self.bad_fields[i], ""),
            ("duplicated exactly (same question and answer as an earlier row)", self.duplicates,
             lambda i: f"repeats row {self.duplicates[i]}", "drop_bad keeps the first copy"),
            (f"longer than max_length={self.max_length} tokens", self.too_long, lambda i: f"{self.too_long[i]} tokens",
             "TRL cuts them to their first max_length tokens, so the end of the answer and its "
             "<|end_of_sentence|> are never trained (the model does not learn to stop there), and TRL drops a row "
             "whose question alone fills max_length, with no warning. Raise max_length "
             f"to {self.longest} or drop them"),
        ]
        for title, found, say, consequence in sections:
            if found:
                lines.append(f"{count(len(found), 'row')} {title}" + (f": {consequence}" if consequence else ""))
                lines += [f"  {where(self.rows, i)}: {say(i)}" for i in sorted(found)[:SHOWN]]
                if len(found) > SHOWN:
                    lines.append(f"  ... and {len(found) - SHOWN} more")
        lines.append(f"{len(self.bad_rows):,} of {count(n, 'row')} would train badly: fix them in your data, or call "
                     "report.drop_bad() to leave them out.")
        return "\n".join(lines)

    __repr__ = __str__

    def raise_if_bad(self) -> None:
        if not self.ok:
            raise ValueError(str(self))

    def drop_bad(self) -> tuple[list[dict], str]:
        """(the good rows with question, answer and messages; a message saying what was dropped)."""
        if self.missing_columns:
            raise ValueError(str(self))
        bad = set(self.bad_rows)
        clean = [to_messages(row) | {"question": row["question"], "answer": row["answer"]}
                 for i, row in enumerate(self.rows) if i not in bad]
        kinds = [f"{len(self.bad_fields)} with empty or non-string fields" if self.bad_fields else "",
                 count(len(self.duplicates), "duplicate") if self.duplicates else "",
                 f"{len(self.too_long)} too long" if self.too_long else ""]
        message = f"kept {len(clean):,} of {count(len(self.rows), 'row')}"
        if bad:
            shown = ", ".join(map(str, sorted(bad)[:10])) + (", ..." if len(bad) > 10 else "")
            message += f"; dropped {len(bad)} ({', '.join(k for k in kinds if k)}): rows {shown}"
        return clean, message


def field_problem(value, name: str) -> str | None:
    if value is None:
        return f"{name} is missing"
    if isinstance(value, float) and value != value:
        return f"{name} is missing (NaN: an empty cell)"
    if not isinstance(value, str):
        kind = type(value).__name__
        return f"{name} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({value!r:.40}), not text"
    if not value.strip():
        return f"{name} is empty" if not value else f"{name} is only whitespace"
    return None


def validate(rows, tokenizer=None, max_length: int | None = None) -> Report:
    """Check rows of `question` and `answer` (anything `load_rows` reads, or `to_question_answer`'s output).

    With a tokenizer, each good row is rendered with its chat template exactly as TRL's SFTTrainer
    tokenizes it; rows longer than max_length tokens are reported.
    """
    rows = rows if isinstance(rows, Rows) else load_rows(rows)
    columns = columns_of(rows)
    missing = [c for c in ("question", "answer") if c not in columns]
    if missing:
        try:
            hint = f" They look like the {detect_shape(rows)!r} shape: call to_question_answer(rows) first."
        except ValueError as error:
            hint = f" ({error})"
        return Report(rows, columns, missing_columns=missing, shape_hint=hint)
    report = Report(rows, columns, max_length=max_length)
    first_seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        why = rows.problems.get(i) or field_problem(row.get("question"), "question") \
            or field_problem(row.get("answer"), "answer")
        if why:
            report.bad_fields[i] = why
            continue
        key = (row["question"], row["answer"])
        if key in first_seen:
            report.duplicates[i] = first_seen[key]
        else:
            first_seen[key] = i
    if tokenizer is not None:
        good = [i for i in range(len(rows)) if i not in report.bad_fields]
        lengths = token_lengths(tokenizer, [to_messages(rows[i])["messages"] for i in good])
        report.longest = max(lengths, default=0)
        if max_length:
            report.too_long = {i: n for i, n in zip(good, lengths) if n > max_length}
    return report


def token_lengths(tokenizer, conversations: list[list[dict]]) -> list[int]:
    """Tokens of each conversation, rendered as TRL renders it: apply_chat_template(tokenize=True)."""
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template; set tokenizer.chat_template = "
                         "course_lib.ernie.TRAINING_CHAT_TEMPLATE first")
    lengths = []
    for start in range(0, len(conversations), 256):  # in batches: fast, and memory stays flat
        encoded = tokenizer.apply_chat_template(conversations[start:start + 256], tokenize=True, return_dict=True)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return lengths
