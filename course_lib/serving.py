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

from course_lib.language import tr

SERVING_PACKAGES = ("fastapi", "uvicorn", "starlette", "openai")  # what transformers[serving] adds
def install_hint() -> str:
    return tr('pip install "transformers[serving]==5.17.0" (the course\'s requirements.txt pins it and '
              "its extras; on Colab rerun the install cell)",
              'pip install "transformers[serving]==5.17.0"（课程的 requirements.txt 固定了它及其附加依赖的版本；'
              "在 Colab 上请重新运行安装单元格）")

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
        state = tr(f"pid {self.process.pid}, /health after {self.startup_s:.1f} s",
                   f"pid {self.process.pid}，{self.startup_s:.1f} 秒后 /health 应答") if self.running() else \
            tr(f"stopped, exit code {self.process.returncode}", f"已停止，退出码 {self.process.returncode}")
        return f"transformers {' '.join(self.command[3:])}\n  " + tr(
            f"serving {self.base_url} ({state}); log: {self.log_path}",
            f"服务地址 {self.base_url}（{state}）；日志：{self.log_path}")


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
            raise ServerError(tr(f"port {port} on {host} is already in use ({error.strerror}): another server is "
                                 "listening there. Stop it, or leave port=None to pick a free port.",
                                 f"{host} 上的端口 {port} 已被占用（{error.strerror}）：另一个服务器正在那里监听。"
                                 "请停止它，或者保留 port=None，自动选一个空闲端口。")) from None


def check_serving_extras() -> None:
    """transformers serve imports these at start; a missing one would only show up in its log."""
    import importlib

    for name in SERVING_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ServerError(tr(f"transformers serve needs {name}, which cannot be imported here ({error}). "
                                 f"Install the serving extras: {install_hint()}.",
                                 f"transformers serve 需要 {name}，但这里无法导入它（{error}）。"
                                 f"请安装服务所需的附加依赖：{install_hint()}。")) from None


def check_model_folder(folder: Path) -> None:
    """A complete saved model: config.json, all weight files whole, a tokenizer. Names the first thing missing."""
    if not folder.is_dir():
        raise ServerError(tr(f"{folder} does not exist (or is not a folder): save the merged model there first "
                             "(save_pretrained_merged), or pass the folder it was saved to.",
                             f"{folder} 不存在（或不是文件夹）：先把合并后的模型保存到那里（save_pretrained_merged），"
                             "或者传入它实际保存的文件夹。"))
    if not (folder / "config.json").exists():
        adapter = (folder / "adapter_config.json").exists()
        raise ServerError(tr(f"{folder} has no config.json: ", f"{folder} 里没有 config.json：") + (
            tr("it is a LoRA adapter, and transformers serve loads only full models. Merge it first "
               "(save_pretrained_merged with save_method='merged_16bit').",
               "它是一个 LoRA 适配器，而 transformers serve 只加载完整的模型。请先合并"
               "（save_pretrained_merged，save_method='merged_16bit'）。") if adapter else
            tr("it is not a complete saved model (a save that stopped halfway, or the wrong folder). Save it again.",
               "它不是一个完整保存的模型（保存中途停止了，或者文件夹不对）。请重新保存。")))
    try:
        json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise ServerError(tr(f"{folder / 'config.json'} is not valid JSON ({error}): the save did not finish. "
                             "Save the model again.",
                             f"{folder / 'config.json'} 不是有效的 JSON（{error}）：保存没有完成。请重新保存模型。")) from None
    weights = [name for name in WEIGHT_FILES if (folder / name).exists()]
    if not weights:
        raise ServerError(tr(f"{folder} has a config.json but no weights (none of {', '.join(WEIGHT_FILES)}): the save "
                             "did not finish, or only the config was copied. Save the model again.",
                             f"{folder} 里有 config.json，但没有权重（{', '.join(WEIGHT_FILES)} 一个都没有）：保存没有"
                             "完成，或者只复制了配置文件。请重新保存模型。"))
    shards = [folder / weights[0]]
    if weights[0].endswith(".index.json"):
        shards = [folder / name for name in sorted(set(json.loads(shards[0].read_text())["weight_map"].values()))]
    for shard in shards:
        if not shard.exists():
            raise ServerError(tr(f"{shard.name} is listed in {weights[0]} but missing from {folder}: the save did not "
                                 "finish. Save the model again.",
                                 f"{shard.name} 列在 {weights[0]} 里，但 {folder} 中没有它：保存没有完成。请重新保存模型。"))
        if shard.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(shard, "pt"):
                    pass
            except Exception as error:
                raise ServerError(tr(f"{shard} is damaged or cut short ({error}): the save did not finish. "
                                     "Save the model again.",
                                     f"{shard} 已损坏或不完整（{error}）：保存没有完成。请重新保存模型。")) from None
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ServerError(tr(f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): pass the tokenizer to "
                             "save_pretrained_merged(folder, tokenizer, ...), or tokenizer.save_pretrained(folder).",
                             f"{folder} 里没有分词器（{', '.join(TOKENIZER_FILES)} 一个都没有）：把分词器传给 "
                             "save_pretrained_merged(folder, tokenizer, ...)，或者运行 tokenizer.save_pretrained(folder)。"))


def diagnose(log: str, host: str, port: int) -> str | None:
    """The cause, when the log of a server that exited names a known one; else its last error line."""
    if "address already in use" in log.lower():
        return tr(f"port {port} on {host} was taken by another program as the server started: start it again.",
                  f"服务器启动时，{host} 上的端口 {port} 被另一个程序占用了：请再启动一次。")
    missing = re.search(r"No module named '([\w.]+)'|Missing dependencies for serving", log)
    if missing:
        what = missing.group(1) or tr("its serving extras", "服务所需的附加依赖")
        return tr(f"transformers serve could not import {what}: {install_hint()}.",
                  f"transformers serve 无法导入 {what}：{install_hint()}。")
    if "OutOfMemoryError" in log or "out of memory" in log:
        return tr("the model did not fit in memory: free the GPU (del the other models, restart the runtime) first.",
                  "模型放不进显存（或内存）：请先释放 GPU（del 其他模型，或重启运行时）。")
    errors = re.findall(r"^(?:\w+\.)*\w*(?:Error|Exception): .+$", log, re.M)
    return tr(f"it ended with {errors[-1]}", f"它以 {errors[-1]} 结束") if errors else None


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
                cause = diagnose(log_text, host, port) or tr("see the last lines of its log below",
                                                              "请看下面日志的最后几行")
                raise ServerError(tr(f"transformers serve exited with code {process.returncode} before /health "
                                     f"answered: {cause}",
                                     f"transformers serve 在 /health 应答之前就退出了，退出码 {process.returncode}："
                                     f"{cause}") + f"\n--- {log_path} ---\n{server.log_tail()}")
            if time.perf_counter() - start > timeout:
                raise ServerError(tr(f"transformers serve did not answer /health within {timeout:.0f} s (a large model "
                                     f"on a slow machine? raise timeout=)",
                                     f"transformers serve 在 {timeout:.0f} 秒内没有应答 /health（在慢机器上加载大模型？"
                                     f"请调大 timeout=）") + f"\n--- {log_path} ---\n{server.log_tail()}")
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
