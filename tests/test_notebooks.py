"""Static checks of the notebooks: pairs in sync, no outputs committed, links, install cell, settings, and
the library calls a learner copies (current APIs whose keywords still exist upstream). nbmake executes them."""

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path

import jupytext
import pytest

import links

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.py"))
EDITIONS = sorted({path.parent.name for path in SOURCES})
ENGLISH = sorted((NOTEBOOK_DIR / "en").glob("[0-9][0-9]_*.py"))


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of every cell, as jupytext reads the file (either format)."""
    return [(cell.cell_type, cell.source) for cell in jupytext.read(path).cells]


def code_cells(path: Path) -> list[str]:
    return [source for kind, source in cells(path) if kind == "code"]


def python_of(source: str) -> str:
    """A code cell without its IPython shell/magic lines, so that `ast` can parse it."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%")))


def calls(path: Path) -> list[ast.Call]:
    return [node for source in code_cells(path) for node in ast.walk(ast.parse(python_of(source)))
            if isinstance(node, ast.Call)]


def call_name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def settings(path: Path) -> dict[str, str]:
    """NAME -> source text of each assignment in the cell tagged "parameters"."""
    notebook = jupytext.read(path)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return {node.targets[0].id: ast.unparse(node.value) for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign)}


def test_the_english_notebooks_are_numbered_from_01_without_gaps():
    numbers = [int(path.stem[:2]) for path in ENGLISH]
    assert numbers == list(range(1, len(ENGLISH) + 1)) and len(ENGLISH) >= 5, [path.name for path in ENGLISH]


def unlinked(text: str, edition: str, prefix: str) -> list[str]:
    """Notebooks of `edition` that `text` does not link (as `prefix` + edition/NN_name.ipynb)."""
    return [path.name for path in sorted((NOTEBOOK_DIR / edition).glob("[0-9][0-9]_*.ipynb"))
            if f"({prefix}{edition}/{path.name})" not in text]


@pytest.mark.parametrize("document, edition, prefix", [("README.md", "en", "notebooks/"),
                                                       ("README.zh.md", "zh", "notebooks/"),
                                                       ("docs/teaching.md", "en", "../notebooks/"),
                                                       ("docs/teaching.zh.md", "zh", "../notebooks/")])
def test_the_guides_link_every_notebook(document, edition, prefix):
    assert unlinked((ROOT / document).read_text(), edition, prefix) == []


def test_a_notebook_missing_from_a_readme_is_caught():
    readme = (ROOT / "README.md").read_text().replace("(notebooks/en/04_training.ipynb)", "(somewhere-else)")
    assert unlinked(readme, "en", "notebooks/") == ["04_training.ipynb"]


def next_links(path: Path) -> list[str]:
    """Targets of the links on a notebook's "Next:" line (下一步 in the Chinese edition)."""
    lines = [source for kind, source in cells(path) if kind == "markdown"]
    nexts = [line for cell in lines for line in cell.splitlines() if line.startswith(("Next:", "下一步："))]
    return re.findall(r"\]\(([^)]+\.ipynb)\)", " ".join(nexts))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_notebook_links_the_next_one(source):
    later = sorted(source.parent.glob("[0-9][0-9]_*.ipynb"))
    following = [path.name for path in later if path.stem > source.stem][:1]
    assert next_links(source) == following


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_py_and_ipynb_have_identical_cells(source):
    """mtimes lie after a clone and `jupytext --diff` exits 0 on differences: compare the cells themselves."""
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired} is missing: run `jupytext --to ipynb {source}`"
    assert cells(source) == cells(paired), f"{source.name} and its .ipynb differ: run `jupytext --sync`"


def test_every_ipynb_has_a_py_source():
    for notebook in NOTEBOOK_DIR.glob("*/*.ipynb"):
        assert notebook.with_suffix(".py").exists(), notebook


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_DIR.glob("*/*.ipynb")), ids=lambda p: p.name)
def test_ipynb_is_committed_without_outputs(notebook):
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{notebook.name}: clear outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_opens_with_its_own_colab_badge(source):
    first_kind, first = cells(source)[0]
    ipynb = source.with_suffix(".ipynb").relative_to(ROOT).as_posix()
    assert first_kind == "markdown" and links.colab_url(ipynb) in first


def repository_links(text: str) -> list[str]:
    """owner/name of every link to this course's repository (GitHub, Colab, raw files, Binder)."""
    name = links.GITHUB_REPO.split("/")[1]
    pattern = rf"(?:github\.com|githubusercontent\.com|colab\.research\.google\.com/github|mybinder\.org/v2/gh)/([\w.-]+/{re.escape(name)})"
    return re.findall(pattern, text)


def test_every_link_to_the_course_uses_the_one_address():
    texts = list(NOTEBOOK_DIR.glob("*/*.py")) + list(ROOT.glob("*.md")) + list((ROOT / "docs").glob("*.md"))
    found = 0
    for path in texts:
        for repo in repository_links(path.read_text()):
            found += 1
            assert repo == links.GITHUB_REPO, f"{path.name} links to {repo}, not {links.GITHUB_REPO}"
    assert found >= len(SOURCES)


def test_colab_links_point_at_notebooks_that_exist():
    for path in list(NOTEBOOK_DIR.glob("*/*.py")) + list(ROOT.glob("*.md")):
        for target in re.findall(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/([\w/.-]+)",
                                 path.read_text()):
            assert (ROOT / target).exists(), f"{path.name} links to missing {target}"


def test_install_cell_is_the_same_everywhere_and_installs_the_pinned_files():
    install = code_cells(ENGLISH[0])[0]
    for source in SOURCES:
        assert code_cells(source)[0] == install, f"{source.name}: install cell differs from 01's"
    assert f"git clone --quiet --depth 1 {links.REPO_URL} " in install
    for requirements in re.findall(r"(requirements[\w-]*\.txt)", install):
        assert (ROOT / requirements).exists(), requirements
    assert "--no-deps -r {COURSE_DIR}/requirements-unsloth.txt" in install


@pytest.mark.parametrize("readme", ["README.md", "README.zh.md"])
def test_the_readmes_show_the_notebooks_install_cell(readme):
    """A learner may paste the README's Colab cell instead of running a notebook's: it must be the same."""
    install = code_cells(ENGLISH[0].with_suffix(".ipynb"))[0]  # as Colab shows it: `!pip`, not `# !pip`
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / readme).read_text(), flags=re.S)
    assert install.strip() in [block.strip() for block in blocks], f"{readme}: no Colab cell equal to the notebooks'"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_unsloth_is_imported_before_the_libraries_it_patches(source):
    text = "\n".join(code_cells(source))
    first_unsloth = text.find("import unsloth")
    assert first_unsloth >= 0
    for library in ("transformers", "trl", "peft"):
        match = re.search(rf"^\s*(?:import|from) {library}\b", text, re.MULTILINE)
        assert match is None or match.start() > first_unsloth, f"{source.name} imports {library} before unsloth"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_one_settings_cell_of_constants(source):
    values = settings(source)
    assert values and all(name.isupper() for name in values), values


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_current_apis_only(source):
    for call in calls(source):
        keywords = {k.arg for k in call.keywords}
        assert "trust_remote_code" not in keywords, source.name
        if call_name(call) == "SFTTrainer":
            assert "processing_class" in keywords and "tokenizer" not in keywords, source.name
        if call_name(call) == "SFTConfig":
            assert not keywords & {"max_seq_length", "dataset_text_field"}, source.name
        if "max_seq_length" in keywords:
            assert call_name(call) == "FastLanguageModel.from_pretrained", f"{source.name}: {call_name(call)}"


def parameters_in_source(path: Path, qualified: str) -> set[str]:
    """Parameter names of a function in a source file, read with `ast`: Unsloth's GPU path cannot be
    imported on a CPU machine, but its signature can still be checked."""
    *owners, name = qualified.split(".")
    tree = ast.parse(path.read_text())
    scope = tree.body
    for owner in owners:
        scope = next(node.body for node in scope if isinstance(node, ast.ClassDef) and node.name == owner)
    function = next(node for node in scope if isinstance(node, ast.FunctionDef) and node.name == name)
    args = function.args
    return {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}


def init_parameters(cls) -> set[str]:
    """__init__'s parameters, looking through wrappers (Unsloth subclasses SFTTrainer with *args, **kwargs)."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameters = inspect.signature(klass.__init__).parameters
            if not any(p.kind is p.VAR_POSITIONAL for p in parameters.values()):
                return set(parameters)
    raise AssertionError(f"no concrete __init__ found for {cls}")


def upstream_keywords() -> dict[str, list[set[str]]]:
    """For each call a learner copies: the keyword sets of every implementation it may reach (GPU and CPU)."""
    import trl
    import unsloth
    from unsloth_zoo.cpu.loader import FastCPUModel

    unsloth_dir = Path(unsloth.__file__).parent
    sft_fields = {field.name for field in dataclasses.fields(trl.SFTConfig)}
    return {
        "SFTConfig": [sft_fields],
        "SFTTrainer": [init_parameters(trl.SFTTrainer)],
        "FastLanguageModel.from_pretrained": [
            parameters_in_source(unsloth_dir / "models" / "loader.py", "FastLanguageModel.from_pretrained"),
            set(inspect.signature(FastCPUModel.from_pretrained).parameters)],
        "FastLanguageModel.get_peft_model": [
            parameters_in_source(unsloth_dir / "models" / "llama.py", "FastLlamaModel.get_peft_model"),
            set(inspect.signature(FastCPUModel.get_peft_model).parameters)],
        "save_pretrained_merged": [
            parameters_in_source(unsloth_dir / "save.py", "unsloth_save_pretrained_merged")],
    }


def test_keywords_the_notebooks_pass_still_exist_upstream():
    """When TRL or Unsloth renames an argument, this fails here instead of in a learner's Colab."""
    upstream = upstream_keywords()
    checked = 0
    script = ROOT / "examples" / "finetune_ernie.py"
    script_calls = [node for node in ast.walk(ast.parse(script.read_text())) if isinstance(node, ast.Call)]
    for source, found in [(s, calls(s)) for s in SOURCES] + [(script, script_calls)]:
        for call in found:
            name = call_name(call)
            key = "save_pretrained_merged" if name.endswith(".save_pretrained_merged") else name
            for accepted in upstream.get(key, []):
                checked += 1
                for keyword in call.keywords:
                    if keyword.arg is not None:
                        assert keyword.arg in accepted, f"{source.name}: {name}({keyword.arg}=...) no longer exists"
    assert checked >= 5, "no library calls were found to check"
