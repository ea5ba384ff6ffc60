"""The translated editions (notebooks/zh/...): one per English notebook, with the English code cells but for
the declared differences (the language line, the solutions' form titles), and no text or title left awaiting
translation. scripts/sync_edition.py keeps them so; these tests fail when it was
not run after an English change, and check that the script itself pairs cells as promised."""

import importlib.util
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
ENGLISH = sorted((NOTEBOOK_DIR / "en").glob("[0-9][0-9]_*.py"))
EDITIONS = sorted(path.name for path in NOTEBOOK_DIR.iterdir() if path.is_dir() and path.name != "en")
PAIRS = [(edition, english) for edition in EDITIONS for english in ENGLISH]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


sync = load_script(ROOT / "scripts" / "sync_edition.py")


def pair_id(pair) -> str:
    return f"{pair[0]}/{pair[1].stem}"


def test_the_chinese_edition_exists():
    assert "zh" in EDITIONS


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_every_english_notebook_has_its_translation(pair):
    edition, english = pair
    for suffix in (".py", ".ipynb"):
        path = (NOTEBOOK_DIR / edition / english.name).with_suffix(suffix)
        assert path.exists(), f"{path} is missing: run `python scripts/sync_edition.py {edition}`, then translate it"


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_code_cells_are_the_english_ones(pair):
    edition, english = pair
    for suffix in (".py", ".ipynb"):
        found = sync.code_differences(english, (NOTEBOOK_DIR / edition / english.name).with_suffix(suffix))
        assert not found, "\n".join(found) + f"\nRun `python scripts/sync_edition.py {edition}`."


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_no_text_awaits_translation(pair):
    edition, english = pair
    path = NOTEBOOK_DIR / edition / english.name
    marked = [f"cell {number}: {cell.source.splitlines()[0]} {cell.source.splitlines()[1:2]}"
              for number, cell in enumerate(jupytext.read(path).cells, 1)
              if any(marker in (cell.source if cell.cell_type != "code" else sync.title_of(cell.source) or "")
                     for marker in sync.MARKERS)]
    assert not marked, (f"{path.relative_to(ROOT)} has text to translate:\n" + "\n".join(marked) +
                        "\nTranslate each cell, delete its marker line, and run `python scripts/sync_edition.py "
                        f"{edition}`.")


@pytest.mark.parametrize("edition", EDITIONS)
def test_edition_is_in_step_with_the_english_notebooks(edition, capsys):
    """Everything the script checks: code, new or changed English text, and the .ipynb pairs."""
    status = sync.sync_edition(edition, check=True)
    assert status == 0, capsys.readouterr().out


def planted(tmp_path: Path, change) -> tuple[Path, int, int]:
    """A copy of the Chinese notebook 4 with `change` applied to its 5th code cell:
    (the copy, the code cell's number, its number among all cells)."""
    notebook = jupytext.read(NOTEBOOK_DIR / "zh" / "04_training.py")
    index = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"][4]
    change(notebook.cells[index])
    copy = tmp_path / "zh" / "04_training.py"  # the folder names the edition, so its language line is known
    copy.parent.mkdir(exist_ok=True)
    jupytext.write(notebook, copy, fmt="py:percent")
    return copy, 5, index + 1


def test_an_identical_copy_has_no_differences(tmp_path):
    copy, _, _ = planted(tmp_path, lambda cell: None)
    assert sync.code_differences(NOTEBOOK_DIR / "en" / "04_training.py", copy) == []


def test_one_changed_character_in_a_code_cell_is_reported_with_its_place(tmp_path):
    def change_one_character(cell):
        middle = len(cell.source) // 2
        cell.source = cell.source[:middle] + ("#" if cell.source[middle] != "#" else "!") + cell.source[middle + 1:]

    copy, code_number, cell_number = planted(tmp_path, change_one_character)
    (found,) = sync.code_differences(NOTEBOOK_DIR / "en" / "04_training.py", copy)
    assert "04_training.py" in found and f"code cell {code_number} (cell {cell_number} of the notebook)" in found


def test_a_lost_parameters_tag_is_reported(tmp_path):
    english = jupytext.read(NOTEBOOK_DIR / "en" / "04_training.py")
    notebook = jupytext.read(NOTEBOOK_DIR / "zh" / "04_training.py")
    (index,) = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert "parameters" in english.cells[index].metadata.get("tags", [])
    notebook.cells[index].metadata = {}
    jupytext.write(notebook, tmp_path / "04_training.py", fmt="py:percent")
    (found,) = sync.code_differences(NOTEBOOK_DIR / "en" / "04_training.py", tmp_path / "04_training.py", "zh")
    assert "has tags [], English has ['parameters']" in found


def zh_cells(name: str = "04_training.py") -> list:
    return jupytext.read(NOTEBOOK_DIR / "zh" / name).cells


def differences_after(tmp_path: Path, change, name: str = "04_training.py") -> list[str]:
    """code_differences of the Chinese notebook `name` with `change` applied to its cells."""
    notebook = jupytext.read(NOTEBOOK_DIR / "zh" / name)
    change(notebook.cells)
    jupytext.write(notebook, tmp_path / name, fmt="py:percent")
    return sync.code_differences(NOTEBOOK_DIR / "en" / name, tmp_path / name, "zh")


def test_the_declared_differences_are_there_and_allowed():
    english = jupytext.read(NOTEBOOK_DIR / "en" / "04_training.py").cells
    chinese = zh_cells()
    assert sum('set_language("zh")' in cell.source for cell in chinese) == 1
    assert sum('set_language("en")' in cell.source for cell in english) == 1
    titles = [sync.title_of(cell.source) for cell in chinese if sync.title_of(cell.source)]
    assert titles and all(title.startswith("答案 ") for title in titles), titles
    assert all(cell.metadata[sync.TITLE_KEY].startswith("Solution ") for cell in chinese if sync.title_of(cell.source))


def test_a_wrong_language_line_is_reported(tmp_path):
    def speak_english(cells):
        (cell,) = [cell for cell in cells if 'set_language("zh")' in cell.source]
        cell.source = cell.source.replace('set_language("zh")', 'set_language("en")')

    (found,) = differences_after(tmp_path, speak_english)
    assert "language line is 'set_language(\"zh\")'" in found and "set_language(\"en\")" in found.split("here:")[1]


def test_a_missing_language_line_is_reported(tmp_path):
    def drop_it(cells):
        (cell,) = [cell for cell in cells if 'set_language("zh")' in cell.source]
        cell.source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("set_language"))

    (found,) = differences_after(tmp_path, drop_it)
    assert "language line" in found


def test_a_changed_line_under_a_translated_title_is_reported(tmp_path):
    def change_code(cells):
        cell = next(cell for cell in cells if sync.title_of(cell.source))
        cell.source = cell.source.replace("\n", "\nx = 1\n", 2).replace("\nx = 1\n", "\n", 1)  # after line 2

    (found,) = differences_after(tmp_path, change_code)
    assert "line 3" in found and "'x = 1'" in found


def test_a_title_line_turned_into_something_else_is_reported(tmp_path):
    def lose_title(cells):
        cell = next(cell for cell in cells if sync.title_of(cell.source))
        cell.source = "# 答案 1" + cell.source[cell.source.index("\n"):]

    (found,) = differences_after(tmp_path, lose_title)
    assert "line 1" in found and "@title" in found


def test_an_edition_without_a_language_is_refused(tmp_path):
    (tmp_path / "en").mkdir()
    with pytest.raises(SystemExit, match="declares no language.*EDITION_LANGUAGES"):
        sync.sync_edition("fr", check=True, notebooks=tmp_path)


# The script on a small world: one English notebook and its translation, copied to tmp_path and changed.

NAME = "02_lora_configuration.py"


@pytest.fixture
def world(tmp_path):
    for edition in ("en", "zh"):
        (tmp_path / edition).mkdir()
        for suffix in (".py", ".ipynb"):
            shutil.copy((NOTEBOOK_DIR / edition / NAME).with_suffix(suffix), tmp_path / edition)
    return tmp_path


def edit_english(world: Path, change) -> None:
    notebook = jupytext.read(world / "en" / NAME)
    change(notebook.cells)
    jupytext.write(notebook, world / "en" / NAME, fmt="py:percent")


def index_of(cells, start: str) -> int:
    return next(i for i, cell in enumerate(cells) if cell.source.startswith(start))


def run(world: Path, capsys, check: bool) -> tuple[int, str]:
    status = sync.sync_edition("zh", check=check, notebooks=world)
    return status, capsys.readouterr().out


def test_new_english_cells_come_in_untranslated_and_the_translation_stays(world, capsys):
    before = jupytext.read(world / "zh" / NAME)

    def add_cells(cells):
        cells[index_of(cells, "print(env.format_report")].source += "  # edited"
        settings = next(i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", []))
        cells[settings + 1:settings + 1] = [nbformat.v4.new_markdown_cell("Check the settings first."),
                                            nbformat.v4.new_code_cell("assert LORA_R > 0")]
        cells += [nbformat.v4.new_markdown_cell("## Solutions"), nbformat.v4.new_code_cell("print('solution 1')")]

    edit_english(world, add_cells)
    status, out = run(world, capsys, check=True)
    assert status == 1 and "Check the settings first." in out and "## Solutions" in out
    assert "code: replaced with the English cell" in out and "would change" in out

    assert run(world, capsys, check=False)[0] == 0
    assert sync.code_differences(world / "en" / NAME, world / "zh" / NAME) == []
    assert sync.code_differences(world / "en" / NAME, world / "zh" / NAME.replace(".py", ".ipynb")) == []
    cells = jupytext.read(world / "zh" / NAME).cells
    for new_code in ("assert LORA_R > 0", "print('solution 1')"):
        above = cells[index_of(cells, new_code) - 1].source
        assert above.startswith(sync.UNTRANSLATED), above
    translated = [cell.source for cell in before.cells if cell.cell_type == "markdown"]
    assert translated == [cell.source for cell in cells if cell.cell_type == "markdown"
                          and not cell.source.startswith(sync.UNTRANSLATED)]

    status, out = run(world, capsys, check=True)
    assert status == 1 and out.count("still marked") == 2

    notebook = jupytext.read(world / "zh" / NAME)
    for cell in notebook.cells:
        if cell.source.startswith(sync.UNTRANSLATED):
            cell.source = "（已翻译）"
    (world / "zh" / NAME).write_text(sync.py_text(notebook))
    run(world, capsys, check=False)
    assert run(world, capsys, check=True)[0] == 0


def test_changed_english_text_marks_its_translation_for_review(world, capsys):
    def reword(cells):
        cell = cells[index_of(cells, "## 5 · Choose the rank")]
        cell.source = cell.source.replace("Move the slider", "Drag the slider")

    edit_english(world, reword)
    status, out = run(world, capsys, check=False)
    assert status == 0 and "ENGLISH CHANGED" in out and "Drag the slider" in out
    cells = jupytext.read(world / "zh" / NAME).cells
    cell = cells[index_of(cells, sync.CHANGED)]
    assert cell.source.splitlines()[1] == "## 5 · 选择秩", "the translation must be kept under the marker"
    assert run(world, capsys, check=True)[0] == 1

    def reword_again(cells):
        cell = cells[index_of(cells, "## 5 · Choose the rank")]
        cell.source = cell.source.replace("Drag the slider", "Slide the slider")

    edit_english(world, reword_again)
    status, out = run(world, capsys, check=False)
    assert "ENGLISH CHANGED" in out and "Slide the slider" in out, "a second change must be shown too"
    notebook = jupytext.read(world / "zh" / NAME)
    assert sum(cell.source.count(sync.CHANGED) for cell in notebook.cells) == 1
    marked = notebook.cells[index_of(notebook.cells, sync.CHANGED)]
    marked.source = marked.source.split("\n", 1)[1].replace("拖动滑块", "拖一拖滑块")
    (world / "zh" / NAME).write_text(sync.py_text(notebook))
    run(world, capsys, check=False)
    assert run(world, capsys, check=True)[0] == 0


def test_text_whose_english_was_removed_is_dropped_and_shown(world, capsys):
    edit_english(world, lambda cells: cells.pop(index_of(cells, "PEFT counts the trainable parameters too.")))
    status, out = run(world, capsys, check=False)
    assert "removed: translated text" in out and "PEFT 也会统计可训练参数" in out
    assert run(world, capsys, check=True)[0] == 0
    cells = jupytext.read(world / "zh" / NAME).cells
    assert not any("PEFT 也会统计可训练参数" in cell.source for cell in cells)


def solution_titles(world: Path) -> list[tuple[str, str]]:
    """(form title, en_title) of each solution cell of the small world's Chinese notebook."""
    return [(sync.title_of(cell.source), cell.metadata.get(sync.TITLE_KEY))
            for cell in jupytext.read(world / "zh" / NAME).cells if sync.title_of(cell.source)]


def test_a_new_solution_title_comes_in_english_and_awaits_translation(world, capsys):
    def add_solution(cells):
        cells.append(nbformat.v4.new_code_cell('# @title Solution 4: rank 8 { display-mode: "form" }\n'
                                               "%%solution\nprint(8)", metadata={"tags": ["solution"]}))

    edit_english(world, add_solution)
    status, out = run(world, capsys, check=False)
    assert status == 0 and "NEW ENGLISH TITLE, to translate" in out and "1 cell(s) to translate" in out
    assert solution_titles(world)[-1] == (f"{sync.UNTRANSLATED} Solution 4: rank 8", "Solution 4: rank 8")
    assert solution_titles(world)[0][0].startswith("答案 1"), "the other titles keep their translation"
    assert sync.code_differences(world / "en" / NAME, world / "zh" / NAME) == []
    status, out = run(world, capsys, check=True)
    assert status == 1 and "title still marked" in out

    text = (world / "zh" / NAME).read_text()
    (world / "zh" / NAME).write_text(text.replace(f"{sync.UNTRANSLATED} Solution 4: rank 8", "答案 4：秩 8"))
    run(world, capsys, check=False)
    assert run(world, capsys, check=True)[0] == 0
    assert solution_titles(world)[-1] == ("答案 4：秩 8", "Solution 4: rank 8")


def test_a_changed_english_title_marks_its_translation_stale(world, capsys):
    def retitle(cells):
        cell = next(cell for cell in cells if sync.title_of(cell.source) == "Solution 3: rank 64")
        cell.source = cell.source.replace("Solution 3: rank 64", "Solution 3: rank 64 and alpha 128")

    edit_english(world, retitle)
    status, out = run(world, capsys, check=False)
    assert "ENGLISH TITLE CHANGED" in out and "English before: Solution 3: rank 64\n" in out.replace("      | ", "")
    assert solution_titles(world)[2] == (f"{sync.CHANGED} 答案 3：秩 64", "Solution 3: rank 64 and alpha 128")
    assert run(world, capsys, check=True)[0] == 1
    run(world, capsys, check=False)
    assert solution_titles(world)[2][0].count(sync.CHANGED) == 1, "a second sync keeps one marker"

    text = (world / "zh" / NAME).read_text()
    (world / "zh" / NAME).write_text(text.replace(f"{sync.CHANGED} 答案 3：秩 64", "答案 3：秩 64，alpha 128"))
    run(world, capsys, check=False)
    assert run(world, capsys, check=True)[0] == 0
