"""Guards that stop a run early with a message saying what is wrong and what to do: the settings (before any
model loads), the chat template (before the trainer is built) and the labels (before `trainer.train()`)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

from course_lib.ernie import BEGIN, END_OF_TURN, IGNORE_INDEX

MAX_LORA_LEARNING_RATE = 1e-2


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
                            lora_dropout=0.0, max_length=None) -> str:
    """ValueError listing every impossible or absurd setting, named as in the settings cell; else a one-line
    summary of the run. Cheap: call it right after the settings cell, before any model loads."""
    problems = []

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
            problems.append(f"{problem}. {advice}")

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
        problems.append(f"{problem}. Use 2 x LORA_R (32 for r = 16).")

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
        problems.append(f"{problem}. LoRA's usual range is 1e-4 to 5e-4; the course uses 2e-4.")

    problem = not_a_number("LORA_DROPOUT", lora_dropout)
    if problem is None and not 0 <= lora_dropout < 1:
        problem = f"LORA_DROPOUT = {lora_dropout} is the share of inputs dropped: it must be at least 0 and below 1"
    if problem:
        problems.append(f"{problem}. Use 0 (fastest in Unsloth), or 0.05 to 0.1 against overfitting.")

    if problems:
        what = "1 setting" if len(problems) == 1 else f"{len(problems)} settings"
        raise ValueError(f"{what} to fix in the settings cell:\n- " + "\n- ".join(problems))
    steps = "epochs (max_steps = -1)" if max_steps == -1 else f"{max_steps} steps"
    return (f"settings OK: r = {r}, alpha = {lora_alpha} (scale {lora_alpha / r:g}), learning rate "
            f"{learning_rate:.1e}, {steps} of {batch_size} x {grad_accumulation} examples")


def check_chat_template(tokenizer) -> str:
    """ValueError unless the chat template renders ERNIE's markers and marks exactly the answer and its end
    marker with {% generation %} (what TRL's assistant_only_loss trains); else what it trains, as text."""
    fix = "Fix: tokenizer.chat_template = course_lib.ernie.TRAINING_CHAT_TEMPLATE"
    template = tokenizer.chat_template
    if not template:
        raise ValueError(f"the tokenizer has no chat template, so TRL cannot render the `messages` rows. {fix}")
    from trl.chat_template_utils import has_generation_markers  # the test TRL itself applies

    if not has_generation_markers(template):
        raise ValueError("the chat template has no {% generation %} ... {% endgeneration %} markers, so TRL's "
                         "assistant_only_loss=True cannot tell the answer from the question (TRL stops with 'The "
                         f"chat template is not training-compatible'). {fix}")
    question, answer = "What is 2 + 3?", "2 + 3 = 5.\nThe answer is 5."
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    missing = [marker for marker in (BEGIN, END_OF_TURN) if marker not in text]
    if missing:
        raise ValueError(f"the chat template does not write ERNIE's {' and '.join(missing)}: the model would "
                         f"train on a format it never sees at inference. It renders {text!r}. {fix}")
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep])
    if trained != answer + END_OF_TURN:
        raise ValueError(f"the chat template's {{% generation %}} markers surround {trained!r}, not the answer and "
                         f"its end marker {answer + END_OF_TURN!r}: the wrong tokens would be trained. {fix}")
    return f"chat template OK: it renders ERNIE's markers and trains {trained!r}"


def check_labels(batch_or_dataset, answers_only: bool = True) -> str:
    """Stop before training when the loss would see no token, or (answers_only) every token.

    Takes a collated batch (`next(iter(trainer.get_train_dataloader()))`: `labels`, -100 = not trained) or a
    tokenized dataset (`trainer.train_dataset`, which has `labels`, or rows with `assistant_masks` from
    `apply_chat_template(..., return_assistant_tokens_mask=True)`). Returns the counts as a sentence.
    """
    why_none = ("With assistant_only_loss=True the trained tokens are what the chat template marks with "
                "{% generation %}: check_chat_template(tokenizer) tells whether they surround the answer. Other "
                "causes: answers that are empty, or every example cut by max_length before its answer.")
    if isinstance(batch_or_dataset, Mapping) and "labels" in batch_or_dataset:  # a batch (dict or BatchEncoding)
        labels = batch_or_dataset["labels"]
        trained = labels != IGNORE_INDEX
        n_trained, n_examples = int(trained.sum()), labels.shape[0]
        if "attention_mask" in batch_or_dataset:  # padded: count real tokens, and examples with none trained
            n_real = int(batch_or_dataset["attention_mask"].sum())
            n_empty = int((trained.sum(dim=1) == 0).sum())
        else:  # padding-free: one row of examples laid end to end, no padding
            n_real, n_empty = labels.numel(), 0
    else:
        dataset = batch_or_dataset
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty. TRL drops every example whose labels are all -100 "
                             "after cutting it to max_length, so if max_length is shorter than every question, "
                             "nothing is left: raise max_length (course_lib.validation.validate reports lengths).")
        column = "labels" if "labels" in dataset.column_names else "assistant_masks"
        if column not in dataset.column_names:
            raise ValueError(f"the dataset has no `labels` or `assistant_masks` column ({dataset.column_names}): "
                             "pass trainer.train_dataset, or a batch from trainer.get_train_dataloader()")
        counts = [(sum(v != IGNORE_INDEX for v in row) if column == "labels" else sum(row), len(row))
                  for row in dataset[column]]
        n_trained, n_real = sum(c for c, _ in counts), sum(n for _, n in counts)
        n_examples, n_empty = len(counts), sum(c == 0 for c, _ in counts)
    if n_trained == 0:
        raise ValueError(f"no token is trained: every label of these {n_examples} examples is -100 (masked), so "
                         f"the loss has nothing to learn from (it comes out 0 or nan). {why_none}")
    if answers_only and n_trained == n_real:
        raise ValueError(f"every one of the {n_real:,} tokens is trained, questions and chat markers included: the "
                         "model would learn to write questions too. Set assistant_only_loss=True in SFTConfig (and "
                         "keep the template's {% generation %} markers).")
    share = 100 * n_trained / n_real
    examples = f"{n_examples:,} example" + ("s" if n_examples != 1 else "")
    summary = f"{n_trained:,} of {n_real:,} tokens in {examples} are trained ({share:.0f}%)"
    if n_empty:
        summary += (f"; {n_empty} of them train nothing (cut by max_length before their answer, or masked "
                    "wrongly)")
    return summary
