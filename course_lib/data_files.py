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

DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}


def count(n: int, noun: str) -> str:
    """count(1, "row") -> "1 row", count(2000, "row") -> "2,000 rows"."""
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
    """"row 3" or "row 3 (data.jsonl line 5)"."""
    line = rows.lines[i]
    return f"row {i}" if line is None else f"row {i} ({rows.name} line {line})"


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def shown(text: str) -> str:
    return repr(text.strip()[:60])


def not_an_object(value) -> str:
    return f"a JSON {type(value).__name__}, not an object {{...}}"


def read_file(path: Path) -> Rows:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is a folder): give the path of a .jsonl, .json or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark, as Excel writes, is skipped
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#x} at position "
                         f"{error.start}); save it as UTF-8 (Excel: 'CSV UTF-8')") from None
    if not text.strip():
        raise ValueError(f"{path} has no rows: it is empty or blank")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = read_csv(text, str(path))
    elif suffix == ".json":
        rows = read_json(text, str(path), named_json=True)
    else:
        rows = read_jsonl(text, str(path))
    if not rows:
        raise ValueError(f"{path}: no row could be read.\n  " + "\n  ".join(
            f"line {line}: {why}" for line, why in list(rows.unreadable.items())[:5]))
    return rows


def read_jsonl(text: str, source: str) -> Rows:
    rows, lines, unreadable = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines, often one at the end, are harmless
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            unreadable[number] = f"not valid JSON: {error.msg} (column {error.colno}): {shown(line)}"
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
            csv_rows.notes.insert(0, f"{Path(source).name} is CSV (its first line is {shown(text.splitlines()[0])}), "
                                     "not JSON Lines: read it as CSV. Rename it to .csv.")
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
                lines.notes.insert(0, f"{name} is JSON Lines (one object a line), not one JSON document: read it "
                                      "line by line. Rename it to .jsonl.")
                return lines
        raise ValueError(f"{source}: not valid JSON at line {error.lineno}, column {error.colno}: "
                         f"{error.msg}; fix it there") from None
    start = len(text) - len(text.lstrip())
    notes = [] if named_json else [f"{name} is one JSON array, not JSON Lines: read it as one. Rename it to .json."]
    if isinstance(document, dict):
        lists = [(key, offset) for key, offset, value in container_items(text, start)
                 if isinstance(value, list) and any(isinstance(row, dict) for row in value)]
        if len(lists) != 1:
            found = f"the keys {', '.join(map(repr, document))}" if document else "no keys"
            raise ValueError(f"{source} holds one JSON object with {found}, not a list of rows"
                             + (f": several hold rows, so pick one, e.g. load_rows(json.load(open(path))[{lists[0][0]!r}])"
                                if lists else ": save the rows as a JSON array [{...}, {...}] or as JSON Lines"))
        key, start = lists[0]
        notes = [f"{name} holds the rows under the key {key!r}: read them from there"
                 + ("" if named_json else " (it is one JSON document, not JSON Lines: rename it to .json)")]
    elif not isinstance(document, list):
        raise ValueError(f"{source} holds {not_an_object(document)} or a list of objects")
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
            return header, records, f"line {start}: {error}; check the quotes on that line"
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
        raise ValueError(f"{source} {error}")
    notes = [] if delimiter == "," else [
        f"{Path(source).name} is separated by {DELIMITERS[delimiter]}, not commas (as Excel saves CSV in many "
        f"languages): read it with delimiter {delimiter!r}"]
    rows, lines, unreadable = [], [], {}
    for line, fields in records:
        if len(fields) == len(header):
            rows.append(dict(zip(header, fields)))
            lines.append(line)
        else:
            unreadable[line] = (f"{len(fields)} fields, the header has {len(header)} ({', '.join(header)}): "
                                f"{shown(delimiter.join(fields))}; a comma inside a value needs the value in "
                                'double quotes: "3,5 apples"')
    if not rows and not unreadable:
        raise ValueError(f"{source} has no data rows" + (f" (its header is {header})" if header else " (it is empty)"))
    return Rows(rows, lines, source, unreadable, notes=notes)
