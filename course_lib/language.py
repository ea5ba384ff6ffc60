"""The language course_lib speaks to a learner: English, or Chinese in the Chinese edition.

Each notebook's import cell calls `set_language(...)`: "en" in notebooks/en/, "zh" in notebooks/zh/. That
line is the one declared difference between the editions' code (scripts/sync_edition.py writes it). Every
message a learner reads is written where it is used as `tr(english, chinese)`, so the two stay side by side
and a change to one is seen beside the other.
"""

from __future__ import annotations

import os

LANGUAGES = ("en", "zh")
LANGUAGE_ENV = "ERNIE_COURSE_LANGUAGE"  # kept in the environment so that scripts the notebooks start speak it too


def set_language(code: str) -> None:
    """Make course_lib print in `code` ("en" or "zh") from now on, here and in the scripts it starts."""
    if code not in LANGUAGES:
        raise ValueError(f"language {code!r} is not one of {', '.join(LANGUAGES)}: use set_language(\"en\") or "
                         f"set_language(\"zh\") / 语言只能是 \"en\" 或 \"zh\"")
    os.environ[LANGUAGE_ENV] = code


def language() -> str:
    """The language set by set_language (or $ERNIE_COURSE_LANGUAGE); English when none was."""
    code = os.environ.get(LANGUAGE_ENV, "en").strip().lower()
    return code if code in LANGUAGES else "en"


def tr(english: str, chinese: str) -> str:
    """`chinese` when the course speaks Chinese, else `english`."""
    return chinese if language() == "zh" else english
