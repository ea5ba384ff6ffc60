"""Keep a translated edition of the notebooks in step with the English one.

    python scripts/sync_edition.py zh           # rewrite notebooks/zh/*.py and .ipynb from notebooks/en/
    python scripts/sync_edition.py zh --check   # change nothing; exit 1 if anything would change or awaits translation

The English .py files are the source of truth for code; the edition owns its prose. Its code cells are the
English ones but for two declared differences: the import cell's language line, `set_language("en")`, reads
the edition's language (EDITION_LANGUAGES below: `set_language("zh")` in zh, so course_lib prints Chinese there),
and the edition owns the text of the Colab form titles of solution cells (`# @title ... { display-mode: "form" }`). For each notebook the
script pairs the two cell lists, code cells first (difflib over their sources: equal cells, and cells edited
in place), then the text between them (a markdown cell belongs with the code cell that follows it). The
notebook it writes has, in the English order:
  - every English code cell, source and metadata (tags) copied as they are, with the edition's language line
    and the edition's translation of its form title (the English title it was made from is kept in the cell's
    metadata as "en_title"); a new title comes in English after the untranslated marker, and a title whose
    English changed since gets the English-changed marker;
  - the edition's translation of every English markdown cell, found by the hash of the English text it was
    made from (kept in the cell's metadata as "en_hash"), else by its place and the code, numbers and
    headings it shares with the English;
  - a new English markdown cell inserted in English under the line  <!-- 待翻译 / untranslated -->
  - a translation whose English has changed since, kept under the line  <!-- 待更新 / English changed -->
    (the English diff is printed when git history has the older text).
Translate the flagged cells and titles and delete their marker; `--check` passes when nothing would change and no
marker is left. The .py is written in jupytext's percent format with the English header, and its paired
.ipynb regenerated from it with the English .ipynb's metadata (no outputs; cell ids kept where a cell did not
change, to keep diffs small).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
ENGLISH = "en"
HASH_KEY = "en_hash"  # markdown cell metadata: hash of the English text the translation was made from
UNTRANSLATED = "<!-- 待翻译 / untranslated -->"
CHANGED = "<!-- 待更新 / English changed -->"
MARKERS = (UNTRANSLATED, CHANGED)
# The per-edition code differences. Each edition names the language course_lib speaks in it (the code its import
# cell passes to course_lib.language.set_language); a new edition must be added here before it can be synced.
EDITION_LANGUAGES = {"zh": "zh"}
LANGUAGE_CALL = re.compile(r'^set_language\("(\w*)"\)', re.MULTILINE)  # the import cell's line
TITLE = re.compile(r'(?P<start>\s*#\s*@title\s+)(?P<text>.*?)(?P<end>\s*\{[^{}]*\}\s*)?')  # a form title line
TITLE_KEY = "en_title"  # code cell metadata: the English title the edition's title was translated from


def text_hash(source: str) -> str:
    """Hash of a markdown cell's text; re-wrapping its lines does not change it."""
    return hashlib.sha1(" ".join(source.split()).encode()).hexdigest()[:10]


def is_code(cell) -> bool:
    return cell.cell_type == "code"


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def edition_language(edition: str) -> str:
    """The language an edition's notebooks set; exits naming the fix for an edition that declares none."""
    if edition not in EDITION_LANGUAGES:
        raise SystemExit(f"edition {edition!r} declares no language: add {edition!r}: \"<code>\" to "
                         "EDITION_LANGUAGES in scripts/sync_edition.py (the code course_lib.language.set_language "
                         f"takes in notebooks/{edition}/)")
    return EDITION_LANGUAGES[edition]


def title_of(source: str) -> str | None:
    """The text of a cell's Colab form title (its first line, `# @title TEXT { display-mode: "form" }`), or None."""
    match = TITLE.fullmatch(source.split("\n", 1)[0])
    return match["text"] if match else None


def edition_code(english: str, edition: str, title: str | None = None) -> str:
    """An English code cell as the edition must have it: the language line set to the edition's language, and
    the form title (if the cell has one) reading `title` (None: the English one)."""
    language = edition_language(edition)
    source = LANGUAGE_CALL.sub(f'set_language("{language}")', english)
    match = TITLE.fullmatch(source.split("\n", 1)[0])
    if match and title is not None:
        source = match["start"] + title + (match["end"] or "") + source[match.end():]
    return source


def neutral(source: str) -> str:
    """A code cell's source with what an edition may change blanked: to pair English cells with the edition's."""
    first, newline, rest = source.partition("\n")
    match = TITLE.fullmatch(first)
    first = f"{match['start']}{match['end'] or ''}" if match else first
    return LANGUAGE_CALL.sub('set_language("")', first + newline + rest)


def first_difference(a: str, b: str) -> tuple[int, str, str]:
    """(1-based line, line in a, line in b) of the first line where two sources differ."""
    a_lines, b_lines = a.splitlines(), b.splitlines()
    for number, (x, y) in enumerate(zip(a_lines, b_lines), 1):
        if x != y:
            return number, x, y
    number = min(len(a_lines), len(b_lines)) + 1
    return number, (a_lines[number - 1:] or ["<end of cell>"])[0], (b_lines[number - 1:] or ["<end of cell>"])[0]


def code_differences(english: Path, edition: Path, name: str | None = None) -> list[str]:
    """One line per code cell of `edition` whose source or tags differ from `english`'s by more than the
    declared differences (its language line, set to edition `name`'s language, default the folder's name, and
    the text of its form title); [] when there is nothing else.

    Both files are read with jupytext (.py or .ipynb, never by mtime); cells are numbered from 1.
    """
    name = name or edition.parent.name
    language_line = f'set_language("{edition_language(name)}")'
    en_cells = [(i, c) for i, c in enumerate(jupytext.read(english).cells, 1) if is_code(c)]
    ed_cells = [(i, c) for i, c in enumerate(jupytext.read(edition).cells, 1) if is_code(c)]
    found = []
    for k, ((_, en), (i, ed)) in enumerate(zip(en_cells, ed_cells), 1):
        where = f"{shown(edition)}: code cell {k} (cell {i} of the notebook)"
        expected = edition_code(en.source, name, title_of(ed.source))
        if ed.source != expected:
            line, en_line, ed_line = first_difference(expected, ed.source)
            if LANGUAGE_CALL.match(en_line):  # wrong or missing: the one line that must differ
                found.append(f"{where} line {line}: the {name} edition's language line is {language_line!r} "
                             f"(the English one with the edition's language); here: {ed_line!r}")
            else:
                found.append(f"{where} differs from {shown(english)} at line {line}:\n"
                             f"    English: {en_line!r}\n    here:    {ed_line!r}")
        if ed.metadata.get("tags", []) != en.metadata.get("tags", []):
            found.append(f"{where} has tags {ed.metadata.get('tags', [])}, English has {en.metadata.get('tags', [])}")
    if len(en_cells) != len(ed_cells):
        found.append(f"{shown(edition)} has {len(ed_cells)} code cells, {shown(english)} has {len(en_cells)}")
    return found


def best_pairs(n: int, m: int, score) -> list[tuple[int, int]]:
    """The order-keeping pairs (i, j) of n items with m items whose scores add up the most. A pair that
    scores <= 0 is never made; ties go to the earliest pairs."""
    scores = [[score(i, j) for j in range(m)] for i in range(n)]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in reversed(range(n)):
        for j in reversed(range(m)):
            take = scores[i][j] + best[i + 1][j + 1] if scores[i][j] > 0 else float("-inf")
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if scores[i][j] > 0 and best[i][j] == scores[i][j] + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def pair_code(english: list[str], edition: list[str]) -> list[tuple[int, int]]:
    """(English index, edition index) of corresponding code cells: equal ones, and ones edited in place."""
    pairs = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, english, edition, autojunk=False).get_opcodes():
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
            pairs += zip(range(i1, i2), range(j1, j2))
        elif op == "replace":  # cells added or removed among edited ones: pair those still over half alike
            def alike(i, j):
                return difflib.SequenceMatcher(None, english[i1 + i], edition[j1 + j]).ratio() - 0.5

            pairs += [(i1 + i, j1 + j) for i, j in best_pairs(i2 - i1, j2 - j1, alike)]
    return pairs


def signature(source: str) -> list[str]:
    """What a translation keeps of its English: code spans, numbers and heading levels."""
    return re.findall(r"`[^`\n]+`|\d+(?:[.,]\d+)*|^#+", source, re.MULTILINE)


def text_score(english, translated) -> float:
    """How surely `translated` is the translation of `english`: 10 when made from exactly this text, else
    a little over 0 (text between the same code cells pairs up in order), more when they share code and numbers."""
    if translated.metadata.get(HASH_KEY) == text_hash(english.source):
        return 10.0
    a, b = signature(english.source), signature(translated.source)
    return 0.01 + (difflib.SequenceMatcher(None, a, b).ratio() if a and b else 0.0)


def code_anchors(english, edition) -> dict[int, int]:
    """English cell index -> edition cell index for the code cells that correspond."""
    en_code = [i for i, c in enumerate(english.cells) if is_code(c)]
    ed_code = [j for j, c in enumerate(edition.cells) if is_code(c)]
    pairs = pair_code([neutral(english.cells[i].source) for i in en_code],
                      [neutral(edition.cells[j].source) for j in ed_code])
    return {en_code[a]: ed_code[b] for a, b in pairs}


def pair_text(english, edition) -> dict[int, int]:
    """English cell index -> edition cell index for the markdown cells, region by region between paired
    code cells; then a cell moved to another region is still found by its hash."""
    anchors = sorted(code_anchors(english, edition).items()) + [(len(english.cells), len(edition.cells))]
    match, previous = {}, (-1, -1)
    for en_end, ed_end in anchors:
        en_text = [i for i in range(previous[0] + 1, en_end) if not is_code(english.cells[i])]
        ed_text = [j for j in range(previous[1] + 1, ed_end) if not is_code(edition.cells[j])]
        score = lambda a, b: text_score(english.cells[en_text[a]], edition.cells[ed_text[b]])  # noqa: E731
        match.update({en_text[a]: ed_text[b] for a, b in best_pairs(len(en_text), len(ed_text), score)})
        previous = (en_end, ed_end)
    unused = {edition.cells[j].metadata.get(HASH_KEY): j for j, c in enumerate(edition.cells)
              if not is_code(c) and j not in match.values()}
    for i, cell in enumerate(english.cells):
        if not is_code(cell) and i not in match and text_hash(cell.source) in unused:
            match[i] = unused.pop(text_hash(cell.source))
    return match


@dataclass
class Note:
    """Something to tell the translator about one cell."""

    cell: int  # 1-based place in the written notebook (0: the whole notebook)
    what: str  # one line
    text: str = ""  # the cell's text or a diff, printed indented under the line
    todo: bool = False  # the edition is not done until someone acts on it
    before: bool = False  # `cell` counts in the edition as it was before the sync

    def heading(self) -> str:
        if not self.cell:
            return f"  {self.what}"
        return f"  {'cell' if not self.before else 'old cell'} {self.cell}: {self.what}"


def english_history(english: Path) -> dict[str, str]:
    """en_hash -> text of the markdown cells in the last 20 committed versions of an English notebook, to
    show how a changed cell read before; {} outside a git checkout."""
    if not english.resolve().is_relative_to(ROOT):
        return {}
    relative = english.resolve().relative_to(ROOT).as_posix()
    log = subprocess.run(["git", "-C", str(ROOT), "log", "-n", "20", "--format=%H", "--", relative],
                         capture_output=True, text=True)
    found: dict[str, str] = {}
    for commit in log.stdout.split() if log.returncode == 0 else []:
        show = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{relative}"], capture_output=True, text=True)
        if show.returncode == 0:
            for cell in jupytext.reads(show.stdout, fmt="py:percent").cells:
                if not is_code(cell):
                    found.setdefault(text_hash(cell.source), cell.source)
    return found


def english_diff(before: str | None, after: str) -> str:
    if before is None:
        return "(the earlier English is not in git history; the English now reads:)\n" + after
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "English before", "English now",
                                          lineterm="", n=1))


def synced_title(english: str, old, place: int) -> tuple[str, Note | None]:
    """The edition's form title for a solution cell whose English title is `english` (`old`: the edition's cell,
    None if new), and a note when it awaits translation. Flags work as for text: a marker before the title."""
    title = title_of(old.source) if old is not None else None
    recorded = old.metadata.get(TITLE_KEY) if old is not None else None
    if title is None or (recorded is None and title == english) or (title.startswith(UNTRANSLATED)
                                                                      and recorded != english):
        return f"{UNTRANSLATED} {english}", Note(place, "NEW ENGLISH TITLE, to translate", english, todo=True)
    if recorded not in (None, english):  # changed since translated (or since flagged, if still marked)
        return (title if title.startswith(CHANGED) else f"{CHANGED} {title}",
                Note(place, "ENGLISH TITLE CHANGED since this was translated: update the title",
                     f"English before: {recorded}\nEnglish now:    {english}", todo=True))
    if title.startswith(MARKERS):
        return title, Note(place, f"title still marked {title.split(' -->')[0]} -->", title, todo=True)
    return title, None


def sync_notebook(english_path: Path, edition_path: Path, edition_name: str):
    """(the edition notebook rebuilt on the English one, notes for the translator)."""
    english = jupytext.read(english_path)
    edition = jupytext.read(edition_path) if edition_path.exists() else nbformat.v4.new_notebook()
    match = pair_text(english, edition)
    code_match = code_anchors(english, edition)
    history = None
    cells, notes = [], []
    for i, cell in enumerate(english.cells):
        new = copy.deepcopy(cell)
        place = len(cells) + 1
        if is_code(cell):
            old = edition.cells[code_match[i]] if i in code_match else None
            english_title = title_of(cell.source)
            if english_title is not None:
                title, note = synced_title(english_title, old, place)
                notes += [note] if note else []
                new.source = edition_code(cell.source, edition_name, title)
                new.metadata[TITLE_KEY] = english_title
            else:
                new.source = edition_code(cell.source, edition_name)
            if old is None:
                notes.append(Note(place, "code: new English cell, copied", "\n".join(cell.source.splitlines()[:3])))
            elif old.source != edition_code(cell.source, edition_name, title_of(old.source)):
                line, en_line, ed_line = first_difference(new.source, old.source)
                notes.append(Note(place, f"code: replaced with the English cell (line {line} differed)",
                                  f"- {ed_line}\n+ {en_line}"))
            elif {**old.metadata, TITLE_KEY: None} != {**new.metadata, TITLE_KEY: None}:  # en_title: notes above
                notes.append(Note(place, "code: metadata replaced with the English cell's",
                                  f"{dict(old.metadata)} -> {dict(new.metadata)}"))
            new.metadata = nbformat.from_dict(dict(sorted(new.metadata.items())))  # the order an .ipynb keeps
            if new.metadata.get("jupyter", {}).get("outputs_hidden"):
                new.metadata["collapsed"] = True  # as JupyterLab writes a cell with folded outputs (.py files omit it)
            cells.append(new)
            continue
        wanted = text_hash(cell.source)
        new.metadata[HASH_KEY] = wanted
        old = edition.cells[match[i]] if i in match else None
        recorded = old.metadata.get(HASH_KEY) if old is not None else None
        untranslated = f"{UNTRANSLATED}\n" + cell.source.replace(f"notebooks/{ENGLISH}/", f"notebooks/{edition_name}/")
        if old is None or (old.source.startswith(UNTRANSLATED) and recorded != wanted):
            new.source = untranslated
            notes.append(Note(place, "NEW ENGLISH TEXT, to translate", cell.source, todo=True))
        elif recorded not in (None, wanted):  # changed since translated (or since flagged, if still marked)
            history = english_history(english_path) if history is None else history
            new.source = old.source if old.source.startswith(CHANGED) else f"{CHANGED}\n{old.source}"
            notes.append(Note(place, "ENGLISH CHANGED since this was translated: update the translation",
                              english_diff(history.get(recorded), cell.source), todo=True))
        elif old.source.startswith(MARKERS):
            new.source = old.source
            notes.append(Note(place, f"still marked {old.source.splitlines()[0]}", old.source, todo=True))
        else:
            new.source = old.source
        cells.append(new)
    kept = set(match.values()) | set(code_match.values())
    for j, cell in enumerate(edition.cells):
        if j not in kept:
            kind = "code" if is_code(cell) else "translated text"
            notes.append(Note(j + 1, f"removed: {kind} with no English counterpart any more", cell.source,
                              before=True))
    # The English .ipynb's metadata: it holds what JupyterLab writes beyond the .py's header (language_info).
    english_ipynb = english_path.with_suffix(".ipynb")
    metadata = nbformat.read(english_ipynb, as_version=4).metadata if english_ipynb.exists() else english.metadata
    synced = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(metadata))
    return synced, notes


def py_text(notebook) -> str:
    """The percent-format .py exactly as jupytext writes it, header included: what JupyterLab saves when the
    notebook is opened there, so that opening it leaves `git status` clean."""
    return jupytext.writes(notebook, fmt="py:percent")


def keep_ids(notebook, ipynb: Path) -> None:
    """Give each cell the id it has in the existing .ipynb when its type and source are unchanged."""
    if not ipynb.exists():
        return
    old: dict[tuple[str, str], list[str]] = {}
    for cell in nbformat.read(ipynb, as_version=4).cells:
        if cell.get("id"):
            old.setdefault((cell.cell_type, cell.source), []).append(cell.id)
    kept, fresh = set(), []
    for cell in notebook.cells:
        ids = old.get((cell.cell_type, cell.source))
        if ids:
            cell.id = ids.pop(0)
            kept.add(cell.id)
        else:
            fresh.append(cell)
    for cell in fresh:
        while cell.id in kept:  # ids must be unique: a new random one equal to a kept one gets another
            cell.id = nbformat.v4.new_code_cell().id
        kept.add(cell.id)

def contents(notebook) -> tuple:
    """What a paired .ipynb must agree on: notebook metadata, and each cell's type, source and metadata."""
    return (dict(notebook.metadata),
            [(c.cell_type, c.source, dict(c.metadata), c.get("outputs", []), c.get("execution_count"))
             for c in notebook.cells])


def ipynb_differs(ipynb: Path, notebook) -> bool:
    if not ipynb.exists():
        return True
    expected = nbformat.reads(jupytext.writes(notebook, fmt="ipynb"), as_version=4)
    return contents(nbformat.read(ipynb, as_version=4)) != contents(expected)


def indented(text: str, limit: int = 60) -> str:
    lines = text.splitlines() or [""]
    more = [f"      | ... ({len(lines) - limit} more lines)"] if len(lines) > limit else []
    return "\n".join([f"      | {line}" for line in lines[:limit]] + more)


def sync_file(english: Path, target: Path, edition: str, check: bool) -> tuple[list[str], list[Note]]:
    """Sync one notebook of the edition on its English source: (what happened to each file that differed,
    the notes). With check=True nothing is written."""
    ipynb = target.with_suffix(".ipynb")
    synced, notes = sync_notebook(english, target, edition)
    keep_ids(synced, ipynb)
    text = py_text(synced)
    differs = [path for path, different in [(target, not target.exists() or target.read_text() != text),
                                            (ipynb, ipynb_differs(ipynb, synced))] if different]
    if target in differs and target.exists() and not notes:  # same cells, other layout: show the lines
        diff = difflib.unified_diff(target.read_text().splitlines(), text.splitlines(), "now", "synced",
                                    lineterm="", n=0)
        notes.append(Note(0, f"{target.name} is laid out differently from what the sync writes", "\n".join(diff)))
    if differs == [ipynb] and ipynb.exists():
        notes.append(Note(0, f"{ipynb.name} does not match its .py (the .py is the source)"))
    existed = {path: path.exists() for path in differs}
    if differs and not check:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        jupytext.write(synced, ipynb, fmt="ipynb")
    verb = {True: "would change" if check else "rewritten", False: "would be created" if check else "created"}
    return [f"{path.name} {verb[existed[path]]}" for path in differs], notes


def sync_edition(edition: str, check: bool = False, notebooks: Path = NOTEBOOK_DIR) -> int:
    """Rebuild (or with check=True only compare) every notebook of notebooks/<edition>/ on notebooks/en/.
    Prints what changed and what awaits translation; returns the exit status (check: 1 if anything would
    change or a cell is still marked; write: 0)."""
    if edition == ENGLISH or not re.fullmatch(r"[\w-]+", edition):
        raise SystemExit(f"edition must name a folder beside notebooks/{ENGLISH}/, such as zh, not {edition!r}")
    edition_language(edition)  # before anything is read: an edition without a language cannot be written
    english_dir, edition_dir = notebooks / ENGLISH, notebooks / edition
    sources = sorted(english_dir.glob("[0-9][0-9]_*.py"))
    if not sources:
        raise SystemExit(f"no English notebooks (NN_name.py) in {english_dir}")
    n_files, todo = 0, 0
    for english in sources:
        target = edition_dir / english.name
        files, notes = sync_file(english, target, edition, check)
        n_files += len(files)
        todo += sum(note.todo for note in notes)
        if files or notes:
            print(f"{shown(target)}: {', '.join(files) or 'up to date'}")
        for note in notes:
            print(note.heading())
            if note.text:
                print(indented(note.text))
    orphans = sorted(p for p in edition_dir.glob("[0-9][0-9]_*.py") if not (english_dir / p.name).exists())
    for orphan in orphans:
        print(f"{shown(orphan)}: no English notebook of that name in {shown(english_dir)}: rename or delete it "
              "and its .ipynb")
    files = f"{n_files} file(s) {'would change' if check else 'written'}"
    waiting = (f"{todo} cell(s) to translate: translate each in notebooks/{edition}/*.py, delete its "
               f"marker line ({UNTRANSLATED} or {CHANGED}), then run `python scripts/sync_edition.py {edition}`"
               " again to regenerate the .ipynb" if todo else "nothing awaits translation")
    print(f"{edition}: {len(sources)} notebooks, {files}; {waiting}.")
    if check and n_files:
        print(f"Run `python scripts/sync_edition.py {edition}` to write these changes.")
    return int(check and bool(n_files or todo or orphans))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("edition", help="the edition's folder under notebooks/, e.g. zh")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a file would change or a cell awaits translation")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR,
                        help="the folder holding en/ and the edition (default: the course's notebooks/)")
    args = parser.parse_args(argv)
    return sync_edition(args.edition, check=args.check, notebooks=args.notebooks)


if __name__ == "__main__":
    sys.exit(main())
