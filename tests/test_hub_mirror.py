"""The Hub-mirror path, for real: the course's Hub mirror (course_lib/hub_mirror.py, the server a teacher runs for a
classroom) on 127.0.0.1 serves the stand-in as baidu/ERNIE-4.5-0.3B-PT, and a fresh Python with HF_ENDPOINT pointing
at it runs resolve_model in auto mode and the real AutoModelForCausalLM / AutoTokenizer.from_pretrained.

The loading runs in a subprocess: huggingface_hub reads HF_ENDPOINT when it is imported, and this process
imported it long ago (conftest imports unsloth); conftest's HF_HUB_OFFLINE=1 is left out of its environment.
"""

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from course_lib.ernie import DEFAULT_MODEL
from course_lib.tiny_ernie import ensure_tiny_ernie
from processes import free_port, stop_group, wait_for_server

ROOT = Path(__file__).resolve().parents[1]


class Mirror:
    """`python -m course_lib.hub_mirror` serving `folder` as `repo_id` on 127.0.0.1, in its own process group."""

    def __init__(self, repo_id: str, folder: Path, log: Path):
        self.port, self.log = free_port(), log
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_file = log.open("w")
        command = [sys.executable, "-m", "course_lib.hub_mirror", "--serve", f"{repo_id}={folder}",
                   "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                        stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_up(self, seconds: float = 60) -> None:
        def answers():
            urllib.request.urlopen(f"{self.endpoint}/api/models/{DEFAULT_MODEL}/revision/main", timeout=5).close()

        wait_for_server(self.process, answers, self.log, "the mirror", seconds, pause=0.2)

    def stop(self) -> None:
        stop_group(self.process, self.log_file)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The mirror serving the stand-in as DEFAULT_MODEL; stopped at the end of the module, even when a test fails."""
    standin = ensure_tiny_ernie("tiny")
    server = Mirror(DEFAULT_MODEL, standin, tmp_path_factory.mktemp("hub-mirror") / "mirror.log")
    try:
        server.wait_until_up()
        yield server, standin
    finally:
        server.stop()


# In a fresh interpreter, as in a notebook: HF_ENDPOINT set before the first import, then the course's cells.
LOAD = textwrap.dedent("""
    import json, sys
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from course_lib.models import resolve_model

    choice = resolve_model(sys.argv[1], mode="auto")
    model = AutoModelForCausalLM.from_pretrained(choice.name_or_path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(choice.name_or_path)
    expected = load_file(sys.argv[2] + "/model.safetensors")
    loaded = model.state_dict()
    print(json.dumps({
        "source": choice.source, "name_or_path": choice.name_or_path, "banner": choice.banner(),
        "same_weights": all(torch.equal(loaded[name].float(), tensor.float()) for name, tensor in expected.items()),
        "tensors": len(expected),
        "tokens": tokenizer("User: What is 2 + 3?")["input_ids"],
        "from_cache": model.name_or_path,
    }))
""")


def load_through(endpoint: str, standin: Path, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}  # no HF_HUB_OFFLINE
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(cache), PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1",
               ERNIE_COURSE_MODEL="auto")
    return subprocess.run([sys.executable, "-c", LOAD, DEFAULT_MODEL, str(standin)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_from_pretrained_loads_the_stand_in_through_the_mirror(mirror, tmp_path):
    server, standin = mirror
    result = load_through(server.endpoint, standin, tmp_path / "hf-home")
    assert result.returncode == 0, result.stderr[-3000:] + server.log.read_text()[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["source"] == "mirror" and seen["name_or_path"] == DEFAULT_MODEL  # the Hub id, not a local folder
    assert server.endpoint in seen["banner"] and "MIRROR" in seen["banner"], seen["banner"]
    assert seen["same_weights"] and seen["tensors"] > 0
    from transformers import AutoTokenizer

    assert seen["tokens"] == AutoTokenizer.from_pretrained(standin)("User: What is 2 + 3?")["input_ids"]
    # The files came over HTTP into this run's own Hugging Face cache.
    cached = tmp_path / "hf-home" / "hub" / f"models--{DEFAULT_MODEL.replace('/', '--')}"
    assert list(cached.glob("snapshots/*/model.safetensors")), f"nothing downloaded into {cached}"


def test_a_mirror_that_does_not_answer_falls_back_and_says_how(mirror, tmp_path):
    """The planted fault: HF_ENDPOINT names a port where nothing listens. auto falls back to the stand-in and its
    banner names the mirror that failed and the two ways to the real model."""
    _, standin = mirror
    dead = f"http://127.0.0.1:{free_port()}"
    result = load_through(dead, standin, tmp_path / "hf-home")
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["source"] == "tiny" and seen["name_or_path"] == str(standin)
    assert dead in seen["banner"] and "OFFLINE MODEL" in seen["banner"]
    assert "HF_ENDPOINT" in seen["banner"] and "modelscope" in seen["banner"]
