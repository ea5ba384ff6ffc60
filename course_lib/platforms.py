"""Which hosted notebook is this: Colab, Kaggle, Baidu AI Studio, ModelScope, or your own machine.

It decides one thing in the course: where the work folder goes, so that what a notebook saves is still
there for the next one (each platform keeps files in a different place). Detection reads only what each
platform is known to set: a module or an environment variable, else its home folder; README.zh.md says
what each platform gives and what differs in the install cell.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Platform:
    key: str  # "colab", "kaggle", "aistudio", "modelscope" or "local"
    name: str  # as the platform calls itself
    kept: Path | None  # a folder whose files outlive the session (None: this machine decides)
    name_zh: str = ""  # its name in the Chinese edition, when that differs

    def shown(self) -> str:
        """Its name in the language the course speaks."""
        from course_lib.language import tr

        return tr(self.name, self.name_zh or self.name)


COLAB = Platform("colab", "Google Colab", Path("/content"))  # visible in its file browser; gone with the runtime
KAGGLE = Platform("kaggle", "Kaggle", Path("/kaggle/working"))  # saved as the notebook's output with a version
# the project's folder, kept
AISTUDIO = Platform("aistudio", "Baidu AI Studio", Path("/home/aistudio"), "百度 AI Studio")
# the instance's kept disk
MODELSCOPE = Platform("modelscope", "ModelScope Notebook", Path("/mnt/workspace"), "魔搭 ModelScope Notebook")
LOCAL = Platform("local", "this machine", None, "本机")


def detect(environ=None, modules=None, exists=None) -> Platform:
    """The platform this kernel runs on. The arguments (os.environ, sys.modules, Path.is_dir) are there
    so that a test can describe another machine."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    exists = (lambda path: Path(path).is_dir()) if exists is None else exists
    if "google.colab" in modules or "COLAB_RELEASE_TAG" in environ:
        return COLAB
    if "KAGGLE_KERNEL_RUN_TYPE" in environ or "KAGGLE_URL_BASE" in environ:
        return KAGGLE
    if exists(AISTUDIO.kept):
        return AISTUDIO
    if exists(MODELSCOPE.kept):
        return MODELSCOPE
    return LOCAL
