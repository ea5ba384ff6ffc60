"""Progress bars in a saved notebook: executed in a real kernel (as nbclient executes the course's notebooks), the
bars of transformers and datasets end as text at their final state beside their widget, instead of the 0% they
showed when they appeared."""

import nbformat
from nbclient import NotebookClient

BARS = """from transformers.utils import logging
for _ in logging.tqdm(range(20), desc="Loading weights"):
    pass
import datasets
datasets.Dataset.from_dict({"x": list(range(50))}).map(lambda row: row, desc="Tokenizing train dataset")
for _ in logging.tqdm(range(10), desc="Hidden when done", leave=False):
    pass
left_open = logging.tqdm(total=5, desc="Left open")  # closed by its __del__, as libraries' bars sometimes are
left_open.update(5)
del left_open
import gc
gc.collect()
"""


def bar_outputs(first_cell: str, tmp_path) -> list[dict]:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(first_cell), nbformat.v4.new_code_cell(BARS)])
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[1].outputs
    assert not [output for output in outputs if output["output_type"] == "error"], outputs  # nbmake fails on these
    return [output.get("data", {}) for output in outputs if output["output_type"] == "display_data"]


def test_bars_end_as_text_and_stay_widgets(tmp_path):
    loading, tokenizing, hidden, left_open = bar_outputs("from course_lib.progress import readable_progress_bars\n"
                                                         "readable_progress_bars()\nreadable_progress_bars()", tmp_path)
    assert loading["text/plain"].startswith("Loading weights: 100%|██████████| 20/20 [")
    assert tokenizing["text/plain"].startswith("Tokenizing train dataset: 100%|██████████| 50/50 [")
    assert hidden == {"text/plain": ""}  # a bar tqdm hides when it closes leaves no line behind
    assert left_open["text/plain"].startswith("Left open: 100%|██████████| 5/5 [")
    assert "application/vnd.jupyter.widget-view+json" in loading  # live frontends still draw the widget


def test_without_it_a_saved_bar_reads_0_percent(tmp_path):
    """The fault the function fixes, seen here so that the test above cannot pass for another reason."""
    loading, tokenizing, _, _ = bar_outputs("pass", tmp_path)
    assert loading["text/plain"].startswith("Loading weights:   0%|          | 0/20")
    assert tokenizing["text/plain"].startswith("Tokenizing train dataset:   0%|          | 0/50")
