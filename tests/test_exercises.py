"""Static checks of the exercises at the end of every notebook: one folded, tagged solution cell per
exercise, numbered in order, in both files of each pair and in every edition. nbmake executes them."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.py")) + sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.ipynb"))
# The heading that opens the exercises, per edition; a translation keeps the numbered list under its own.
EXERCISES_HEADING = {"en": "## Exercises", "zh": "## 练习"}
TITLE = re.compile(r'# @title Solution (\d+): \S.* \{ display-mode: "form" \}$')


def exercise_count(markdown: str, heading: str) -> int:
    """Numbered items ("1. ...") after `heading` in a markdown cell, up to the next heading."""
    section = markdown.split(heading, 1)[1]
    section = re.split(r"^#{1,3} ", section, flags=re.MULTILINE)[0]
    return len(re.findall(r"^\d+\. ", section, flags=re.MULTILINE))


def solution_problems(notebook, heading: str) -> list[str]:
    """What is wrong with the exercises and solutions of `notebook` (a jupytext/nbformat notebook); [] if
    nothing. Cells are numbered from 1 as a notebook shows them."""
    cells = notebook.cells
    opening = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and heading in c.source]
    if len(opening) != 1:
        return [f"{len(opening)} markdown cells contain {heading!r}: the notebook needs exactly one"]
    start = opening[0]
    n_exercises = exercise_count(cells[start].source, heading)
    if n_exercises == 0:
        return [f"cell {start + 1}: no numbered exercises (lines starting '1. ') under {heading!r}"]
    problems = []
    tagged = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    if tagged and tagged[0] < start:
        problems.append(f"cell {tagged[0] + 1} is tagged solution but comes before the exercises")
    code_after = [i for i, c in enumerate(cells) if i > start and c.cell_type == "code"]
    if len(code_after) != n_exercises:
        problems.append(f"{n_exercises} exercises but {len(code_after)} code cells after them: "
                        "write one solution cell per exercise")
    for number, i in enumerate(code_after, 1):
        cell, where = cells[i], f"cell {i + 1} (solution {number})"
        first_line = cell.source.splitlines()[0] if cell.source else ""
        match = TITLE.match(first_line)
        if not match or int(match.group(1)) != number:
            problems.append(f"{where} starts {first_line!r}, not '# @title Solution {number}: <name> "
                            '{ display-mode: "form" }\'')
        if "solution" not in cell.metadata.get("tags", []):
            problems.append(f"{where} is not tagged 'solution'")
        if cell.metadata.get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"{where} is not folded: its metadata needs jupyter.source_hidden = true "
                            '(in the .py: # %% jupyter={"source_hidden": true} tags=["solution"])')
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_exercise_has_a_folded_solution(path):
    edition = path.parent.name
    assert edition in EXERCISES_HEADING, f"{edition}: add its exercises heading to EXERCISES_HEADING"
    problems = solution_problems(jupytext.read(path), EXERCISES_HEADING[edition])
    hint = "" if edition == "en" else f"; after changing notebooks/en, run `python scripts/sync_edition.py {edition}`"
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems) + hint


def test_the_english_notebooks_are_checked():
    assert len([p for p in NOTEBOOKS if p.parent.name == "en"]) == 10


def good_notebook(n: int = 2):
    """A notebook shaped as the course's end: exercises, a markdown cell, `n` folded solution cells."""
    cells = [nbformat.v4.new_markdown_cell("## Summary\n\n- a point\n\n## Exercises\n\n" +
                                           "\n".join(f"{k}. Do thing {k}." for k in range(1, n + 1))),
             nbformat.v4.new_markdown_cell("### Solutions — try first; each is folded: click to unfold it")]
    for k in range(1, n + 1):
        cells.append(nbformat.v4.new_code_cell(f'# @title Solution {k}: thing {k} {{ display-mode: "form" }}\nprint({k})',
                                               metadata={"jupyter": {"source_hidden": True}, "tags": ["solution"]}))
    return nbformat.v4.new_notebook(cells=cells)


def test_a_good_notebook_passes_and_survives_the_py_round_trip(tmp_path):
    notebook = good_notebook()
    assert solution_problems(notebook, "## Exercises") == []
    path = tmp_path / "01_x.py"
    jupytext.write(notebook, path, fmt="py:percent")
    assert '# %% jupyter={"source_hidden": true} tags=["solution"]' in path.read_text()
    assert solution_problems(jupytext.read(path), "## Exercises") == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda nb: nb.cells.pop(), "2 exercises but 1 code cells"),
    (lambda nb: nb.cells[2].metadata.update(tags=[]), "cell 3 (solution 1) is not tagged"),
    (lambda nb: nb.cells[3].metadata.pop("jupyter"), "cell 4 (solution 2) is not folded"),
    (lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source.replace("Solution 1", "Solution 2")),
     "cell 3 (solution 1) starts '# @title Solution 2"),
    (lambda nb: setattr(nb.cells[3], "source", "print(2)"), "cell 4 (solution 2) starts 'print(2)'"),
    (lambda nb: setattr(nb.cells[0], "source", "## Summary\n\n## Exercises\n\nDo them."), "no numbered exercises"),
    (lambda nb: setattr(nb.cells[0], "source", "## Summary"), "0 markdown cells contain '## Exercises'"),
], ids=["missing", "untagged", "unfolded", "misnumbered", "untitled", "no-list", "no-heading"])
def test_a_broken_notebook_fails_with_the_reason(breakage, expected, tmp_path):
    notebook = good_notebook()
    breakage(notebook)
    path = tmp_path / "01_x.ipynb"  # through a file, as the real notebooks are read
    nbformat.write(notebook, path)
    problems = solution_problems(jupytext.read(path), "## Exercises")
    assert any(expected in problem for problem in problems), problems
