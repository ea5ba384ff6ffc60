"""The Ollama Modelfile: its TEMPLATE, run by Go's own text/template (Ollama's template language), renders every
conversation exactly as ERNIE's official template does; its stops and sampling defaults are the model's."""

import json
import shutil
import subprocess

import pytest

from course_lib import export
from course_lib.chat_format import saving_format
from course_lib.ernie import OFFICIAL_CHAT_TEMPLATE
from course_lib.tiny_ernie import make_tiny_ernie

# Reads {"template": ..., "conversations": [[{"role", "content"}...]...]} and prints one JSON list of renderings,
# each executed with the data Ollama gives a template that ranges over .Messages.
RENDER_GO = """package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func main() {
	var input struct {
		Template      string      `json:"template"`
		Conversations [][]Message `json:"conversations"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("modelfile").Parse(input.Template))
	rendered := []string{}
	for _, messages := range input.Conversations {
		var out strings.Builder
		if err := tmpl.Execute(&out, map[string]any{"Messages": messages}); err != nil {
			panic(err)
		}
		rendered = append(rendered, out.String())
	}
	json.NewEncoder(os.Stdout).Encode(rendered)
}
"""

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5.\nThe answer is 5."},
     {"role": "user", "content": "And 2 + 4?"}],
    [{"role": "user", "content": "Lin 买了 3 个苹果 {{ .Content }} & <b>\\n"}, {"role": "assistant", "content": "\n  "},
     {"role": "user", "content": ""}],
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A folder with the generation_config.json a course save writes."""
    folder = tmp_path_factory.mktemp("saved")
    model, tokenizer = make_tiny_ernie("tiny", seed=0, tokenizer_folder=folder)
    with saving_format(model, tokenizer):
        model.generation_config.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def modelfile_text(model_dir):
    return export.write_modelfile(model_dir / "model-q8_0.gguf", model_dir).read_text()


def template_of(modelfile_text: str) -> str:
    start = modelfile_text.index('TEMPLATE """') + len('TEMPLATE """')
    return modelfile_text[start:modelfile_text.index('"""', start)]


def render_with_go(template: str, conversations, tmp_path) -> list[str]:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to render the Modelfile's template with Go's own text/template: install it "
                    "(Debian/Ubuntu: apt-get install -y golang-go; .ci/run does this) and run the test again")
    (tmp_path / "render.go").write_text(RENDER_GO)
    result = subprocess.run([go, "run", "render.go"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            input=json.dumps({"template": template, "conversations": conversations}))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_template_renders_as_ernies_official_template(modelfile_text, model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    official = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True,
                                              chat_template=OFFICIAL_CHAT_TEMPLATE) for c in CONVERSATIONS]
    assert render_with_go(template_of(modelfile_text), CONVERSATIONS, tmp_path) == official


def test_modelfile_stops_and_samples_as_the_model_does(modelfile_text):
    lines = modelfile_text.splitlines()
    assert lines[0] == "FROM ./model-q8_0.gguf"  # relative: the Modelfile lives beside the GGUF
    assert 'PARAMETER stop "<|end_of_sentence|>"' in lines and 'PARAMETER stop "</s>"' in lines
    assert "PARAMETER temperature 0.8" in lines and "PARAMETER top_p 0.8" in lines  # the generation_config's


def test_greedy_generation_config_gives_temperature_zero(model_dir, tmp_path):
    config = json.loads((model_dir / "generation_config.json").read_text())
    (tmp_path / "generation_config.json").write_text(json.dumps(dict(config, do_sample=False)))
    lines = export.modelfile(tmp_path / "x.gguf", tmp_path).splitlines()
    assert "PARAMETER temperature 0" in lines and not any("top_p" in line for line in lines)
