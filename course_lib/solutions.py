"""Solution cells that run only when asked: Run All gives a learner the lesson, not the answers (nor the minutes
some solutions train for), while CI still executes every solution, the same code, with one setting.

A notebook loads this once, above its solutions, and each solution cell starts with the cell magic:

    %load_ext course_lib.solutions
    SHOW_SOLUTIONS = False  # True: the solution cells below run

    # @title Solution 1: ... { display-mode: "form" }
    %%solution
    ...

A solution runs when `SHOW_SOLUTIONS` is True in the notebook, or when the environment sets
ERNIE_COURSE_SOLUTIONS=1 (`make test` does); otherwise it prints one line saying how to run it.
"""

from __future__ import annotations

import os
import re

from course_lib.language import tr

ENV_VAR = "ERNIE_COURSE_SOLUTIONS"
SWITCH = "SHOW_SOLUTIONS"
SKIPPED = (f"Solution not run: solutions run only when asked. Try the exercise first; then set {SWITCH} = True "
           "in the cell under 'Solutions' and run that cell and this one.")
SKIPPED_ZH = (f"答案没有运行：答案只在需要时才运行。请先自己做练习；然后在“参考答案”下面的单元格里设置 {SWITCH} = True，"
              "运行那个单元格，再运行这一个。")
# Colab's form annotations. Colab drops these lines before it runs a cell, so a cell magic may follow them
# there; plain IPython recognises a cell magic only on a cell's first line.
FORM_LINE = re.compile(r"\s*#\s*@(title|markdown|param)\b")


def solutions_on(user_ns: dict) -> bool:
    """True when solutions should run: $ERNIE_COURSE_SOLUTIONS is 1, or the notebook set SHOW_SOLUTIONS = True."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(tr(f"{ENV_VAR}={value!r}: use 1 to run the solution cells, 0 (or unset) to skip them",
                            f"{ENV_VAR}={value!r}：用 1 运行答案单元格，用 0（或不设置）跳过它们"))
    return value == "1" or user_ns.get(SWITCH) is True


def magic_after_form_lines(lines: list[str]) -> list[str]:
    """An IPython cleanup transform: `# @title ...` lines followed by `%%magic` become the magic line followed
    by them (as comments of the magic's body), so that IPython runs the cell as Colab does."""
    n_form = 0
    while n_form < len(lines) and FORM_LINE.match(lines[n_form]):
        n_form += 1
    if 0 < n_form < len(lines) and lines[n_form].startswith("%%"):
        return [lines[n_form], *lines[:n_form], *lines[n_form + 1:]]
    return lines


class SolutionFailed(Exception):
    """Raised after a solution's own error was shown, so that the cell fails (and Run All or nbmake stops)
    without printing the traceback a second time."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return [f"{type(self).__name__}: {self}"]


def solution(line: str, cell: str):
    """%%solution: run the cell's body when solutions are on, else print one line saying how to run it."""
    from IPython import get_ipython

    shell = get_ipython()
    if not solutions_on(shell.user_ns):
        print(tr(SKIPPED, SKIPPED_ZH))
        return
    result = shell.run_cell(cell, store_history=False)
    if not result.success:
        error = result.error_before_exec or result.error_in_exec
        raise SolutionFailed(tr(f"the solution failed with {type(error).__name__}: {error} (its traceback is above)",
                                f"答案运行失败，{type(error).__name__}: {error}（traceback 在上面）"))


def load_ipython_extension(ipython) -> None:
    ipython.register_magic_function(solution, magic_kind="cell")
    if magic_after_form_lines not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(magic_after_form_lines)
