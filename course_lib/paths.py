"""Where the course writes: one work folder for models, data, checkpoints and exports."""

from __future__ import annotations

import os
from pathlib import Path

WORK_ENV = "ERNIE_COURSE_WORK"


def work_dir() -> Path:
    """$ERNIE_COURSE_WORK if set; /content/ernie-course on Colab (visible in its file browser); else ~/ernie-course.

    Every notebook reads and writes here, so a later notebook finds what an earlier one saved.
    """
    if os.environ.get(WORK_ENV):
        path = Path(os.environ[WORK_ENV])
    elif Path("/content").is_dir() and "COLAB_RELEASE_TAG" in os.environ:
        path = Path("/content/ernie-course")
    else:
        path = Path.home() / "ernie-course"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
