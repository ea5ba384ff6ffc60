"""Read a learner's data file into rows, whatever it turns out to be: JSON Lines, a JSON array, a JSON object
holding the rows under one key, CSV separated by commas, semicolons or tabs, even when the file's name says
otherwise. What cannot be read is kept line by line (`Rows.unreadable`), so that `validation.validate` reports
it together with every other problem, and how the file was read is said in `Rows.notes`.

Row numbers count from 0, as `rows[i]` does; line numbers of a file from 1, as editors show them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from course_lib.language import language, tr

DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
DELIMITERS_ZH = {",": "逗号", ";": "分号", "\t": "制表符"}


def count(n: int, noun: str, chinese: str | None = None) -> str:
    """count(1, "row") -> "1 row", count(2000, "row") -> "2,000 rows"; in Chinese, with `chinese` given,
    count(2000, "row", "行") -> "2,000 行" (no plural)."""
    if chinese is not None and language() == "zh":
        return f"{n:,} {chinese}"
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


class Rows(list):
    """A list of row dicts that remembers where each came from: `lines[i]` (its line in the file, or None),
    `unreadable` (line -> why that line gave no row), `problems` (row -> (kind, why) when it could not be
    converted) and `notes` (how the data was read)."""

    def __init__(self, rows=(), lines=None, source="", unreadable=None, problems=None, notes=()):
        super().__init__(rows)
        self.lines = list(lines) if lines is not None else [None] * len(self)
        self.source, self.unreadable = source, dict(unreadable or {})
        self.problems, self.notes = dict(problems or {}), list(notes)

    @property
    def name(self) -> str:
        return Path(self.source).name


def where(rows: Rows, i: int) -> str:
    """"row 3" or "row 3 (data.jsonl line 5)"; in Chinese "行 3" or "行 3（data.jsonl 第 5 行）": the row's index
    (from 0) as a label, the file's line (from 1) as an ordinal."""
    line = rows.lines[i]
    if line is None:
        return tr(f"row {i}", f"行 {i}")
    return tr(f"row {i} ({rows.name} line {line})", f"行 {i}（{rows.name} 第 {line} 行）")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def shown(text: str) -> str:
    return repr(text.strip()[:60])


def not_an_object(value) -> str:
    return tr(f"a JSON {type(value).__name__}, not an object {{...}}", f"一个 JSON {type(value).__name__}，不是对象 {{...}}")


def read_file(path: Path) -> Rows:
    if not path.is_file():
        raise FileNotFoundError(tr(f"{path} does not exist (or is a folder): give the path of a .jsonl, .json or .csv file",
                                   f"{path} 不存在（或是一个文件夹）：请给出一个 .jsonl、.json 或 .csv 文件的路径"))
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark, as Excel writes, is skipped
    except UnicodeDecodeError as error:
        raise ValueError(tr(f"{path} is not UTF-8 text (byte {error.object[error.start]:#x} at position "
                            f"{error.start}); save it as UTF-8 (Excel: 'CSV UTF-8')",
                            f"{path} 不是 UTF-8 文本（字节 {error.object[error.start]:#x}，位置 {error.start}）；"
                            f"请另存为 UTF-8（Excel：“CSV UTF-8”）")) from None
    if not text.strip():
        raise ValueError(tr(f"{path} has no rows: it is empty or blank", f"{path} 里没有数据行：它是空的或只有空白"))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = read_csv(text, str(path))
    elif suffix == ".json":
        rows = read_json(text, str(path), named_json=True)
    else:
        rows = read_jsonl(text, str(path))
    if not rows:
        raise ValueError(tr(f"{path}: no row could be read.\n  ", f"{path}：一行数据也读不出来。\n  ") + "\n  ".join(
            tr(f"line {line}: {why}", f"第 {line} 行：{why}") for line, why in list(rows.unreadable.items())[:5]))
    return rows


def read_jsonl(text: str, source: str) -> Rows:
    rows, lines, unreadable = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines, often one at the end, are harmless
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            unreadable[number] = tr(f"not valid JSON: {error.msg} (column {error.colno}): {shown(line)}",
                                    f"不是有效的 JSON：{error.msg}（第 {error.colno} 列）：{shown(line)}")
            continue
        if isinstance(row, dict):
            rows.append(row)
            lines.append(number)
        else:
            unreadable[number] = f"{not_an_object(row)}: {shown(line)}"
    if not rows:  # no line is a JSON object: is the file one JSON document, or CSV, under another name?
        try:
            json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            return read_json(text, source, named_json=False)
        try:
            csv_rows = read_csv(text, source)
        except ValueError:
            csv_rows = Rows()
        if csv_rows and len(csv_rows[0]) > 1 and not csv_rows.unreadable:
            first = shown(text.splitlines()[0])
            csv_rows.notes.insert(0, tr(f"{Path(source).name} is CSV (its first line is {first}), "
                                        "not JSON Lines: read it as CSV. Rename it to .csv.",
                                        f"{Path(source).name} 是 CSV（第一行是 {first}），不是 JSON Lines："
                                        "已按 CSV 读取。请把它改名为 .csv。"))
            return csv_rows
    return Rows(rows, lines, source, unreadable)


def container_items(text: str, start: int) -> list[tuple[object, int, object]]:
    """(index or key, offset, value) of each item of the JSON array or object starting at `text[start]`, whose
    text is known to be valid JSON: the offsets give each row its line."""
    decoder, items, i = json.JSONDecoder(), [], start + 1
    closing = "]" if text[start] == "[" else "}"

    def skip(i: int, chars: str = " \t\r\n") -> int:
        while text[i] in chars:
            i += 1
        return i

    while (i := skip(i)) < len(text) and text[i] != closing:
        key = len(items)
        if closing == "}":
            key, i = decoder.raw_decode(text, i)
            i = skip(skip(i) + 1)  # past the ':'
        value, end = decoder.raw_decode(text, i)
        items.append((key, i, value))
        i = skip(skip(end), " \t\r\n,")
    return items


def read_json(text: str, source: str, named_json: bool) -> Rows:
    name = Path(source).name
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if named_json and text.lstrip().startswith("{"):
            lines = read_jsonl(text, source)  # several objects, one a line: JSON Lines under a .json name
            if len(lines) > 1:
                lines.notes.insert(0, tr(f"{name} is JSON Lines (one object a line), not one JSON document: read it "
                                         "line by line. Rename it to .jsonl.",
                                         f"{name} 是 JSON Lines（每行一个对象），不是一个 JSON 文档：已逐行读取。"
                                         "请把它改名为 .jsonl。"))
                return lines
        raise ValueError(tr(f"{source}: not valid JSON at line {error.lineno}, column {error.colno}: "
                            f"{error.msg}; fix it there",
                            f"{source}：第 {error.lineno} 行第 {error.colno} 列不是有效的 JSON：{error.msg}；"
                            "请在那里修改")) from None
    start = len(text) - len(text.lstrip())
    notes = [] if named_json else [tr(f"{name} is one JSON array, not JSON Lines: read it as one. Rename it to .json.",
                                      f"{name} 是一个 JSON 数组，不是 JSON Lines：已整体读取。请把它改名为 .json。")]
    if isinstance(document, dict):
        lists = [(key, offset) for key, offset, value in container_items(text, start)
                 if isinstance(value, list) and any(isinstance(row, dict) for row in value)]
        if len(lists) != 1:
            found = (tr(f"the keys {', '.join(map(repr, document))}", f"键 {', '.join(map(repr, document))}")
                     if document else tr("no keys", "没有键"))
            raise ValueError(tr(f"{source} holds one JSON object with {found}, not a list of rows",
                                f"{source} 里是一个 JSON 对象（{found}），不是数据行的列表")
                             + (tr(f": several hold rows, so pick one, e.g. load_rows(json.load(open(path))[{lists[0][0]!r}])",
                                   f"：有几个键下都是数据行，请选一个，例如 load_rows(json.load(open(path))[{lists[0][0]!r}])")
                                if lists else tr(": save the rows as a JSON array [{...}, {...}] or as JSON Lines",
                                                 "：请把数据行存成 JSON 数组 [{...}, {...}] 或 JSON Lines")))
        key, start = lists[0]
        notes = [tr(f"{name} holds the rows under the key {key!r}: read them from there",
                    f"{name} 的数据行在键 {key!r} 下：已从那里读取")
                 + ("" if named_json else tr(" (it is one JSON document, not JSON Lines: rename it to .json)",
                                             "（它是一个 JSON 文档，不是 JSON Lines：请改名为 .json）"))]
    elif not isinstance(document, list):
        raise ValueError(tr(f"{source} holds {not_an_object(document)} or a list of objects",
                            f"{source} 里是{not_an_object(document)}，也不是对象的列表"))
    rows, lines, unreadable = [], [], {}
    for _, offset, value in container_items(text, start):
        if isinstance(value, dict):
            rows.append(value)
            lines.append(line_of(text, offset))
        else:
            unreadable[line_of(text, offset)] = f"{not_an_object(value)}: {shown(json.dumps(value))}"
    return Rows(rows, lines, source, unreadable, notes=notes)


def parse_csv(text: str, delimiter: str) -> tuple[list[str] | None, list[tuple[int, list[str]]], str]:
    """(header, [(line, fields)], error) with one delimiter; a line a record starts on counts quoted newlines."""
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header, records = None, []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return header, records, ""
        except csv.Error as error:
            return header, records, tr(f"line {start}: {error}; check the quotes on that line",
                                       f"第 {start} 行：{error}；请检查这一行的引号")
        if fields and header is None:
            header = [name.strip() for name in fields]
        elif fields:
            records.append((start, fields))


def read_csv(text: str, source: str) -> Rows:
    """CSV with a header line; commas, or semicolons or tabs when only they split every line evenly."""
    parsed = {d: parse_csv(text, d) for d in DELIMITERS}

    def even(d: str) -> bool:
        header, records, error = parsed[d]
        return not error and header is not None and len(header) > 1 and all(len(f) == len(header) for _, f in records)

    others = [d for d in DELIMITERS if d != "," and even(d)]
    delimiter = "," if even(",") or len(others) != 1 else others[0]
    header, records, error = parsed[delimiter]
    if error:
        raise ValueError(tr(f"{source} {error}", f"{source}：{error}"))
    notes = [] if delimiter == "," else [tr(
        f"{Path(source).name} is separated by {DELIMITERS[delimiter]}, not commas (as Excel saves CSV in many "
        f"languages): read it with delimiter {delimiter!r}",
        f"{Path(source).name} 用{DELIMITERS_ZH[delimiter]}分隔，不是逗号（许多语言版本的 Excel 这样保存 CSV）："
        f"已按分隔符 {delimiter!r} 读取")]
    rows, lines, unreadable = [], [], {}
    for line, fields in records:
        if len(fields) == len(header):
            rows.append(dict(zip(header, fields)))
            lines.append(line)
        else:
            unreadable[line] = tr(f"{len(fields)} fields, the header has {len(header)} ({', '.join(header)}): "
                                  f"{shown(delimiter.join(fields))}; a comma inside a value needs the value in "
                                  'double quotes: "3,5 apples"',
                                  f"{len(fields)} 个字段，表头有 {len(header)} 个（{', '.join(header)}）："
                                  f"{shown(delimiter.join(fields))}；值里有逗号时，整个值要放在双引号里："
                                  '"3,5 个苹果"')
    if not rows and not unreadable:
        raise ValueError(tr(f"{source} has no data rows", f"{source} 里没有数据行")
                         + (tr(f" (its header is {header})", f"（表头是 {header}）") if header else
                            tr(" (it is empty)", "（它是空的）")))
    return Rows(rows, lines, source, unreadable, notes=notes)
