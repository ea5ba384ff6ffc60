from pathlib import Path

import pytest

from course_lib import models
from course_lib.ernie import DEFAULT_MODEL, LARGE_MODEL
from course_lib.models import resolve_model


def test_offline_auto_falls_back_to_the_tiny_slice(monkeypatch):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)  # HF_HUB_OFFLINE=1 comes from conftest
    choice = resolve_model()
    assert choice.source == "tiny" and choice.offline
    assert (Path(choice.name_or_path) / "config.json").exists()
    assert "not reachable" in choice.reason
    assert "OFFLINE" in choice.banner() and "TINY" in choice.banner()


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
