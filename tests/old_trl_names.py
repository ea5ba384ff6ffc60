"""Static check of code for the TRL names old tutorials use (test helper: tests/test_doctor.py and
tests/test_notebooks.py run it over test snippets and every notebook cell)."""

import ast

from course_lib.checks import Problem
from course_lib.doctor import check_config_kwargs, check_trainer_kwargs


def check_source(text: str) -> list[Problem]:
    """The SFTTrainer / SFTConfig / TrainingArguments calls in a cell's source, checked by keyword name.
    `max_seq_length=` in FastLanguageModel.from_pretrained is Unsloth's own name and is left alone."""
    # IPython's !shell and %magic lines are not Python: keep their place (line numbers) with a `pass`
    code = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("!", "%")) else line
                     for line in text.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return [Problem("source", f"the code does not parse as Python (line {error.lineno}: {error.msg})",
                        "fix that syntax error first")]
    problems, trainer_calls, config_kinds = [], 0, set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func).split(".")[-1]
        keywords = {kw.arg: kw for kw in node.keywords if kw.arg is not None}
        found = []
        if name == "SFTTrainer":
            trainer_calls += 1
            found = check_trainer_kwargs(keywords)
        elif name in ("SFTConfig", "TrainingArguments"):
            config_kinds.add(name)
            found = check_config_kwargs(keywords)
            if name == "SFTConfig" and not {"bf16", "fp16"} & set(keywords):
                found.append(Problem("precision", "SFTConfig(...) sets neither bf16 nor fp16, so it defaults to "
                                     "bf16=True, which fails on a T4 and on a CPU",
                                     "pass bf16=precision.bf16, fp16=precision.fp16 (from env.choose_precision)"))
        problems += [Problem(p.check, f"line {node.lineno}: {p.what}", p.fix) for p in found]
    if trainer_calls and "TrainingArguments" in config_kinds and "SFTConfig" not in config_kinds:
        problems.append(Problem("trl arguments", "SFTTrainer is given TrainingArguments: it has no max_length, packing "
                                "or assistant_only_loss", "use trl.SFTConfig(...) instead; it takes every "
                                "TrainingArguments field too"))
    return problems
