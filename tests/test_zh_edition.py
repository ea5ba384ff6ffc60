"""The Chinese edition, executed: every notebook of notebooks/zh/ runs as nbmake runs the English ones (`make test`
executes notebooks/en with nbmake and these here, so each notebook still runs once), and what course_lib printed
is in Chinese. SAMPLES lists, per notebook, messages its outputs must hold in Chinese and must not hold in English;
a module translated later adds its own lines there."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb"))  # in order: 05 reloads what 04 saved
CELL_TIMEOUT = 900  # seconds, as `make test` gives nbmake: a fresh work folder builds the tiny slice first
# The kernel's environment is pytest's as it started (conftest's fixtures have not run yet when this is imported):
# the one nbmake's kernels get, with ERNIE_COURSE_SOLUTIONS=1 from `make test`. The notebook sets its language.
ENVIRONMENT = {key: value for key, value in os.environ.items() if key != "ERNIE_COURSE_LANGUAGE"}

# (Chinese, English) pairs: the first must be in the outputs, the second must not.
EVERY_NOTEBOOK = [("Unsloth 后端", "unsloth backend"),  # environment.format_report's rows
                  ("没有 GPU：CPU 路径用 fp32 训练", "no GPU: the CPU path trains in fp32")]  # CI has no GPU
SAMPLES = {
    "01_setup": [("doctor：没有发现问题", "doctor: no problems found"),  # doctor.report
                 ("已用", " GiB used of ")],  # environment.Memory
    "02_lora_configuration": [],
    "03_data_formatting": [("OK：每个问题和答案都是非空文本", "OK: every question and answer is non-empty text"),
                           ("行会训练出问题", "would train badly"),  # validation.Report of the messy file
                           ("行中保留", "rows; dropped")],  # Report.drop_bad
    "04_training": [("个真实 token 中有", "real tokens in"),  # checks.LabelCounts
                    ("保存格式：", "saving format:"),  # chat_format.saving_format
                    ("最终数字正确", "; stopped at <|end_of_sentence|>")],  # evaluation.Evaluation.summary
    "05_merge_and_save": [("保存格式：", "saving format:"),
                          ("个文件，共", " files, "),  # saving.describe_folder
                          ("个合并后的矩阵与舍入到", "merged matrices against W")],  # saving.WeightCheck
}


def outputs_text(notebook) -> str:
    """Everything the code cells showed: streams, results and displays as text, errors."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                parts.append(f"{output.ename}: {output.evalue}")
            else:
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_every_notebook_has_its_samples():
    assert sorted(SAMPLES) == [path.stem for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_chinese_notebook_runs_and_speaks_chinese(path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # run in its folder, as nbmake does
    try:
        client.execute(env=ENVIRONMENT)
    except CellExecutionError as error:  # its text is the failing cell and its traceback, as nbmake shows them
        pytest.fail(f"{path.relative_to(ROOT)} failed:\n{error}", pytrace=False)
    shown = outputs_text(notebook)
    missing = [chinese for chinese, _ in EVERY_NOTEBOOK + SAMPLES[path.stem] if chinese not in shown]
    english = [english for _, english in EVERY_NOTEBOOK + SAMPLES[path.stem] if english in shown]
    assert not missing and not english, (f"{path.relative_to(ROOT)}: Chinese messages missing {missing}, English "
                                         f"messages printed {english}; its outputs:\n{shown[-3000:]}")
