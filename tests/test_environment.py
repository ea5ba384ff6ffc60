import os
import subprocess
import sys

import pytest

from course_lib import environment
from course_lib.environment import choose_precision
from course_lib.language import LANGUAGE_ENV


@pytest.mark.parametrize(
    "capability, expected",
    [(None, "fp32"), ((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((8, 9), "bf16"), ((9, 0), "bf16")],
)
def test_precision_rule(capability, expected):
    precision = choose_precision(capability)
    assert precision.name == expected
    assert precision.bf16 == (expected == "bf16") and precision.fp16 == (expected == "fp16")
    assert precision.reason  # every decision says why


def test_precision_reason_names_the_t4_capability():
    assert "7.5" in choose_precision((7, 5)).reason


def test_precision_dtype():
    import torch

    assert choose_precision(None).torch_dtype is torch.float32
    assert choose_precision((7, 5)).torch_dtype is torch.float16
    assert choose_precision((8, 0)).torch_dtype is torch.bfloat16


def test_hub_offline_flag_is_honoured(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert environment.hub_reachable() is False


def test_report_on_this_machine():
    rows = environment.environment_report(check_hub=False)
    assert rows["gpu"] == "none (CPU only)"  # CI and our machines have no GPU
    assert rows["precision"].startswith("fp32")
    assert rows["unsloth backend"] == "cpu"  # conftest imported unsloth, which chose its CPU backend
    for name in environment.LIBRARIES:
        assert rows[name] != "missing", name
    assert "precision" in environment.format_report(rows)


def test_forced_precision():
    assert choose_precision((9, 0), force="fp16").name == "fp16"  # an H100 training as a T4 would
    with pytest.raises(ValueError, match="7.5"):
        choose_precision((7, 5), force="bf16")
    with pytest.raises(ValueError, match="no GPU"):
        choose_precision(None, force="fp16")
    with pytest.raises(ValueError, match="fp8"):
        choose_precision((9, 0), force="fp8")


def test_memory_on_a_cpu_machine():
    before = environment.memory()
    block = b"x" * (300 * 2**20)  # 300 MiB, every page written
    after = environment.memory()
    assert before.device.startswith("CPU") and after.peak_gib is None
    assert after.used_gib - before.used_gib > 0.25, (before, after)
    assert "GiB used of" in str(after)
    del block


def test_precision_forced_from_the_environment(monkeypatch):
    monkeypatch.setenv(environment.PRECISION_ENV, "fp16")
    precision = choose_precision((9, 0))
    assert precision.name == "fp16" and "ERNIE_COURSE_PRECISION=fp16" in precision.reason
    with pytest.raises(ValueError, match="no GPU"):
        choose_precision(None)  # a CPU cannot honour it, and says so


def test_the_hub_check_follows_a_mirror_set_before_the_import():
    """In a fresh Python, as in a notebook whose first cell sets HF_ENDPOINT: huggingface_hub reads it at import,
    and the check asks the address huggingface_hub will download from."""
    code = ("import huggingface_hub, course_lib.environment as e; "
            "print(e.hub_url(), e.is_mirror(e.hub_endpoint()), e.endpoint_set_too_late())")
    env = {**os.environ, "HF_ENDPOINT": "https://hf-mirror.com/"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["https://hf-mirror.com/api/models/baidu/ERNIE-4.5-0.3B-PT/revision/main",
                                     "True", "None"]


def test_a_mirror_set_after_the_import_is_reported_not_followed(monkeypatch):
    """This process imported huggingface_hub (conftest imports unsloth) with no HF_ENDPOINT: setting it now does not
    move downloads, so the check keeps asking the Hub and says the variable came too late."""
    import huggingface_hub.constants

    assert huggingface_hub.constants.ENDPOINT == "https://huggingface.co"  # nothing set HF_ENDPOINT before the tests
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert environment.endpoint_set_too_late() is None and not environment.is_mirror(environment.hub_endpoint())
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com/")
    assert environment.hub_url() == "https://huggingface.co/api/models/baidu/ERNIE-4.5-0.3B-PT/revision/main"
    assert environment.endpoint_set_too_late() == "https://hf-mirror.com"


def test_the_report_speaks_chinese_in_the_chinese_edition(monkeypatch):
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    rows = environment.environment_report(check_hub=False)
    assert rows["gpu"] == "无（只有 CPU）" and rows["precision"].startswith("fp32: 没有 GPU：CPU 路径用 fp32 训练")
    lines = environment.format_report(rows).splitlines()
    assert "Unsloth 后端  cpu" in lines and not any("unsloth backend" in line for line in lines)
    starts = {environment.display_width(line[:line.index(value)]) for line, value in zip(lines, rows.values())}
    assert len(starts) == 1, "the values start in one column, Chinese row names counted two columns a character"
    assert choose_precision((7, 5)).reason.startswith("计算能力 7.5 < 8.0")
    with pytest.raises(ValueError, match="计算能力是 7.5"):
        choose_precision((7, 5), force="bf16")
    assert "已用" in str(environment.memory()) and "GiB used" not in str(environment.memory())


def test_the_report_names_the_platform_it_found(monkeypatch):
    from course_lib import platforms

    assert environment.environment_report(check_hub=False)["platform"] == platforms.detect().name
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert environment.environment_report(check_hub=False)["platform"] == "Kaggle"
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    assert "平台" in environment.format_report(environment.environment_report(check_hub=False))
