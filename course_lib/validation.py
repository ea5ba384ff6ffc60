"""Check a learner's own data before training on it: load it, map its shape to the course's, and report in
one pass everything that would train badly, by row and line, with what to do about it.

The course's shape is a `question` and an `answer` per row, or, for a conversation of several turns, `messages`:
user and assistant turns alternating (after an optional system turn) and ending with the assistant, as TRL's
SFTTrainer trains it (every assistant turn trained, everything else masked). Row numbers count from 0, as
`rows[i]` and `dataset[i]` do; line numbers of a file count from 1, as editors show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from course_lib.data import to_messages
from course_lib.data_files import Rows, count, read_file, where
from course_lib.language import language, tr

# shape -> the columns it needs. Alpaca's `input` is optional: when present it is added to the instruction.
SHAPES = {
    "question_answer": ("question", "answer"),
    "alpaca": ("instruction", "output"),
    "prompt_response": ("prompt", "response"),
    "sharegpt": ("conversations",),
    "openai": ("messages",),
}
TURN_KEYS = {"sharegpt": ("from", "value"), "openai": ("role", "content")}  # (role key, text key) of a turn
# Role names of either spelling (ShareGPT files use both) -> the chat template's.
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
# Columns that usually hold the question / the answer: the advice for rows in no known shape.
QUESTION_NAMES = ("question", "query", "problem", "input", "prompt", "instruction", "text", "q")
ANSWER_NAMES = ("answer", "response", "output", "completion", "solution", "target", "label", "a")
KINDS = {  # the kinds of bad row a conversion or a check finds -> (heading in the report, in drop_bad's message)
    "columns": ("in no shape the course reads", "in no known shape"),
    "fields": ("with empty, null or non-text fields", "with empty, null or non-text fields"),
    "conversation": ("whose turns are not user and assistant in turn, ending with the assistant",
                     "with misordered turns"),
}
KINDS_ZH = {"columns": ("不属于课程能读的任何格式", "格式未知"), "fields": ("有空的、null 或不是文本的字段", "字段有误"),
            "conversation": ("轮次不是 user 和 assistant 交替、以 assistant 结尾", "轮次顺序有误")}
SHOWN = 5  # problem rows printed per kind; the counts are always complete
UNKNOWN_LIMIT = 10**9  # transformers' stand-in for "no limit" in tokenizer.model_max_length is ~1e30


def load_rows(source) -> Rows:
    """Rows from a file (.jsonl, .json, .csv; see `course_lib.data_files`), a list of dicts, a pandas DataFrame
    or a `datasets.Dataset`. Lines of a file that cannot be read are kept in `.unreadable` for `validate`."""
    if isinstance(source, (str, Path)):
        return read_file(Path(source))
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas
        source = source.to_dict("records")
    if hasattr(source, "keys"):  # a DatasetDict, or one row instead of a list of rows
        raise ValueError(tr(f"expected rows, got a mapping with keys {list(source.keys())}: pick a split, "
                            "e.g. load_rows(dataset['train']), or pass a list of rows",
                            f"需要的是一行行数据，得到的却是一个映射，键为 {list(source.keys())}：选一个划分，"
                            "例如 load_rows(dataset['train'])，或者传入一个由行组成的列表"))
    rows = list(source)  # a datasets.Dataset iterates as dicts
    not_dicts = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if not_dicts:
        raise ValueError(tr(f"{count(len(not_dicts), 'row')} not a dict, e.g. row {not_dicts[0]}: "
                            f"{rows[not_dicts[0]]!r:.80}; each row must be a dict like "
                            "{'question': ..., 'answer': ...}",
                            f"{len(not_dicts):,} 行不是 dict，例如第 {not_dicts[0]} 行：{rows[not_dicts[0]]!r:.80}；"
                            "每一行都必须是形如 {'question': ..., 'answer': ...} 的 dict"))
    return Rows(rows)


def columns_of(rows) -> list[str]:
    """Every column that occurs in any row, in first-seen order."""
    seen = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def guess_column(columns, names) -> str | None:
    return next((column for name in names for column in columns if column.lower() == name), None)


def mapping_advice(columns) -> str:
    """The call that renames a row's own columns to question/answer, guessed from their names."""
    renames = {guess_column(columns, QUESTION_NAMES) or "<question column>": "question",
               guess_column(columns, ANSWER_NAMES) or "<answer column>": "answer"}
    return f"to_question_answer(rows, columns={ {old: new for old, new in renames.items() if old != new} })"


def lines_of(rows: Rows, indices: list[int]) -> str:
    """"lines 1-3, 7" (or rows, when the data has no lines)."""
    numbers = [rows.lines[i] for i in indices] if all(rows.lines[i] for i in indices) else indices
    spans, start = [], numbers[0]
    for previous, number in zip(numbers, numbers[1:] + [None]):
        if number != previous + 1:
            spans.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = number
    shown = ", ".join(spans[:8]) + (", ..." if len(spans) > 8 else "")
    if numbers is not indices:
        return tr(f"lines {shown}", f"文件第 {shown} 行")
    return tr(f"rows {shown}", f"行 {shown}")


def shapes_by_row(rows) -> dict[int, list[str]]:
    return {i: [shape for shape, needed in SHAPES.items() if all(c in row for c in needed)] for i, row in enumerate(rows)}


def detect_shape(rows) -> str:
    """The one shape of every row; ValueError saying what was found when no shape, several, or a mix fits."""
    rows = rows if isinstance(rows, Rows) else Rows(rows)
    fits = shapes_by_row(rows)
    known = "; ".join(f"{shape}: {', '.join(needed)}" for shape, needed in SHAPES.items())
    if not any(fits.values()):
        columns = columns_of(rows)
        raise ValueError(tr(f"cannot tell the shape of this data: its columns are {columns}. The shapes the course "
                            f"reads are ({known}). Rename your columns, or map them: {mapping_advice(columns)}",
                            f"看不出这份数据是哪种格式：它的列是 {columns}。课程能读的格式有（{known}）。"
                            f"请重命名这些列，或者做映射：{mapping_advice(columns)}"))
    several = {tuple(f) for f in fits.values() if len(f) > 1}
    if several:
        first = sorted(several)[0]
        raise ValueError(tr(f"the data fits several shapes ({', '.join(first)}): its columns are {columns_of(rows)}. "
                            f"Say which to read: to_question_answer(rows, shape={first[0]!r})",
                            f"这份数据同时符合几种格式（{', '.join(first)}）：它的列是 {columns_of(rows)}。"
                            f"请指明按哪种读：to_question_answer(rows, shape={first[0]!r})"))
    by_shape = {}
    for i, f in fits.items():
        if f:
            by_shape.setdefault(f[0], []).append(i)
    if len(by_shape) > 1:
        raise ValueError(tr(f"the rows are in {len(by_shape)} shapes: {mix(rows, by_shape)}. to_question_answer(rows) "
                            "reads each row in its own shape",
                            f"这些行属于 {len(by_shape)} 种格式：{mix(rows, by_shape)}。to_question_answer(rows) "
                            "会按每一行自己的格式读取"))
    return next(iter(by_shape))


def mix(rows: Rows, by_shape: dict[str, list[int]]) -> str:
    return tr("; ", "；").join(tr(f"{count(len(found), 'row')} {shape} ({lines_of(rows, found)})",
                                f"{len(found):,} 行 {shape}（{lines_of(rows, found)}）") for shape, found in by_shape.items())


def to_question_answer(rows, shape: str | None = None, columns: dict[str, str] | None = None) -> Rows:
    """Rows in the course's shape from any shape in SHAPES: `question` and `answer`, or `messages` for a
    conversation of several turns or with a system turn. shape=None reads each row in the shape its columns
    fit (a file mixing two shapes loses neither, and `.notes` says so); `columns` renames columns first, e.g.
    {"query": "question", "response": "answer"}.

    A row that cannot be converted (a turn with an unknown role, a row in no known shape...) comes out empty,
    with its reason in `.problems`; `validate` reports it and `drop_bad` leaves it out. Alpaca's `input`, when
    not empty, goes after the instruction, separated by a blank line.
    """
    rows = rows if isinstance(rows, Rows) else load_rows(rows)
    if columns:
        renamed = [{columns.get(key, key): value for key, value in row.items()} for row in rows]
        rows = Rows(renamed, rows.lines, rows.source, rows.unreadable, rows.problems, rows.notes)
    fits = shapes_by_row(rows)
    if shape is None and (any(len(f) > 1 for f in fits.values()) or not any(fits.values())):
        detect_shape(rows)  # raises, saying which shapes fit
    elif shape is not None and shape not in SHAPES:
        raise ValueError(tr(f"shape={shape!r} is not one of {list(SHAPES)}", f"shape={shape!r} 不在 {list(SHAPES)} 之中"))
    elif shape is not None and not any(shape in f for f in fits.values()):
        raise ValueError(tr(f"shape={shape!r} needs the column(s) {list(SHAPES[shape])}; your rows have "
                            f"{columns_of(rows)}",
                            f"shape={shape!r} 需要列 {list(SHAPES[shape])}；你的行只有 {columns_of(rows)}"))
    out, problems, by_shape, n_system = [], dict(rows.problems), {}, 0
    for i, row in enumerate(rows):
        row_shape = shape if shape in fits[i] else (fits[i][0] if shape is None and fits[i] else None)
        if row_shape is None:
            problems[i] = ("columns", wrong_columns(row, shape, fits[i]))
            out.append({})
            continue
        by_shape.setdefault(row_shape, []).append(i)
        if row_shape == "question_answer":
            out.append({"question": row["question"], "answer": row["answer"]})
        elif row_shape == "alpaca":
            question, extra = row["instruction"], row.get("input")
            if isinstance(question, str) and isinstance(extra, str) and extra.strip():
                question = f"{question}\n\n{extra}"
            out.append({"question": question, "answer": row["output"]})
        elif row_shape == "prompt_response":
            out.append({"question": row["prompt"], "answer": row["response"]})
        else:
            messages, why = conversation(row[SHAPES[row_shape][0]], row_shape)
            if why:
                problems[i] = why
                out.append({})
            else:
                n_system += messages[0]["role"] == "system"
                pair = len(messages) == 2
                out.append({"question": messages[0]["content"], "answer": messages[1]["content"]} if pair
                           else {"messages": messages})
    notes = list(rows.notes)
    if len(by_shape) > 1:
        notes.append(tr(f"the rows are in {len(by_shape)} shapes, each read in its own: {mix(rows, by_shape)}",
                        f"这些行属于 {len(by_shape)} 种格式，各按自己的格式读取：{mix(rows, by_shape)}"))
    if n_system:
        notes.append(tr(f"kept the system turn of {count(n_system, 'row')} (it is read, never trained)",
                        f"保留了 {n_system:,} 行的 system 轮（模型会读到它，但不在它上面训练）"))
    return Rows(out, rows.lines, rows.source, rows.unreadable, problems, notes)


def wrong_columns(row: dict, shape: str | None, fits: list[str]) -> str:
    columns = ', '.join(row) or tr('(none)', '（无）')
    if fits:  # a row of another shape, with shape= given
        return tr(f"has the columns {columns}: the {fits[0]} shape, not {shape}: call to_question_answer(rows) "
                  "without shape= to read each row in its own shape",
                  f"它的列是 {columns}：属于 {fits[0]} 格式，不是 {shape}：调用 to_question_answer(rows) 时不要传 "
                  "shape=，就会按每一行自己的格式读取")
    return tr(f"has the columns {columns}, which fit no shape the course reads: map them, e.g. "
              f"{mapping_advice(list(row))}",
              f"它的列是 {columns}，不符合课程能读的任何格式：请做映射，例如 {mapping_advice(list(row))}")


def conversation(turns, shape: str = "openai") -> tuple[list[dict] | None, tuple[str, str] | None]:
    """(messages, None) for turns the course trains: an optional system turn, then user and assistant in turn,
    ending with the assistant; else (None, (kind, why))."""
    role_key, text_key = TURN_KEYS[shape]
    column = SHAPES[shape][0]
    if not isinstance(turns, list) or not turns:
        what = (tr("empty", "空的") if turns == [] else
                tr(f"{type(turns).__name__}, not a list of turns", f"{type(turns).__name__}，不是由轮次组成的列表"))
        return None, ("conversation", tr(f"{column} is {what}", f"{column} 是{what}"))
    messages = []
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            return None, ("conversation", tr(f"turn {number} of {column} needs '{role_key}' and '{text_key}': {turn!r:.60}",
                                             f"{column} 的第 {number} 轮需要 '{role_key}' 和 '{text_key}'：{turn!r:.60}"))
        role = ROLES.get(turn[role_key])
        if role is None:
            names = "'human'/'user', 'gpt'/'assistant'" if shape == "sharegpt" else "'user', 'assistant'"
            return None, ("conversation", tr(f"turn {number} has the role {turn[role_key]!r}: use {names} or 'system'",
                                             f"第 {number} 轮的角色是 {turn[role_key]!r}：请用 {names} 或 'system'"))
        why = field_problem(turn[text_key], tr(f"turn {number} ({role}) {text_key}", f"第 {number} 轮（{role}）的 {text_key}"))
        if why:
            return None, ("fields", why)
        messages.append({"role": role, "content": turn[text_key]})
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(body) // 2 + 1)
    if body and body == expected[:len(body)] and body[-1] == "assistant":
        return messages, None
    if "system" in body:
        why = tr("a system turn after the first turn", "第一轮之后又出现了 system 轮")
    elif not body:
        why = tr("only a system turn", "只有一个 system 轮")
    elif body[0] == "assistant":
        why = tr("starts with the assistant: the first turn after any system turn must be the user's",
                 "以 assistant 开头：system 轮之后的第一轮必须是 user 的")
    elif body[-1] == "user" and body == expected[:len(body)]:
        why = tr("ends with the user: nothing after it to train", "以 user 结尾：后面没有可以训练的回答")
    else:
        turn = next(k for k, (a, b) in enumerate(zip(body, expected)) if a != b) + 1 + (roles[0] == "system")
        why = tr(f"two {roles[turn - 1]} turns in a row (turns {turn - 1} and {turn}): user and assistant must take "
                 "turns", f"连续两个 {roles[turn - 1]} 轮（第 {turn - 1} 和第 {turn} 轮）：user 和 assistant 必须轮流")
    return None, ("conversation", tr(f"{column} has the turns {roles}: {why}", f"{column} 的轮次是 {roles}：{why}"))


def field_problem(value, name: str) -> str | None:
    if value is None:
        return tr(f"{name} is null", f"{name} 是 null")
    if isinstance(value, float) and value != value:
        return tr(f"{name} is missing (NaN: an empty cell)", f"{name} 缺失（NaN：一个空单元格）")
    if not isinstance(value, str):
        kind = type(value).__name__
        return tr(f"{name} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({value!r:.40}), not text",
                  f"{name} 是 {kind}（{value!r:.40}），不是文本")
    if not value.strip():
        if not value:
            return tr(f"{name} is empty", f"{name} 是空的")
        return tr(f"{name} is only whitespace", f"{name} 只有空白字符")
    return None


def row_problem(row: dict) -> tuple[str, str] | None:
    """(kind, why) when a row in the course's shape would train badly, else None."""
    if "question" in row or "answer" in row:
        for name in ("question", "answer"):
            if name not in row:
                guess = guess_column(row, QUESTION_NAMES if name == "question" else ANSWER_NAMES)
                advice = tr(f"; if {guess!r} holds the {name}, map it: ",
                            f"；如果 {guess!r} 里是 {name}，就做映射：") + \
                    f"to_question_answer(rows, columns={{{guess!r}: {name!r}}})" if guess else ""
                return "fields", tr(f"{name} is missing: the row has the columns {', '.join(row)}",
                                    f"缺少 {name}：这一行的列是 {', '.join(row)}") + advice
            why = field_problem(row[name], name)
            if why:
                return "fields", why
        return None
    if "messages" in row:
        return conversation(row["messages"])[1]
    return "columns", wrong_columns(row, None, [])


def messages_of(row: dict) -> list[dict]:
    return row["messages"] if "question" not in row else to_messages(row)["messages"]


@dataclass(repr=False)  # the generated repr would print every row; a notebook shows __repr__, so it is __str__
class Report:
    """What `validate` found. Row numbers count from 0; `str(report)` lists the first few of each kind."""

    rows: Rows
    columns: list[str]
    missing_columns: list[str] = field(default_factory=list)
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (kind of KINDS, what is wrong)
    duplicates: dict[int, int] = field(default_factory=dict)  # row -> the earlier row it repeats
    lengths: dict[int, int] = field(default_factory=dict)  # row -> tokens in the chat template, with a tokenizer
    max_length: int | None = None
    model_limit: int | None = None  # tokenizer.model_max_length: the longest input the model takes
    measured: bool = False  # lengths were counted (a tokenizer was given)
    shape_hint: str = ""

    def kind(self, kind: str) -> dict[int, str]:
        return {i: why for i, (k, why) in self.problems.items() if k == kind}

    @property
    def bad_fields(self) -> dict[int, str]:
        return self.kind("fields")

    @property
    def too_long(self) -> dict[int, int]:
        return {i: n for i, n in self.lengths.items() if self.max_length and n > self.max_length}

    @property
    def longest(self) -> int | None:
        return max(self.lengths.values(), default=0) if self.measured else None

    @property
    def bad_rows(self) -> list[int]:
        """Rows that `drop_bad` leaves out: bad rows, later copies of a duplicate, and rows over max_length."""
        return sorted(set(self.problems) | set(self.duplicates) | set(self.too_long))

    @property
    def ok(self) -> bool:
        return not self.missing_columns and not self.bad_rows and not self.rows.unreadable

    def length_advice(self) -> str:
        """What to do about rows over max_length: never advise a max_length beyond what the model takes."""
        limit, too_long = self.model_limit, self.too_long
        beyond = [i for i, n in too_long.items() if limit and n > limit]
        if not beyond:
            return f"Raise max_length to {self.longest:,}, or drop them"
        advice = (f"{len(beyond):,} of them {'is' if len(beyond) == 1 else 'are'} longer than the model "
                  f"takes at all ({limit:,} tokens, tokenizer.model_max_length): drop or split "
                  f"{'it' if len(beyond) == 1 else 'them'}")
        rest = [n for n in too_long.values() if n <= limit]
        return advice + (f"; for the others, raise max_length to {max(rest):,} (at most {limit:,}), or drop them"
                         if rest else "")

    def __str__(self) -> str:
        n, name, unreadable = len(self.rows), self.rows.name, self.rows.unreadable
        if self.missing_columns:
            return tr(f"MISSING COLUMNS {self.missing_columns}: the rows have {self.columns}, and every row needs "
                      f"'question' and 'answer' (or 'messages').{self.shape_hint}",
                      f"缺少列 {self.missing_columns}：这些行的列是 {self.columns}，而每一行都需要 'question' 和 "
                      f"'answer'（或 'messages'）。{self.shape_hint}")
        head = tr(f"{count(n, 'row')} checked (row numbers count from 0, as in rows[i]",
                  f"已检查 {n:,} 行（行号从 0 开始，和 rows[i] 一样")
        head += tr(f"; lines of {name} from 1)", f"；{name} 的行号从 1 开始）") if self.rows.source else tr(")", "）")
        if self.longest is not None:
            head += tr(f"; longest {self.longest:,} tokens in the chat template",
                       f"；套用对话模板后最长 {self.longest:,} 个 token")
        lines = [head + (tr(f"; max_length {self.max_length:,}", f"；max_length {self.max_length:,}")
                         if self.max_length else "")]
        lines += [tr(f"note: {note}", f"注意：{note}") for note in self.rows.notes]
        if unreadable:
            lines.append(tr(f"{count(len(unreadable), 'line')} of {name} could not be read: fix "
                            f"{'it' if len(unreadable) == 1 else 'them'} in the file (drop_bad leaves "
                            f"{'it' if len(unreadable) == 1 else 'them'} out)",
                            f"{name} 中有 {len(unreadable):,} 行无法读取：请在文件中修正（drop_bad 会把它们去掉）"))
            lines += [tr(f"  line {line}: {why}", f"  第 {line} 行：{why}") for line, why in list(unreadable.items())[:SHOWN]]
            lines += [tr(f"  ... and {len(unreadable) - SHOWN} more", f"  ……还有 {len(unreadable) - SHOWN} 行")
                      ] if len(unreadable) > SHOWN else []
        if self.ok:
            return "\n".join(lines + [tr("OK: every question and answer is non-empty text, no duplicates",
                                         "OK：每个问题和答案都是非空文本，没有重复")
                                      + (tr(", none too long", "，没有过长的样本")
                                         if self.longest is not None and self.max_length else "")])
        kinds = KINDS_ZH if language() == "zh" else KINDS
        sections = [(kinds[kind][0], self.kind(kind), lambda i, found: found[i], "") for kind in KINDS] + [
            (tr("duplicated exactly (the same turns as an earlier row)", "完全重复（与前面某一行的轮次相同）"),
             self.duplicates, lambda i, found: tr(f"repeats row {found[i]}", f"重复第 {found[i]} 行"),
             tr("drop_bad keeps the first copy", "drop_bad 保留第一份")),
            (tr(f"longer than max_length={self.max_length} tokens", f"超过 max_length={self.max_length} 个 token"),
             self.too_long, lambda i, found: f"{found[i]:,} tokens",
             tr("TRL cuts them to their first max_length tokens, so the end of the answer and its "
                "<|end_of_sentence|> are never trained (the model does not learn to stop there), and TRL drops a row "
                "whose question alone fills max_length, with no warning. ",
                "TRL 会把它们截断为前 max_length 个 token，所以答案的结尾和它的 <|end_of_sentence|> 永远不会被训练"
                "（模型学不会在那里停下）；单是问题就占满 max_length 的行会被 TRL 丢弃，而且没有任何警告。")
             + (self.length_advice() if self.too_long else "")),
        ]
        for title, found, say, consequence in sections:
            if found:
                lines.append(tr(f"{count(len(found), 'row')} {title}", f"{len(found):,} 行{title}")
                             + (tr(f": {consequence}", f"：{consequence}") if consequence else ""))
                lines += [f"  {where(self.rows, i)}{tr(': ', '：')}{say(i, found)}" for i in sorted(found)[:SHOWN]]
                if len(found) > SHOWN:
                    lines.append(tr(f"  ... and {len(found) - SHOWN} more", f"  ……还有 {len(found) - SHOWN} 行"))
        also = tr(f", and {count(len(unreadable), 'line')} could not be read",
                  f"，另有 {len(unreadable):,} 行无法读取") if unreadable else ""
        lines.append(tr(f"{len(self.bad_rows):,} of {count(n, 'row')} would train badly{also}: fix them in your data, "
                        "or call report.drop_bad() to leave them out.",
                        f"{n:,} 行中有 {len(self.bad_rows):,} 行会训练出问题{also}：请在数据中修正它们，"
                        "或调用 report.drop_bad() 把它们去掉。"))
        return "\n".join(lines)

    __repr__ = __str__

    def raise_if_bad(self) -> None:
        if not self.ok:
            raise ValueError(str(self))

    def drop_bad(self) -> tuple[list[dict], str]:
        """(the good rows in the course's shape: question, answer and messages, or messages alone for longer
        conversations; a message saying what was dropped)."""
        if self.missing_columns:
            raise ValueError(str(self))
        bad = set(self.bad_rows)
        clean = [to_messages(row) | {"question": row["question"], "answer": row["answer"]} if "question" in row
                 else {"messages": row["messages"]} for i, row in enumerate(self.rows) if i not in bad]
        zh = language() == "zh"
        kinds = [f"{len(self.kind(kind))} {(KINDS_ZH if zh else KINDS)[kind][1]}" for kind in KINDS if self.kind(kind)]
        kinds += [tr(count(len(self.duplicates), "duplicate"), f"{len(self.duplicates)} 重复")] if self.duplicates else []
        kinds += [tr(f"{len(self.too_long)} too long", f"{len(self.too_long)} 过长")] if self.too_long else []
        message = tr(f"kept {len(clean):,} of {count(len(self.rows), 'row')}", f"{len(self.rows):,} 行中保留 {len(clean):,} 行")
        if bad:
            shown = ", ".join(map(str, sorted(bad)[:10])) + (", ..." if len(bad) > 10 else "")
            message += tr(f"; dropped {len(bad)} ({', '.join(kinds)}): rows {shown}",
                          f"；去掉 {len(bad)} 行（{'，'.join(kinds)}）：第 {shown} 行")
        if self.rows.unreadable:
            message += tr(f"; left out {count(len(self.rows.unreadable), 'unreadable line')} of {self.rows.name}",
                          f"；去掉 {self.rows.name} 中无法读取的 {len(self.rows.unreadable)} 行")
        return clean, message


def validate(rows, tokenizer=None, max_length: int | None = None) -> Report:
    """Check rows in the course's shape (anything `load_rows` reads, or `to_question_answer`'s output).

    With a tokenizer, each good row is rendered with its chat template exactly as TRL's SFTTrainer tokenizes
    it; rows longer than max_length tokens are reported, with advice capped at what the model takes.
    """
    rows = rows if isinstance(rows, Rows) else load_rows(rows)
    columns = columns_of(rows)
    if not ({"question", "answer", "messages"} & set(columns)) and not rows.problems:
        try:
            hint = f" They look like the {detect_shape(rows)!r} shape: call to_question_answer(rows) first."
        except ValueError as error:
            hint = f" ({error})"
        return Report(rows, columns, missing_columns=["question", "answer"], shape_hint=hint)
    limit = getattr(tokenizer, "model_max_length", None)
    report = Report(rows, columns, max_length=max_length, model_limit=limit if limit and limit < UNKNOWN_LIMIT else None)
    first_seen: dict[tuple, int] = {}
    conversations: dict[int, list[dict]] = {}
    for i, row in enumerate(rows):
        problem = rows.problems.get(i) or row_problem(row)
        if problem:
            report.problems[i] = problem
            continue
        conversations[i] = messages_of(row)
        key = tuple((turn["role"], turn["content"]) for turn in conversations[i])
        if key in first_seen:
            report.duplicates[i] = first_seen[key]
        else:
            first_seen[key] = i
    if tokenizer is not None:
        report.lengths = dict(zip(conversations, token_lengths(tokenizer, list(conversations.values()))))
        report.measured = True
    return report


def token_lengths(tokenizer, conversations: list[list[dict]]) -> list[int]:
    """Tokens of each conversation, rendered as TRL renders it: apply_chat_template(tokenize=True)."""
    if not tokenizer.chat_template:
        raise ValueError(tr("the tokenizer has no chat template; set tokenizer.chat_template = "
                            "course_lib.ernie.TRAINING_CHAT_TEMPLATE first", "分词器没有对话模板；请先设置 "
                            "tokenizer.chat_template = course_lib.ernie.TRAINING_CHAT_TEMPLATE"))
    # Measuring a row longer than the model takes is not running it: keep transformers' "Token indices sequence
    # length is longer than the specified maximum" out of the report, for this call only.
    key = "sequence-length-is-longer-than-the-specified-maximum"
    warned = tokenizer.deprecation_warnings.get(key)
    tokenizer.deprecation_warnings[key] = True
    try:
        lengths = []
        for start in range(0, len(conversations), 256):  # in batches: fast, and memory stays flat
            encoded = tokenizer.apply_chat_template(conversations[start:start + 256], tokenize=True, return_dict=True)
            lengths += [len(ids) for ids in encoded["input_ids"]]
        return lengths
    finally:
        if warned is None:
            tokenizer.deprecation_warnings.pop(key, None)
        else:
            tokenizer.deprecation_warnings[key] = warned
