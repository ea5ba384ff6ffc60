"""The translated editions (notebooks/zh/...): one per English notebook, with the English code cells exactly,
and no text left awaiting translation. scripts/sync_edition.py keeps them so; these tests fail when it was
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
              if cell.cell_type != "code" and any(marker in cell.source for marker in sync.MARKERS)]
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
    copy = tmp_path / "04_training.py"
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
    (found,) = sync.code_differences(NOTEBOOK_DIR / "en" / "04_training.py", tmp_path / "04_training.py")
    assert "has tags [], English has ['parameters']" in found


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
