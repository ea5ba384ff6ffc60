"""Serving a saved model over an OpenAI-compatible API with `transformers serve`: start it in the background
on 127.0.0.1, wait until /health answers, stop it; and when it cannot start, say why within seconds.

The requests themselves (the `openai` client's `chat.completions.create`) stay in the notebook.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SERVING_PACKAGES = ("fastapi", "uvicorn", "starlette", "openai")  # what transformers[serving] adds
INSTALL_HINT = ('pip install "transformers[serving]==5.17.0" (the course\'s requirements.txt pins it and '
                "its extras; on Colab rerun the install cell)")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


class ServerError(RuntimeError):
    """The server did not start; the message names the cause and what to do about it."""


@dataclass
class Server:
    """A running `transformers serve`; `stop()` (or leaving a `with` block) ends it and its process group."""

    process: subprocess.Popen
    model: str  # the name requests must send: the folder exactly as the server was given it
    host: str
    port: int
    command: list[str]
    log_path: Path
    startup_s: float = 0.0  # from launch until /health answered
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM to the whole process group (uvicorn shuts down cleanly), SIGKILL if it lingers."""
        if not self._stopped:
            self._stopped = True
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        return self.process.wait(timeout)  # raises if even SIGKILL did not end it

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __str__(self) -> str:
        state = f"pid {self.process.pid}, /health after {self.startup_s:.1f} s" if self.running() else \
            f"stopped, exit code {self.process.returncode}"
        return f"transformers {' '.join(self.command[3:])}\n  serving {self.base_url} ({state}); log: {self.log_path}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    # SO_REUSEADDR as uvicorn sets it: a port left in TIME_WAIT by a stopped server counts as free.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServerError(f"port {port} on {host} is already in use ({error.strerror}): another server is "
                              "listening there. Stop it, or leave port=None to pick a free port.") from None


def check_serving_extras() -> None:
    """transformers serve imports these at start; a missing one would only show up in its log."""
    import importlib

    for name in SERVING_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ServerError(f"transformers serve needs {name}, which cannot be imported here ({error}). "
                              f"Install the serving extras: {INSTALL_HINT}.") from None


def check_model_folder(folder: Path) -> None:
    """A complete saved model: config.json, all weight files whole, a tokenizer. Names the first thing missing."""
    if not folder.is_dir():
        raise ServerError(f"{folder} does not exist (or is not a folder): save the merged model there first "
                          "(save_pretrained_merged), or pass the folder it was saved to.")
    if not (folder / "config.json").exists():
        adapter = (folder / "adapter_config.json").exists()
        raise ServerError(f"{folder} has no config.json: " + (
            "it is a LoRA adapter, and transformers serve loads only full models. Merge it first "
            "(save_pretrained_merged with save_method='merged_16bit')." if adapter else
            "it is not a complete saved model (a save that stopped halfway, or the wrong folder). Save it again."))
    try:
        json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise ServerError(f"{folder / 'config.json'} is not valid JSON ({error}): the save did not finish. "
                          "Save the model again.") from None
    weights = [name for name in WEIGHT_FILES if (folder / name).exists()]
    if not weights:
        raise ServerError(f"{folder} has a config.json but no weights (none of {', '.join(WEIGHT_FILES)}): the save "
                          "did not finish, or only the config was copied. Save the model again.")
    shards = [folder / weights[0]]
    if weights[0].endswith(".index.json"):
        shards = [folder / name for name in sorted(set(json.loads(shards[0].read_text())["weight_map"].values()))]
    for shard in shards:
        if not shard.exists():
            raise ServerError(f"{shard.name} is listed in {weights[0]} but missing from {folder}: the save did not "
                              "finish. Save the model again.")
        if shard.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(shard, "pt"):
                    pass
            except Exception as error:
                raise ServerError(f"{shard} is damaged or cut short ({error}): the save did not finish. "
                                  "Save the model again.") from None
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ServerError(f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): pass the tokenizer to "
                          "save_pretrained_merged(folder, tokenizer, ...), or tokenizer.save_pretrained(folder).")


def diagnose(log: str, host: str, port: int) -> str | None:
    """The cause, when the log of a server that exited names a known one; else its last error line."""
    if "address already in use" in log.lower():
        return f"port {port} on {host} was taken by another program as the server started: start it again."
    missing = re.search(r"No module named '([\w.]+)'|Missing dependencies for serving", log)
    if missing:
        return f"transformers serve could not import {missing.group(1) or 'its serving extras'}: {INSTALL_HINT}."
    if "OutOfMemoryError" in log or "out of memory" in log:
        return "the model did not fit in memory: free the GPU (del the other models, restart the runtime) first."
    errors = re.findall(r"^(?:\w+\.)*\w*(?:Error|Exception): .+$", log, re.M)
    return f"it ended with {errors[-1]}" if errors else None


def start_server(folder, port: int | None = None, host: str = "127.0.0.1", device: str = "cpu",
                 dtype="auto", timeout: float = 180) -> Server:
    """Run `transformers serve folder` in the background and return once /health answers.

    `dtype` ("auto", "float32", a torch dtype...) and `device` ("cpu", "cuda"...) are passed on: serve in the
    precision the in-process model runs in, or greedy answers can differ. Raises ServerError naming the cause
    (folder, port, missing packages, or the server's own last log lines), and leaves no process behind.
    """
    folder = Path(folder).resolve()
    check_model_folder(folder)
    check_serving_extras()
    port = port or free_port(host)
    check_port_free(host, port)
    dtype = str(dtype).removeprefix("torch.")
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder), "--device", device,
               "--dtype", dtype, "--host", host, "--port", str(port)]
    log_path = Path(tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")[1])
    # The folder is local: no Hub lookups, and no check of PyPI for a newer transformers.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)  # its own process group, stopped as one
    server = Server(process, str(folder), host, port, command, log_path)
    atexit.register(server.stop)  # a notebook that ends without stopping it leaves nothing behind
    try:
        while not _healthy(host, port):
            if process.poll() is not None:
                log_text = log_path.read_text(errors="replace")
                cause = diagnose(log_text, host, port) or "see the last lines of its log below"
                raise ServerError(f"transformers serve exited with code {process.returncode} before /health "
                                  f"answered: {cause}\n--- {log_path} ---\n{server.log_tail()}")
            if time.perf_counter() - start > timeout:
                raise ServerError(f"transformers serve did not answer /health within {timeout:.0f} s (a large model "
                                  f"on a slow machine? raise timeout=)\n--- {log_path} ---\n{server.log_tail()}")
            time.sleep(0.25)
    except BaseException:
        server.stop()
        raise
    server.startup_s = time.perf_counter() - start
    return server


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP(S)_PROXY


def _healthy(host: str, port: int) -> bool:
    try:
        with _DIRECT.open(f"http://{host}:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:  # refused while it loads the model; URLError and timeouts are OSErrors
        return False
