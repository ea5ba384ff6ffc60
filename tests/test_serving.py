"""Serving the merged model: `transformers serve` run for real on a tiny ERNIE-4.5 that has learned to answer
and end its turn; its greedy answers compared with in-process `generate`; and every way it can fail to start.

Every server binds 127.0.0.1 on a free port, is waited for, and is stopped by a fixture or a `with` block
even when the test fails.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

from course_lib.ernie import END_OF_TURN, IGNORE_INDEX
from course_lib.evaluation import stop_token_ids
from course_lib.serving import ServerError, check_port_free, start_server
from course_lib.tiny_ernie import make_tiny_ernie

# Short turns the model learns by heart, so that it answers them and then writes <|end_of_sentence|>.
TURNS = [("What is 2 plus 3?", "2 + 3 = 5. The answer is 5."),
         ("What is 4 plus 4?", "4 + 4 = 8. The answer is 8."),
         ("Tom has 7 pens and gives away 2. How many are left?", "7 - 2 = 5. The answer is 5."),
         ("A box holds 6 eggs. How many eggs are in 3 boxes?", "6 x 3 = 18. The answer is 18."),
         ("What is 9 minus 4?", "9 - 4 = 5. The answer is 5."),
         ("Sara reads 10 pages a day. How many pages in 2 days?", "10 x 2 = 20. The answer is 20.")]
UNSEEN = "Ben has 5 cars and buys 3 more. How many cars?"  # never trained: an answer the model makes up
MAX_TOKENS = 40  # more than any answer in TURNS needs
CUT = 8  # fewer than any answer in TURNS needs: the answer ends at the limit


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: on a busy machine two threads only wait on each other (10x slower), and
    the servers these tests start inherit OMP_NUM_THREADS. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def turn_model(tmp_path_factory):
    """The tiny ERNIE-4.5 (random weights) trained on TURNS in the chat format, saved as a merged model is,
    with ERNIE-4.5-0.3B-PT's generation_config.json: it samples (temperature 0.8, top_p 0.8) and stops only
    at </s>. Greedy decoding and stopping at the end of the turn are then up to the caller. ~5 s."""
    model, tokenizer = make_tiny_ernie(seed=0)
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                           tokenize=False) for q, a in TURNS]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.generation_config.update(eos_token_id=tokenizer.eos_token_id, do_sample=True, temperature=0.8, top_p=0.8)
    folder = tmp_path_factory.mktemp("serving") / "merged-16bit"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def server(turn_model):
    """One server for the module's requests. Stopping it is checked too: no process left, the port free."""
    with start_server(turn_model[0], dtype="float32") as running:
        assert [p.pid for p in serve_processes(turn_model[0])] == [running.process.pid]
        yield running
    assert not running.running() and not serve_processes(turn_model[0])
    check_port_free("127.0.0.1", running.port)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key="not-needed")


def generate_greedy(model, tokenizer, question, max_new_tokens=MAX_TOKENS):
    """What notebook 5 does in-process: the chat template, greedy, stopping at the end of the turn."""
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                            eos_token_id=stop_token_ids(tokenizer))
    return output[0, inputs["input_ids"].shape[1]:]


def ask(client, server, question, **options):
    """Notebook 5's request: greedy (temperature 0), the same limit, stopping at ERNIE's end of turn."""
    return client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": question}],
                                          **{"temperature": 0, "max_tokens": MAX_TOKENS, "stop": [END_OF_TURN],
                                             **options})


def serve_processes(folder) -> list[psutil.Process]:
    """Live `transformers serve` processes of `folder` (whoever started them)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "serve" in cmdline and str(Path(folder).resolve()) in cmdline:
            found.append(process)
    return found


def test_generate_stops_at_the_end_of_turn_only_when_told(turn_model):
    _, model, tokenizer = turn_model
    question, answer = TURNS[0]
    told = generate_greedy(model, tokenizer, question)
    assert tokenizer.convert_ids_to_tokens(int(told[-1])) == END_OF_TURN
    assert tokenizer.decode(told, skip_special_tokens=True) == answer
    # The saved generation_config stops only at </s>: without eos_token_id the model writes past its turn.
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    untold = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert len(untold) > len(told)


@pytest.mark.parametrize("question, limit", [(TURNS[3][0], MAX_TOKENS), (TURNS[3][0], CUT), (UNSEEN, MAX_TOKENS)],
                         ids=["stops-at-end-of-turn", "cut-at-max-tokens", "made-up-answer"])
def test_server_greedy_answer_equals_in_process_generate(turn_model, server, client, question, limit):
    _, model, tokenizer = turn_model
    local = generate_greedy(model, tokenizer, question, max_new_tokens=limit)
    response = ask(client, server, question, max_tokens=limit)
    assert response.choices[0].message.content == tokenizer.decode(local, skip_special_tokens=True)
    assert response.usage.completion_tokens == len(local)


def test_server_stops_at_the_end_of_turn_though_the_config_lists_only_eos(turn_model, server, client):
    question, answer = TURNS[3]
    response = ask(client, server, question)
    assert response.choices[0].message.content == answer
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens < MAX_TOKENS
    cut = ask(client, server, question, max_tokens=CUT)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == CUT
    assert answer.startswith(cut.choices[0].message.content)


@pytest.mark.parametrize("question", [TURNS[1][0], UNSEEN])
def test_streamed_text_equals_the_plain_answer(server, client, question):
    plain = ask(client, server, question).choices[0].message.content
    chunks = [chunk.choices[0].delta.content for chunk in ask(client, server, question, stream=True) if chunk.choices]
    pieces = [piece for piece in chunks if piece]
    assert len(pieces) > 1  # really streamed, piece by piece
    assert "".join(pieces) == plain


# --- A server that cannot start says why, within seconds, and leaves nothing running ---

def refused(folder, **options) -> str:
    start = time.perf_counter()
    with pytest.raises(ServerError) as error:
        start_server(folder, **options)
    assert time.perf_counter() - start < 5, "the cause was known before anything was started"
    assert not serve_processes(folder)
    return str(error.value)


def test_a_port_in_use_is_named(turn_model, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        message = refused(copy_of(turn_model, tmp_path), port=port)
    assert f"port {port} on 127.0.0.1 is already in use" in message and "port=None" in message


def copy_of(turn_model, tmp_path) -> Path:
    folder = tmp_path / "merged-16bit"
    shutil.copytree(turn_model[0], folder)
    return folder


def test_a_missing_folder_is_named(tmp_path):
    assert "does not exist" in refused(tmp_path / "never-saved")


def test_a_folder_without_config_is_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    (folder / "config.json").unlink()
    assert "has no config.json" in refused(folder)


def test_an_adapter_folder_is_told_to_merge_first(tmp_path):
    (tmp_path / "lora-adapter").mkdir()
    (tmp_path / "lora-adapter" / "adapter_config.json").write_text("{}")
    assert "it is a LoRA adapter" in refused(tmp_path / "lora-adapter")


def test_a_half_written_config_is_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])
    assert "config.json is not valid JSON" in refused(folder)


def test_a_folder_without_weights_is_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    (folder / "model.safetensors").unlink()
    assert "no weights" in refused(folder)


def test_cut_short_weights_are_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "model.safetensors is damaged or cut short" in refused(folder)


def test_a_missing_shard_is_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "model-00002-of-00002.safetensors is listed in model.safetensors.index.json but missing" in refused(folder)


def test_a_folder_without_tokenizer_is_named(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    (folder / "tokenizer.json").unlink()
    assert "has no tokenizer" in refused(folder)


def fastapi_missing(tmp_path) -> Path:
    """A folder that, first on PYTHONPATH, makes `import fastapi` fail as it does when it is not installed."""
    shim = tmp_path / "no-fastapi" / "fastapi"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'fastapi\'", name="fastapi")\n')
    return shim.parent


def test_missing_serving_extras_are_named_before_anything_starts(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    code = textwrap.dedent(f"""
        from course_lib.serving import start_server
        start_server({str(folder)!r})
    """)
    env = dict(os.environ, PYTHONPATH=str(fastapi_missing(tmp_path)))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and time.perf_counter() - start < 30
    assert "ServerError: transformers serve needs fastapi, which cannot be imported here" in result.stderr
    assert 'pip install "transformers[serving]==5.17.0"' in result.stderr
    assert not serve_processes(folder)


def test_a_server_that_fails_on_its_own_imports_is_named_and_gone(turn_model, tmp_path, monkeypatch):
    """This notebook imports fastapi fine, but the server's environment cannot: the cause comes from its log."""
    folder = copy_of(turn_model, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(fastapi_missing(tmp_path)))
    with pytest.raises(ServerError, match=r"exited with code 1 before /health answered: transformers serve could "
                                          r"not import fastapi: pip install"):
        start_server(folder)
    assert not serve_processes(folder)


def test_a_model_that_does_not_load_shows_the_servers_own_words(turn_model, tmp_path):
    folder = copy_of(turn_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 2 * config["hidden_size"]}))
    with pytest.raises(ServerError, match=r"exited with code 1 before /health answered: it ended with "
                                          r"RuntimeError: You set `ignore_mismatched_sizes` to `False`"):
        start_server(folder)
    assert not serve_processes(folder)
