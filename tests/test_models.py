import importlib.util
from pathlib import Path

import pytest

from course_lib import models
from course_lib.ernie import BASE_MODEL, DEFAULT_MODEL, LARGE_BASE_MODEL, LARGE_MODEL, MODELSCOPE_IDS
from course_lib.language import LANGUAGE_ENV
from course_lib.models import resolve_model


def test_offline_auto_falls_back_to_the_tiny_slice(monkeypatch):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)  # HF_HUB_OFFLINE=1 comes from conftest
    choice = resolve_model()
    assert choice.source == "tiny" and choice.offline
    assert (Path(choice.name_or_path) / "config.json").exists()
    assert "HF_HUB_OFFLINE=1" in choice.reason
    banner = choice.banner()
    assert "OFFLINE" in banner and "TINY" in banner
    # ... and it says how to reach the real model: a mirror, set in the notebook's first cell, or ModelScope.
    assert 'os.environ["HF_ENDPOINT"] = "https://hf-mirror.com"' in banner and "Import Unsloth first" in banner
    assert 'os.environ["ERNIE_COURSE_MODEL"] = "modelscope"' in banner and "pip install modelscope" in banner


def test_environment_variable_forces_the_tiny_slice(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "tiny")
    choice = resolve_model()
    assert choice.source == "tiny" and models.MODEL_ENV in choice.reason


def test_environment_variable_forces_the_hub_without_checking(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "hub")
    choice = resolve_model(LARGE_MODEL)
    assert choice == models.ModelChoice(LARGE_MODEL, "hub", f"{models.MODEL_ENV}=hub asked for it")
    assert not choice.offline and "OFFLINE" not in choice.banner()


def test_unknown_mode_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "gpt-5")
    with pytest.raises(ValueError, match="'gpt-5'.*auto, hub, tiny, random-0.3b"):
        resolve_model()


def test_cached_slice_is_reused(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "tiny")
    first = Path(resolve_model().name_or_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert Path(resolve_model(DEFAULT_MODEL).name_or_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt


def test_the_banner_speaks_chinese_in_the_chinese_edition(monkeypatch):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    banner = resolve_model().banner()
    assert "离线模型" in banner and "离线替身模型" in banner and "镜像" in banner and "1 · 先导入 Unsloth" in banner
    assert "OFFLINE MODEL" not in banner


def test_a_mirror_set_too_late_is_named_in_the_reason(monkeypatch):
    """This process imported huggingface_hub with no HF_ENDPOINT (conftest); setting it now moves no download, and
    the reason auto gives for falling back says so."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    reason = models.unreachable_reason(DEFAULT_MODEL)
    assert "HF_ENDPOINT=http://127.0.0.1:9 was set after huggingface_hub was imported" in reason
    assert "restart the kernel" in reason


def test_modelscope_ids_sit_beside_the_hub_ids():
    assert MODELSCOPE_IDS == {DEFAULT_MODEL: "PaddlePaddle/ERNIE-4.5-0.3B-PT", BASE_MODEL: "PaddlePaddle/ERNIE-4.5-0.3B-Base-PT",
                              LARGE_MODEL: "PaddlePaddle/ERNIE-4.5-21B-A3B-PT",
                              LARGE_BASE_MODEL: "PaddlePaddle/ERNIE-4.5-21B-A3B-Base-PT"}
    assert all(hub.split("/")[1] == ms.split("/")[1] for hub, ms in MODELSCOPE_IDS.items())  # same names


@pytest.mark.skipif(importlib.util.find_spec("modelscope") is not None,
                    reason="the modelscope client is installed here: this test is about a machine without it")
def test_modelscope_without_its_client_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "modelscope")
    with pytest.raises(ModuleNotFoundError, match="pip install modelscope"):
        resolve_model()


def test_modelscope_refuses_a_model_it_has_no_id_for(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "modelscope")
    with pytest.raises(ValueError, match="'someone/other-model'.*MODELSCOPE_IDS"):
        resolve_model("someone/other-model")
