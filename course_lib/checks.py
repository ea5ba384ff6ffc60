"""The course's checks, one implementation each, one contract: every `check_*` returns a list of `Problem`s (empty
when all is well), so the same check can stop a notebook (`stop_if`) or be reported by the doctor.

    stop_if(check_training_settings(...), "in the settings cell")   # right after the settings, before any model loads
    stop_if(check_chat_template(tokenizer) + check_labels(trainer.train_dataset), "before training")
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from course_lib.ernie import BEGIN, END_OF_TURN, IGNORE_INDEX

MAX_LORA_LEARNING_RATE = 1e-2
TEMPLATE_FIX = "tokenizer.chat_template = course_lib.ernie.TRAINING_CHAT_TEMPLATE"


@dataclass(frozen=True)
class Problem:
    check: str  # which check found it
    what: str  # what is wrong, with the value that is wrong
    fix: str  # what to do

    def __str__(self) -> str:
        return f"[{self.check}] {self.what}\n    fix: {self.fix}"


def stop_if(problems: list[Problem], where: str) -> None:
    """Raise one ValueError listing every problem, with its fix; do nothing when there is none."""
    if problems:
        what = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ValueError(f"{what} to fix {where}:\n- " + "\n- ".join(f"{p.what}. {p.fix}" for p in problems))


def is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def not_a_number(name: str, value) -> str | None:
    if value is None:
        return f"{name} = None: it needs a number"
    if isinstance(value, str):
        return f"{name} = {value!r} is text; write the number without quotes"
    if not is_number(value):
        return f"{name} = {value!r} is a {type(value).__name__}, not a number"
    return None


def check_training_settings(r, lora_alpha, learning_rate, max_steps, batch_size, grad_accumulation=1,
                            lora_dropout=0.0, max_length=None) -> list[Problem]:
    """Every impossible or absurd setting, named as in the settings cell. Cheap: call it right after the settings
    cell, before any model loads."""
    problems = []

    def add(what, fix):
        problems.append(Problem("settings", what, fix))

    def whole(name, value, advice, allowed=()):
        problem = not_a_number(name, value)
        if problem is None and is_whole(value) and value in allowed:
            return
        if problem is None and not is_whole(value):
            problem = f"{name} = {value!r} is not a whole number"
            problem += f": write {int(value)}" if float(value).is_integer() else ""
        if problem is None and value <= 0:
            problem = f"{name} = {value} must be at least 1"
        if problem:
            add(problem, advice)

    whole("LORA_R", r, "The adapter rank: use 8, 16 (the course's value), 32 or 64.")
    whole("MAX_STEPS", max_steps, "Optimizer updates: use a positive count (the course uses 60), or -1 to train "
          "num_train_epochs instead.", allowed=(-1,))
    whole("BATCH_SIZE", batch_size, "Examples per device per step: use 8, or 4, 2, 1 on out-of-memory errors.")
    whole("GRAD_ACCUMULATION", grad_accumulation, "Batches added up per update: 1 updates after every batch; "
          "raise it when you lower BATCH_SIZE, to keep the effective batch.")
    if max_length is not None:
        whole("MAX_LENGTH", max_length, "Tokens per example: 1024 fits the word problems; use None for no limit.")

    problem = not_a_number("LORA_ALPHA", lora_alpha)
    if problem is None and not lora_alpha > 0:
        problem = (f"LORA_ALPHA = {lora_alpha}: the update is scaled by alpha / r, so 0 switches LoRA off and a "
                   "negative value reverses it")
    if problem:
        add(problem, "Use 2 x LORA_R (32 for r = 16).")

    problem = not_a_number("LEARNING_RATE", learning_rate)
    if problem is None and learning_rate != learning_rate:
        problem = "LEARNING_RATE is nan"
    elif problem is None and not learning_rate > 0:
        problem = f"LEARNING_RATE = {learning_rate}: with 0 nothing is learned, below 0 the loss is pushed up"
    elif problem is None and learning_rate > MAX_LORA_LEARNING_RATE:
        mantissa, exponent = f"{learning_rate:e}".split("e")
        slip = f" (did you mean {float(mantissa):g}e-{int(exponent)}?)" if int(exponent) > 0 else ""
        problem = (f"LEARNING_RATE = {learning_rate:g} is far too high for LoRA (above {MAX_LORA_LEARNING_RATE:g}): "
                   "Adam moves every adapter weight by about the learning rate at each step, and LoRA's A "
                   "matrices start at about 0.03 (1 / sqrt(1024) in ERNIE-4.5-0.3B; B at 0), so a few steps "
                   "overwrite them and the loss jumps instead of falling"
                   + slip)
    if problem:
        add(problem, "LoRA's usual range is 1e-4 to 5e-4; the course uses 2e-4.")

    problem = not_a_number("LORA_DROPOUT", lora_dropout)
    if problem is None and not 0 <= lora_dropout < 1:
        problem = f"LORA_DROPOUT = {lora_dropout} is the share of inputs dropped: it must be at least 0 and below 1"
    if problem:
        add(problem, "Use 0 (fastest in Unsloth), or 0.05 to 0.1 against overfitting.")
    return problems


def check_chat_template(tokenizer) -> list[Problem]:
    """The tokenizer's chat template must render ERNIE's markers and mark exactly the answer and its end marker
    with {% generation %} (what TRL's assistant_only_loss trains)."""
    template = tokenizer.chat_template
    if not template:
        return [Problem("chat template", "the tokenizer has no chat template, so TRL cannot render the `messages` "
                        "rows", TEMPLATE_FIX)]
    from trl.chat_template_utils import has_generation_markers  # the test TRL itself applies

    if not has_generation_markers(template):
        return [Problem("chat template", "the chat template has no {% generation %} ... {% endgeneration %} "
                        "markers, so TRL's assistant_only_loss=True cannot tell the answer from the question (TRL "
                        "stops with 'The chat template is not training-compatible')",
                        TEMPLATE_FIX + " (the same text as ERNIE's own template, plus the markers)")]
    question, answer = "What is 2 + 3?", "2 + 3 = 5.\nThe answer is 5."
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    missing = [marker for marker in (BEGIN, END_OF_TURN) if marker not in text]
    if missing:
        return [Problem("chat template", f"the chat template does not write ERNIE's {' and '.join(missing)}: the "
                        f"model would train on a format it never sees at inference. It renders {text!r}",
                        TEMPLATE_FIX)]
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep])
    if trained != answer + END_OF_TURN:
        return [Problem("chat template", f"the chat template's {{% generation %}} markers surround {trained!r}, not "
                        f"the answer and its end marker {answer + END_OF_TURN!r}: the wrong tokens would be trained",
                        TEMPLATE_FIX)]
    return []


@dataclass(frozen=True)
class LabelCounts:
    trained: int  # positions whose label is not IGNORE_INDEX
    real: int  # real tokens: padding left out
    examples: int
    untrained_examples: int  # examples none of whose tokens is trained

    def __str__(self) -> str:
        examples = f"{self.examples:,} example" + ("s" if self.examples != 1 else "")
        text = (f"{self.trained:,} of {self.real:,} real tokens in {examples} are trained "
                f"({100 * self.trained / max(self.real, 1):.0f}%; padding is not counted)")
        if self.untrained_examples:
            text += (f"; {self.untrained_examples} of them train nothing (cut by max_length before their answer, "
                     "or masked wrongly)")
        return text


def label_counts(batch_or_dataset) -> LabelCounts:
    """Trained tokens of a collated batch (`next(iter(trainer.get_train_dataloader()))`: `labels`, -100 = not
    trained) or of a tokenized dataset (`trainer.train_dataset`, which has `labels`, or rows with `assistant_masks`
    from `apply_chat_template(..., return_assistant_tokens_mask=True)`)."""
    if isinstance(batch_or_dataset, Mapping) and "labels" in batch_or_dataset:  # a batch (dict or BatchEncoding)
        labels = batch_or_dataset["labels"]
        trained = labels != IGNORE_INDEX
        if "attention_mask" in batch_or_dataset:  # padded: count real tokens, and examples with none trained
            return LabelCounts(int(trained.sum()), int(batch_or_dataset["attention_mask"].sum()), labels.shape[0],
                               int((trained.sum(dim=1) == 0).sum()))
        # padding-free: one row of examples end to end, no padding; each example's positions restart at 0
        positions = batch_or_dataset.get("position_ids")
        examples = int((positions == 0).sum()) if positions is not None else labels.shape[0]
        return LabelCounts(int(trained.sum()), labels.numel(), examples, 0)
    dataset = batch_or_dataset
    column = "labels" if "labels" in dataset.column_names else "assistant_masks"
    if column not in dataset.column_names:
        raise ValueError(f"the dataset has no `labels` or `assistant_masks` column ({dataset.column_names}): "
                         "pass trainer.train_dataset, or a batch from trainer.get_train_dataloader()")
    counts = [(sum(v != IGNORE_INDEX for v in row) if column == "labels" else sum(row), len(row))
              for row in dataset[column]]
    return LabelCounts(sum(c for c, _ in counts), sum(n for _, n in counts), len(counts),
                       sum(c == 0 for c, _ in counts))


def check_labels(batch_or_dataset, answers_only: bool = True) -> list[Problem]:
    """The loss must see some token, and (answers_only, i.e. assistant_only_loss=True) not every token."""
    why_none = ("With assistant_only_loss=True the trained tokens are what the chat template marks with "
                "{% generation %}: check_chat_template(tokenizer) tells whether they surround the answer. Other "
                "causes: answers that are empty, or every example cut by max_length before its answer.")
    if not isinstance(batch_or_dataset, Mapping) and len(batch_or_dataset) == 0:
        return [Problem("labels", "the training dataset is empty. TRL drops every example whose labels are all -100 "
                        "after cutting it to max_length, so if max_length is shorter than every question, nothing "
                        "is left", "raise max_length (course_lib.validation.validate reports lengths)")]
    counts = label_counts(batch_or_dataset)
    if counts.trained == 0:
        return [Problem("labels", f"no token is trained: every label of these {counts.examples} examples is -100 "
                        "(masked), so the loss has nothing to learn from (it comes out 0 or nan)", why_none)]
    # An example's first token is never a target (nothing comes before it): TRL's padding-free collator masks it,
    # a padded batch keeps it in `labels` but the model's shift drops it. So "every token" is real - examples.
    if answers_only and counts.trained >= counts.real - counts.examples:
        return [Problem("labels", f"every one of the {counts.real:,} tokens is trained, questions and chat markers "
                        "included: the model would learn to write questions too", "set assistant_only_loss=True in "
                        "SFTConfig (and keep the template's {% generation %} markers)")]
    return []
