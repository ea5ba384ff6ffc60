"""What machine is this? GPU, versions, Unsloth's backend, the Hub, and the precision to train in.

Helpers return data; the notebooks print it. Every decision comes back with its reason.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass

from course_lib.ernie import DEFAULT_MODEL
from course_lib.language import tr
from course_lib.platforms import detect as detect_platform

LIBRARIES = ("unsloth", "unsloth_zoo", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes")
PRECISION_ENV = "ERNIE_COURSE_PRECISION"  # fp16 / bf16 / fp32: e.g. train on an A100 as a T4 would


@dataclass(frozen=True)
class Precision:
    """The dtype to load and train in, and why."""

    name: str  # "bf16", "fp16" or "fp32"
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def fp16(self) -> bool:
        return self.name == "fp16"

    @property
    def torch_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def choose_precision(capability: tuple[int, int] | None, force: str | None = None) -> Precision:
    """bf16 needs compute capability 8.0 (Ampere); a T4 (7.5) trains in fp16; a CPU in fp32.

    `torch.cuda.is_bf16_supported()` is not used: it says True on a T4, where bf16 is only emulated.
    `force` ("fp16", "bf16" or "fp32"; default: $ERNIE_COURSE_PRECISION) overrides the choice where the
    hardware allows it, e.g. fp16 on an A100 to train as a T4 would.
    """
    source = tr("the notebook's settings", "notebook 的设置")
    if force is None and os.environ.get(PRECISION_ENV):
        force, source = os.environ[PRECISION_ENV].strip().lower(), f"{PRECISION_ENV}={os.environ[PRECISION_ENV]}"
    if force is not None:
        if force not in ("fp16", "bf16", "fp32"):
            raise ValueError(tr(f"precision {force!r} is not one of fp16, bf16, fp32",
                                f"精度 {force!r} 不是 fp16、bf16、fp32 之一"))
        if capability is None and force != "fp32":
            raise ValueError(tr(f"{force} was asked for, but there is no GPU: on a CPU the course trains in fp32",
                                f"要求使用 {force}，但这里没有 GPU：在 CPU 上课程用 fp32 训练"))
        if force == "bf16" and capability[0] < 8:
            raise ValueError(tr(f"bf16 was asked for, but this GPU is compute capability {capability[0]}.{capability[1]}"
                                " and bf16 needs 8.0 or more: use fp16 (or None to let the course choose)",
                                f"要求使用 bf16，但这块 GPU 的计算能力是 {capability[0]}.{capability[1]}，"
                                "bf16 需要 8.0 或以上：请用 fp16（或设为 None，让课程来选）"))
        return Precision(force, tr(f"forced to {force} by {source}", f"由 {source} 强制设为 {force}"))
    if capability is None:
        return Precision("fp32", tr("no GPU: the CPU path trains in fp32 (mixed precision on a CPU is slow or emulated)",
                                    "没有 GPU：CPU 路径用 fp32 训练（CPU 上的混合精度很慢，或只是模拟）"))
    major, minor = capability
    if major >= 8:
        return Precision("bf16", tr(f"compute capability {major}.{minor} >= 8.0 has native bf16 (no loss scaling needed)",
                                    f"计算能力 {major}.{minor} >= 8.0，原生支持 bf16（不需要损失缩放）"))
    return Precision("fp16", tr(
        f"compute capability {major}.{minor} < 8.0 has no native bf16 (a T4 is 7.5), so fp16 with loss scaling",
        f"计算能力 {major}.{minor} < 8.0，没有原生 bf16（T4 是 7.5），所以用 fp16 加损失缩放"))


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]
    memory_gib: float


def gpu() -> Gpu | None:
    """The first CUDA GPU, or None on a CPU-only machine."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return Gpu(props.name, (props.major, props.minor), props.total_memory / 2**30)


def in_colab() -> bool:
    return "google.colab" in sys.modules


DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
HUB_ENDPOINT_ENV = "HF_ENDPOINT"  # huggingface_hub's variable for a mirror, e.g. https://hf-mirror.com in China


def hub_endpoint() -> str:
    """The address Hub downloads go to. huggingface_hub reads HF_ENDPOINT once, when it is imported (its
    `constants.ENDPOINT`), so once it is imported its value wins over a later change of the variable."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and getattr(constants, "ENDPOINT", None):
        return constants.ENDPOINT.rstrip("/")
    return os.environ.get(HUB_ENDPOINT_ENV, DEFAULT_HUB_ENDPOINT).rstrip("/") or DEFAULT_HUB_ENDPOINT


def is_mirror(endpoint: str) -> bool:
    """True unless `endpoint` is the Hugging Face Hub itself."""
    return endpoint.rstrip("/") not in (DEFAULT_HUB_ENDPOINT, "https://hf.co")


def endpoint_set_too_late() -> str | None:
    """HF_ENDPOINT's value when it differs from what huggingface_hub read at import (set or changed after
    `import unsloth` / `transformers`), so that downloads ignore it until the kernel restarts; else None."""
    wanted = os.environ.get(HUB_ENDPOINT_ENV, DEFAULT_HUB_ENDPOINT).rstrip("/") or DEFAULT_HUB_ENDPOINT
    return wanted if wanted != hub_endpoint() else None


def hub_url(model_id: str = DEFAULT_MODEL) -> str:
    """`model_id`'s API page at its main revision on the Hub, or on the mirror HF_ENDPOINT names (e.g.
    hf-mirror.com in China): the address huggingface_hub downloads from (`hub_endpoint`). The revision form is
    what `huggingface_hub.model_info(revision=...)` asks; olah 0.5.4 serving offline answers only that form."""
    return f"{hub_endpoint()}/api/models/{model_id}/revision/main"


def hub_reachable(model_id: str = DEFAULT_MODEL, timeout: float = 3.0) -> bool:
    """True when the Hugging Face Hub (or its HF_ENDPOINT mirror) answers for `model_id` within `timeout`
    seconds. HF_HUB_OFFLINE=1 means no."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    import urllib.request

    try:
        # GET, the method huggingface_hub's model_info uses, so any Hub or mirror that serves downloads answers it
        # (a few kB of JSON); HEAD on an API route is not something every mirror implements.
        with urllib.request.urlopen(urllib.request.Request(hub_url(model_id), method="GET"), timeout=timeout):
            return True
    except Exception:  # refused, timed out, DNS failure, proxy error: all mean "not reachable from here"
        return False


def library_versions() -> dict[str, str]:
    """Installed versions of the course's libraries ("missing" where not installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def unsloth_backend() -> str:
    """Which device Unsloth chose at import ("cuda", "cpu", ...), or why we cannot tell yet."""
    module = sys.modules.get("unsloth")
    if module is None:
        return "unknown: unsloth is not imported yet"
    return getattr(module, "DEVICE_TYPE", "unknown")


def environment_report(check_hub: bool = True) -> dict[str, str]:
    """One row per fact, in the order a learner should read them."""
    import torch

    card = gpu()
    precision = choose_precision(card.capability if card else None)
    rows = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": tr(f"{card.name} (compute capability {card.capability[0]}.{card.capability[1]}, "
                  f"{card.memory_gib:.1f} GiB)", f"{card.name}（计算能力 {card.capability[0]}.{card.capability[1]}，"
                  f"显存 {card.memory_gib:.1f} GiB）") if card else tr("none (CPU only)", "无（只有 CPU）"),
        **library_versions(),
        "unsloth backend": unsloth_backend(),
        "platform": detect_platform().shown(),
    }
    if check_hub:
        rows["hugging face hub"] = (tr("reachable", "可以访问") if hub_reachable() else
                                    tr("NOT reachable (offline fallbacks will be used)", "无法访问（将改用离线替身模型和课程自带的数据）"))
    rows["precision"] = f"{precision.name}: {precision.reason}"
    return rows


# The report's row names in Chinese (its keys stay English: code reads rows["precision"]); library names stay.
ROW_NAMES_ZH = {"python": "Python", "torch": "torch", "gpu": "GPU", "unsloth backend": "Unsloth 后端", "platform": "平台",
                "hugging face hub": "Hugging Face Hub", "precision": "精度"}


def display_width(text: str) -> int:
    """Columns `text` takes in a monospaced font: Chinese characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def format_report(rows: dict[str, str]) -> str:
    names = {key: tr(key, ROW_NAMES_ZH.get(key, key)) for key in rows}
    width = max(map(display_width, names.values()))
    return "\n".join(f"{names[key]}{' ' * (width - display_width(names[key]))}  {value}" for key, value in rows.items())


@dataclass(frozen=True)
class Memory:
    device: str
    used_gib: float  # GPU: reserved by PyTorch; CPU: this process's resident memory
    peak_gib: float | None
    total_gib: float

    def __str__(self) -> str:
        peak = tr(f", peak {self.peak_gib:.2f} GiB", f"，峰值 {self.peak_gib:.2f} GiB") if self.peak_gib is not None else ""
        return tr(f"{self.device}: {self.used_gib:.2f} GiB used of {self.total_gib:.1f} GiB{peak}",
                  f"{self.device}：已用 {self.used_gib:.2f} GiB，共 {self.total_gib:.1f} GiB{peak}")


def memory() -> Memory:
    """Memory in use now: the GPU's as PyTorch sees it, or this process's RAM on a CPU-only machine."""
    import psutil
    import torch

    if torch.cuda.is_available():
        return Memory(torch.cuda.get_device_name(0), torch.cuda.memory_reserved() / 2**30,
                      torch.cuda.max_memory_reserved() / 2**30, torch.cuda.get_device_properties(0).total_memory / 2**30)
    return Memory(tr("CPU RAM (this process)", "CPU 内存（本进程）"), psutil.Process().memory_info().rss / 2**30, None,
                  psutil.virtual_memory().total / 2**30)
