"""Shared test setup: the same import order as the notebooks, and nothing that touches the network."""

import os

# Unsloth patches transformers, PEFT and TRL when imported; import it first, as every notebook does, so the
# tests exercise what a learner runs.
import unsloth  # noqa: F401
import pytest


@pytest.fixture(autouse=True, scope="session")
def offline_work_dir(tmp_path_factory):
    """No test reaches for the Hub. Tests share one work folder: $ERNIE_COURSE_WORK when set (`make test`
    sets it, so tests and notebooks build the tiny slice once), else a temporary one. Session-scoped, so that
    module-scoped fixtures (which run before function-scoped ones) see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        if not os.environ.get("ERNIE_COURSE_WORK"):
            patch.setenv("ERNIE_COURSE_WORK", str(tmp_path_factory.getbasetemp() / "work"))
        yield


@pytest.fixture(autouse=True)
def english_by_default(monkeypatch):
    """course_lib speaks English unless a test asks for Chinese (monkeypatch.setenv(LANGUAGE_ENV, "zh")), so no
    test depends on what language an earlier one left set."""
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.delenv(LANGUAGE_ENV, raising=False)
