"""Where the course writes: one work folder for models, data, checkpoints and exports."""

from __future__ import annotations

import os
from pathlib import Path

from course_lib.platforms import detect

WORK_ENV = "ERNIE_COURSE_WORK"


def work_dir() -> Path:
    """$ERNIE_COURSE_WORK if set; else ernie-course/ in the folder the hosted platform keeps (Colab: /content,
    visible in its file browser; Kaggle: /kaggle/working; AI Studio: /home/aistudio; ModelScope:
    /mnt/workspace); else ~/ernie-course.

    Every notebook reads and writes here, so a later notebook finds what an earlier one saved.
    """
    if os.environ.get(WORK_ENV):
        path = Path(os.environ[WORK_ENV])
    else:
        kept = detect().kept
        path = (kept if kept is not None else Path.home()) / "ernie-course"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
