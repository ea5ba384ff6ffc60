"""Opening a notebook in JupyterLab must leave `git status` clean: the committed files are byte for byte what
JupyterLab 4 with jupytext writes when it saves them. Seen in JupyterLab 4.6 (tests/test_browser.py opens one and
saves it): the .ipynb gets the kernel's `language_info` and the kernelspec name "Python 3 (ipykernel)", and the
paired .py gets jupytext's `format_version` and `jupytext_version` header lines."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*/[0-9][0-9]_*.ipynb"))
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# What ipykernel reports; `version` is the kernel's Python, the course's 3.11 on our machines and CI.
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}
FIX = ("write it with `jupytext --update --to ipynb notebooks/en/NN_name.py` and for notebooks/zh "
       "`python scripts/sync_edition.py zh`")


def expected_files(ipynb: Path) -> tuple[str, str]:
    """(the .ipynb text, the .py text) JupyterLab writes when it saves this notebook unchanged."""
    notebook = nbformat.read(ipynb, as_version=4)
    return nbformat.writes(notebook) + "\n", jupytext.writes(notebook, fmt="py:percent")


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_metadata_is_what_jupyterlab_writes(ipynb):
    metadata = nbformat.read(ipynb, as_version=4).metadata
    assert metadata.get("kernelspec") == KERNELSPEC, f"{ipynb.name}: kernelspec {metadata.get('kernelspec')}"
    info = dict(metadata.get("language_info", {}))
    version = info.pop("version", "")
    assert info == LANGUAGE_INFO and re.fullmatch(r"3\.11\.\d+", version), (
        f"{ipynb.name}: language_info {metadata.get('language_info')} is not what a Python 3.11 kernel reports")
    assert metadata.get("jupytext") == {"formats": "ipynb,py:percent"}, f"{ipynb.name}: {metadata.get('jupytext')}"


def test_every_notebook_names_the_same_python():
    versions = {nbformat.read(path, as_version=4).metadata["language_info"]["version"] for path in NOTEBOOKS}
    assert len(versions) == 1, f"language_info.version differs between notebooks: {sorted(versions)}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_both_files_are_byte_for_byte_what_a_save_writes(ipynb):
    ipynb_text, py_text = expected_files(ipynb)
    assert ipynb.read_text() == ipynb_text, f"{ipynb.relative_to(ROOT)} is laid out differently: {FIX}"
    py = ipynb.with_suffix(".py")
    assert py.read_text() == py_text, (
        f"{py.relative_to(ROOT)} is not what jupytext {jupytext.__version__} writes for its .ipynb "
        f"(header lines, cell markers): {FIX}")
