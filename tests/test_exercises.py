"""The exercises at the end of every notebook: each notebook's own number of exercises, then the switch cell
and one folded `%%solution` cell per exercise, numbered in order, in both files of each pair and in every
edition; and the `%%solution` magic itself, run in a real kernel: Run All skips a solution, SHOW_SOLUTIONS or
ERNIE_COURSE_SOLUTIONS=1 (set by `make test`, so that nbmake executes every solution) runs it, and a failing
solution fails its cell."""

import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_lib import solutions

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.py")) + sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.ipynb"))
# Exercises per notebook: a lost exercise (or one added without its solution) fails here, not just a total.
EXERCISES = {"01_setup": 3, "02_lora_configuration": 3, "03_data_formatting": 4, "04_training": 5,
             "05_merge_and_save": 6}
# The heading that opens the exercises, per edition; a translation keeps the numbered list under its own.
EXERCISES_HEADING = {"en": "## Exercises", "zh": "## 练习"}
# How a solution's form title starts, per edition (sync_edition.py leaves the title's text to the edition).
TITLE_START = {"en": "Solution {number}: ", "zh": "答案 {number}："}
SWITCH_CELL = ("%load_ext course_lib.solutions\n"
               "SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)")


def exercise_count(markdown: str, heading: str) -> int:
    """Numbered items ("1. ...") after `heading` in a markdown cell, up to the next heading."""
    section = markdown.split(heading, 1)[1]
    section = re.split(r"^#{1,3} ", section, flags=re.MULTILINE)[0]
    return len(re.findall(r"^\d+\. ", section, flags=re.MULTILINE))


def solution_problems(notebook, heading: str, expected: int | None = None, edition: str = "en") -> list[str]:
    """What is wrong with the exercises and solutions of `notebook` (a jupytext/nbformat notebook); [] if
    nothing. `expected`: how many exercises it must have. Cells are numbered from 1 as a notebook shows them."""
    cells = notebook.cells
    opening = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and heading in c.source]
    if len(opening) != 1:
        return [f"{len(opening)} markdown cells contain {heading!r}: the notebook needs exactly one"]
    start = opening[0]
    n_exercises = exercise_count(cells[start].source, heading)
    if n_exercises == 0:
        return [f"cell {start + 1}: no numbered exercises (lines starting '1. ') under {heading!r}"]
    problems = []
    if expected is not None and n_exercises != expected:
        problems.append(f"{n_exercises} exercises, expected {expected}: update EXERCISES if that is intended")
    tagged = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    if tagged and tagged[0] < start:
        problems.append(f"cell {tagged[0] + 1} is tagged solution but comes before the exercises")
    code_after = [i for i, c in enumerate(cells) if i > start and c.cell_type == "code"]
    if not code_after or cells[code_after[0]].source != SWITCH_CELL:
        found = cells[code_after[0]].source.splitlines()[:1] if code_after else "nothing"
        return problems + [f"the first code cell after the exercises must be the switch cell {SWITCH_CELL!r}, "
                           f"found {found}"]
    if len(code_after) - 1 != n_exercises:
        problems.append(f"{n_exercises} exercises but {len(code_after) - 1} solution cells after the switch cell: "
                        "write one solution cell per exercise")
    for number, i in enumerate(code_after[1:], 1):
        cell, where = cells[i], f"cell {i + 1} (solution {number})"
        first_line, second_line = (cell.source.splitlines() + ["", ""])[:2]
        start = TITLE_START[edition].format(number=number)
        if not re.fullmatch(rf'# @title {re.escape(start)}\S.* \{{ display-mode: "form" \}}', first_line):
            problems.append(f"{where} starts {first_line!r}, not '# @title {start}<name> "
                            '{ display-mode: "form" }\'')
        if second_line != "%%solution":
            problems.append(f"{where}: its second line is {second_line!r}, not '%%solution' (Run All would run it)")
        if "solution" not in cell.metadata.get("tags", []):
            problems.append(f"{where} is not tagged 'solution'")
        folded = cell.metadata.get("jupyter", {})
        if folded.get("source_hidden") is not True or folded.get("outputs_hidden") is not True:
            problems.append(f"{where} is not folded: its metadata needs jupyter.source_hidden and "
                            'jupyter.outputs_hidden = true (in the .py: # %% jupyter={"outputs_hidden": true, '
                            '"source_hidden": true} tags=["solution"])')
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_exercise_has_a_folded_solution(path):
    edition = path.parent.name
    assert edition in EXERCISES_HEADING, f"{edition}: add its exercises heading to EXERCISES_HEADING"
    problems = solution_problems(jupytext.read(path), EXERCISES_HEADING[edition], EXERCISES[path.stem], edition)
    hint = "" if edition == "en" else f"; after changing notebooks/en, run `python scripts/sync_edition.py {edition}`"
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems) + hint


def test_every_notebook_is_checked():
    assert sorted({p.stem for p in NOTEBOOKS if p.parent.name == "en"}) == sorted(EXERCISES)
    assert len(NOTEBOOKS) == 2 * len(EXERCISES) * len(EXERCISES_HEADING)


def test_make_test_executes_the_solutions():
    """nbmake runs each notebook's cells as they are: only the environment can switch the solutions on."""
    (recipe,) = re.findall(r"^test:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert f"{solutions.ENV_VAR}=1 " in recipe and "--nbmake" in recipe


def good_notebook(n: int = 2):
    """A notebook shaped as the course's end: exercises, a markdown cell, the switch cell, `n` solution cells."""
    cells = [nbformat.v4.new_markdown_cell("## Summary\n\n- a point\n\n## Exercises\n\n" +
                                           "\n".join(f"{k}. Do thing {k}." for k in range(1, n + 1))),
             nbformat.v4.new_markdown_cell("### Solutions — try first; each is folded: click to unfold it"),
             nbformat.v4.new_code_cell(SWITCH_CELL)]
    for k in range(1, n + 1):
        cells.append(nbformat.v4.new_code_cell(
            f'# @title Solution {k}: thing {k} {{ display-mode: "form" }}\n%%solution\nprint({k})',
            metadata={"jupyter": {"outputs_hidden": True, "source_hidden": True}, "tags": ["solution"]}))
    return nbformat.v4.new_notebook(cells=cells)


def test_a_good_notebook_passes_and_survives_the_py_round_trip(tmp_path):
    notebook = good_notebook()
    assert solution_problems(notebook, "## Exercises", expected=2) == []
    path = tmp_path / "01_x.py"
    jupytext.write(notebook, path, fmt="py:percent")
    assert '# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]' in path.read_text()
    assert solution_problems(jupytext.read(path), "## Exercises") == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda nb: nb.cells.pop(), "2 exercises but 1 solution cells"),
    (lambda nb: nb.cells[3].metadata.update(tags=[]), "cell 4 (solution 1) is not tagged"),
    (lambda nb: nb.cells[4].metadata.pop("jupyter"), "cell 5 (solution 2) is not folded"),
    (lambda nb: nb.cells[4].metadata["jupyter"].pop("outputs_hidden"), "cell 5 (solution 2) is not folded"),
    (lambda nb: setattr(nb.cells[3], "source", nb.cells[3].source.replace("Solution 1", "Solution 2")),
     "cell 4 (solution 1) starts '# @title Solution 2"),
    (lambda nb: setattr(nb.cells[4], "source", "print(2)"), "cell 5 (solution 2) starts 'print(2)'"),
    (lambda nb: setattr(nb.cells[4], "source", nb.cells[4].source.replace("%%solution\n", "")),
     "cell 5 (solution 2): its second line is 'print(2)', not '%%solution'"),
    (lambda nb: nb.cells.pop(2), "must be the switch cell"),
    (lambda nb: setattr(nb.cells[0], "source", nb.cells[0].source + "\n3. Do thing 3."), "3 exercises, expected 2"),
    (lambda nb: setattr(nb.cells[0], "source", "## Summary\n\n## Exercises\n\nDo them."), "no numbered exercises"),
    (lambda nb: setattr(nb.cells[0], "source", "## Summary"), "0 markdown cells contain '## Exercises'"),
], ids=["missing", "untagged", "unfolded", "output-unfolded", "misnumbered", "untitled", "runs-always",
        "no-switch", "miscounted", "no-list", "no-heading"])
def test_a_broken_notebook_fails_with_the_reason(breakage, expected, tmp_path):
    notebook = good_notebook()
    breakage(notebook)
    path = tmp_path / "01_x.ipynb"  # through a file, as the real notebooks are read
    nbformat.write(notebook, path)
    problems = solution_problems(jupytext.read(path), "## Exercises", expected=2)
    assert any(expected in problem for problem in problems), problems


def executed(cells: list[str], tmp_path, solutions_env: str | None):
    """The cells, executed in a fresh kernel as nbmake executes a notebook (an error stops the run)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    saved = os.environ.pop(solutions.ENV_VAR, None)
    if solutions_env is not None:
        os.environ[solutions.ENV_VAR] = solutions_env
    try:
        NotebookClient(notebook, timeout=60, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.pop(solutions.ENV_VAR, None)
        if saved is not None:
            os.environ[solutions.ENV_VAR] = saved
    return notebook


def text_of(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


SOLUTION = '# @title Solution 1: a side effect { display-mode: "form" }\n%%solution\nran = True\nprint("ran")'


def test_run_all_skips_a_solution_until_the_notebook_asks(tmp_path):
    notebook = executed([SWITCH_CELL, SOLUTION, "print('ran' in dir())",
                         "SHOW_SOLUTIONS = True", SOLUTION, "print(ran)"], tmp_path, solutions_env=None)
    cells = notebook.cells
    assert text_of(cells[1]) == solutions.SKIPPED + "\n"
    assert text_of(cells[2]) == "False\n"  # the body did not run at all
    assert text_of(cells[4]) == "ran\n" and text_of(cells[5]) == "True\n"


def test_the_environment_runs_solutions_and_a_failing_one_fails_its_cell(tmp_path):
    failing = '# @title Solution 2: broken { display-mode: "form" }\n%%solution\nprint("before")\n1 / 0'
    with pytest.raises(CellExecutionError) as error:
        executed([SWITCH_CELL, SOLUTION, failing, "print('not reached')"], tmp_path, solutions_env="1")
    assert "SolutionFailed: the solution failed with ZeroDivisionError: division by zero" in str(error.value)
    notebook = executed([SWITCH_CELL, SOLUTION], tmp_path, solutions_env="1")
    assert text_of(notebook.cells[1]) == "ran\n"


def test_a_mistyped_environment_value_is_refused(monkeypatch):
    monkeypatch.setenv(solutions.ENV_VAR, "yes")
    with pytest.raises(ValueError, match="ERNIE_COURSE_SOLUTIONS='yes': use 1"):
        solutions.solutions_on({})


def test_form_lines_move_below_the_magic_and_nothing_else_moves():
    cell = ['# @title Solution 1: x { display-mode: "form" }\n', "%%solution\n", "print(1)\n"]
    assert solutions.magic_after_form_lines(cell) == [cell[1], cell[0], cell[2]]
    for unchanged in (["# a comment\n", "%%solution\n"], ["%%solution\n", "# @title x\n"], ["# @title x\n", "x = 1\n"]):
        assert solutions.magic_after_form_lines(unchanged) == unchanged


def test_a_skipped_solution_says_so_in_chinese_in_the_chinese_edition(tmp_path, monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")  # the kernel inherits it, as from the notebook's set_language("zh")
    notebook = executed([SWITCH_CELL, SOLUTION], tmp_path, solutions_env=None)
    assert text_of(notebook.cells[1]) == solutions.SKIPPED_ZH + "\n" and "SHOW_SOLUTIONS = True" in solutions.SKIPPED_ZH
