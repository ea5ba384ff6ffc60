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
from course_lib.language import tr

MAX_LORA_LEARNING_RATE = 1e-2
TEMPLATE_FIX = "tokenizer.chat_template = course_lib.ernie.TRAINING_CHAT_TEMPLATE"
# The checks' names as a Chinese learner reads them (Problem.check stays English: code compares it).
CHECK_NAMES_ZH = {"settings": "设置", "chat template": "对话模板", "labels": "labels", "gpu runtime": "GPU 运行时",
                  "import order": "导入顺序", "precision": "精度", "trl arguments": "TRL 参数", "out of memory": "显存不足",
                  "error": "错误"}


@dataclass(frozen=True)
class Problem:
    check: str  # which check found it
    what: str  # what is wrong, with the value that is wrong
    fix: str  # what to do

    def __str__(self) -> str:
        return tr(f"[{self.check}] {self.what}\n    fix: {self.fix}",
                  f"[{CHECK_NAMES_ZH.get(self.check, self.check)}] {self.what}\n    解决办法：{self.fix}")


def stop_if(problems: list[Problem], where: str) -> None:
    """Raise one ValueError listing every problem, with its fix; do nothing when there is none."""
    if problems:
        what = tr("1 problem" if len(problems) == 1 else f"{len(problems)} problems", f"{len(problems)} 个问题")
        raise ValueError(tr(f"{what} to fix {where}:\n- ", f"有 {what}需要解决（{where}）：\n- ")
                         + "\n- ".join(tr(f"{p.what}. {p.fix}", f"{p.what}。{p.fix}") for p in problems))


def is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def not_a_number(name: str, value) -> str | None:
    if value is None:
        return tr(f"{name} = None: it needs a number", f"{name} = None：这里需要一个数")
    if isinstance(value, str):
        return tr(f"{name} = {value!r} is text; write the number without quotes",
                  f"{name} = {value!r} 是文本；请去掉引号，直接写数字")
    if not is_number(value):
        return tr(f"{name} = {value!r} is a {type(value).__name__}, not a number",
                  f"{name} = {value!r} 是 {type(value).__name__}，不是数")
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
            problem = tr(f"{name} = {value!r} is not a whole number", f"{name} = {value!r} 不是整数")
            problem += tr(f": write {int(value)}", f"：请写 {int(value)}") if float(value).is_integer() else ""
        if problem is None and value <= 0:
            problem = tr(f"{name} = {value} must be at least 1", f"{name} = {value} 至少要是 1")
        if problem:
            add(problem, advice)

    whole("LORA_R", r, tr("The adapter rank: use 8, 16 (the course's value), 32 or 64.",
                          "适配器的秩：用 8、16（课程的取值）、32 或 64。"))
    whole("MAX_STEPS", max_steps, tr("Optimizer updates: use a positive count (the course uses 60), or -1 to train "
                                     "num_train_epochs instead.", "优化器更新的次数：用一个正数（课程用 60），或用 -1 "
                                     "改为按 num_train_epochs 训练。"), allowed=(-1,))
    whole("BATCH_SIZE", batch_size, tr("Examples per device per step: use 8, or 4, 2, 1 on out-of-memory errors.",
                                       "每个设备每步的样本数：用 8；显存不足时用 4、2、1。"))
    whole("GRAD_ACCUMULATION", grad_accumulation, tr("Batches added up per update: 1 updates after every batch; "
                                                     "raise it when you lower BATCH_SIZE, to keep the effective batch.",
                                                     "每次更新累加的 batch 数：1 表示每个 batch 后都更新；调低 "
                                                     "BATCH_SIZE 时把它调高，以保持有效 batch 不变。"))
    if max_length is not None:
        whole("MAX_LENGTH", max_length, tr("Tokens per example: 1024 fits the word problems; use None for no limit.",
                                           "每个样本的 token 数：1024 能装下这些应用题；用 None 表示不设上限。"))

    problem = not_a_number("LORA_ALPHA", lora_alpha)
    if problem is None and not lora_alpha > 0:
        problem = tr(f"LORA_ALPHA = {lora_alpha}: the update is scaled by alpha / r, so 0 switches LoRA off and a "
                     "negative value reverses it", f"LORA_ALPHA = {lora_alpha}：更新量按 alpha / r 缩放，所以 0 会"
                     "关掉 LoRA，负值会让更新反向")
    if problem:
        add(problem, tr("Use 2 x LORA_R (32 for r = 16).", "用 2 x LORA_R（r = 16 时为 32）。"))

    problem = not_a_number("LEARNING_RATE", learning_rate)
    if problem is None and learning_rate != learning_rate:
        problem = tr("LEARNING_RATE is nan", "LEARNING_RATE 是 nan")
    elif problem is None and not learning_rate > 0:
        problem = tr(f"LEARNING_RATE = {learning_rate}: with 0 nothing is learned, below 0 the loss is pushed up",
                     f"LEARNING_RATE = {learning_rate}：为 0 时什么也学不到，小于 0 时 loss 会被推高")
    elif problem is None and learning_rate > MAX_LORA_LEARNING_RATE:
        mantissa, exponent = f"{learning_rate:e}".split("e")
        slip = (tr(f" (did you mean {float(mantissa):g}e-{int(exponent)}?)",
                   f"（你是想写 {float(mantissa):g}e-{int(exponent)} 吗？）") if int(exponent) > 0 else "")
        problem = tr(f"LEARNING_RATE = {learning_rate:g} is far too high for LoRA (above {MAX_LORA_LEARNING_RATE:g}): "
                     "Adam moves every adapter weight by about the learning rate at each step, and LoRA's A "
                     "matrices start at about 0.03 (1 / sqrt(1024) in ERNIE-4.5-0.3B; B at 0), so a few steps "
                     "overwrite them and the loss jumps instead of falling",
                     f"LEARNING_RATE = {learning_rate:g} 对 LoRA 来说太高了（超过 {MAX_LORA_LEARNING_RATE:g}）："
                     "Adam 每一步把每个适配器权重移动大约一个学习率，而 LoRA 的 A 矩阵初始值约为 0.03"
                     "（ERNIE-4.5-0.3B 中为 1 / sqrt(1024)；B 为 0），所以几步之后它们就被覆盖，loss 会跳升而不是下降"
                     ) + slip
    if problem:
        add(problem, tr("LoRA's usual range is 1e-4 to 5e-4; the course uses 2e-4.",
                        "LoRA 常用的范围是 1e-4 到 5e-4；课程用 2e-4。"))

    problem = not_a_number("LORA_DROPOUT", lora_dropout)
    if problem is None and not 0 <= lora_dropout < 1:
        problem = tr(f"LORA_DROPOUT = {lora_dropout} is the share of inputs dropped: it must be at least 0 and below 1",
                     f"LORA_DROPOUT = {lora_dropout} 是被丢弃的输入比例：它必须不小于 0 且小于 1")
    if problem:
        add(problem, tr("Use 0 (fastest in Unsloth), or 0.05 to 0.1 against overfitting.",
                        "用 0（在 Unsloth 中最快），或用 0.05 到 0.1 防止过拟合。"))
    return problems


def check_chat_template(tokenizer) -> list[Problem]:
    """The tokenizer's chat template must render ERNIE's markers and mark exactly the answer and its end marker
    with {% generation %} (what TRL's assistant_only_loss trains)."""
    template = tokenizer.chat_template
    if not template:
        return [Problem("chat template", tr("the tokenizer has no chat template, so TRL cannot render the `messages` "
                                            "rows", "分词器没有对话模板，所以 TRL 无法渲染 `messages` 各行"), TEMPLATE_FIX)]
    from trl.chat_template_utils import has_generation_markers  # the test TRL itself applies

    if not has_generation_markers(template):
        return [Problem("chat template", tr("the chat template has no {% generation %} ... {% endgeneration %} "
                                            "markers, so TRL's assistant_only_loss=True cannot tell the answer from the "
                                            "question (TRL stops with 'The chat template is not training-compatible')",
                                            "对话模板没有 {% generation %} ... {% endgeneration %} 标记，所以 TRL 的 "
                                            "assistant_only_loss=True 无法区分答案和问题（TRL 会报错停下：'The chat "
                                            "template is not training-compatible'）"),
                        TEMPLATE_FIX + tr(" (the same text as ERNIE's own template, plus the markers)",
                                          "（与 ERNIE 自己的模板文字相同，另加这些标记）"))]
    question, answer = "What is 2 + 3?", "2 + 3 = 5.\nThe answer is 5."
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    missing = [marker for marker in (BEGIN, END_OF_TURN) if marker not in text]
    if missing:
        return [Problem("chat template", tr(f"the chat template does not write ERNIE's {' and '.join(missing)}: the "
                                            f"model would train on a format it never sees at inference. It renders "
                                            f"{text!r}", f"对话模板没有写出 ERNIE 的 {' 和 '.join(missing)}：模型会在"
                                            f"推理时从未见过的格式上训练。它渲染出的是 {text!r}"), TEMPLATE_FIX)]
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep])
    if trained != answer + END_OF_TURN:
        return [Problem("chat template", tr(f"the chat template's {{% generation %}} markers surround {trained!r}, "
                                            f"not the answer and its end marker {answer + END_OF_TURN!r}: the wrong "
                                            "tokens would be trained", f"对话模板的 {{% generation %}} 标记包住的是 "
                                            f"{trained!r}，而不是答案及其结束标记 {answer + END_OF_TURN!r}：训练的会是"
                                            "错误的 token"), TEMPLATE_FIX)]
    return []


@dataclass(frozen=True)
class LabelCounts:
    trained: int  # positions whose label is not IGNORE_INDEX
    real: int  # real tokens: padding left out
    examples: int
    untrained_examples: int  # examples none of whose tokens is trained

    def __str__(self) -> str:
        examples = f"{self.examples:,} example" + ("s" if self.examples != 1 else "")
        share = 100 * self.trained / max(self.real, 1)
        text = tr(f"{self.trained:,} of {self.real:,} real tokens in {examples} are trained "
                  f"({share:.0f}%; padding is not counted)",
                  f"{self.examples:,} 个样本的 {self.real:,} 个真实 token 中有 {self.trained:,} 个参与训练"
                  f"（{share:.0f}%；不计填充）")
        if self.untrained_examples:
            text += tr(f"; {self.untrained_examples} of them train nothing (cut by max_length before their answer, "
                       "or masked wrongly)", f"；其中 {self.untrained_examples} 个什么也不训练（在答案之前就被 "
                       "max_length 截断，或屏蔽错了）")
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
        raise ValueError(tr(f"the dataset has no `labels` or `assistant_masks` column ({dataset.column_names}): "
                            "pass trainer.train_dataset, or a batch from trainer.get_train_dataloader()",
                            f"数据集没有 `labels` 或 `assistant_masks` 列（{dataset.column_names}）：请传入 "
                            "trainer.train_dataset，或 trainer.get_train_dataloader() 给出的一个 batch"))
    counts = [(sum(v != IGNORE_INDEX for v in row) if column == "labels" else sum(row), len(row))
              for row in dataset[column]]
    return LabelCounts(sum(c for c, _ in counts), sum(n for _, n in counts), len(counts),
                       sum(c == 0 for c, _ in counts))


def check_labels(batch_or_dataset, answers_only: bool = True) -> list[Problem]:
    """The loss must see some token, and (answers_only, i.e. assistant_only_loss=True) not every token."""
    why_none = tr("With assistant_only_loss=True the trained tokens are what the chat template marks with "
                  "{% generation %}: check_chat_template(tokenizer) tells whether they surround the answer. Other "
                  "causes: answers that are empty, or every example cut by max_length before its answer.",
                  "assistant_only_loss=True 时，参与训练的 token 是对话模板用 {% generation %} 标出的那些："
                  "check_chat_template(tokenizer) 会告诉你它们是否包住了答案。其他原因：答案为空，或每个样本都在"
                  "答案之前被 max_length 截断。")
    if not isinstance(batch_or_dataset, Mapping) and len(batch_or_dataset) == 0:
        return [Problem("labels", tr("the training dataset is empty. TRL drops every example whose labels are all "
                                     "-100 after cutting it to max_length, so if max_length is shorter than every "
                                     "question, nothing is left", "训练数据集是空的。TRL 会丢弃截断到 max_length 后 "
                                     "labels 全是 -100 的样本，所以如果 max_length 比每个问题都短，就什么也不剩"),
                        tr("raise max_length (course_lib.validation.validate reports lengths)",
                           "调大 max_length（course_lib.validation.validate 会报告长度）"))]
    counts = label_counts(batch_or_dataset)
    if counts.trained == 0:
        return [Problem("labels", tr(f"no token is trained: every label of these {counts.examples} examples is -100 "
                                     "(masked), so the loss has nothing to learn from (it comes out 0 or nan)",
                                     f"没有 token 参与训练：这 {counts.examples} 个样本的每个 label 都是 -100（已屏蔽），"
                                     "所以 loss 无从学习（结果是 0 或 nan）"), why_none)]
    # An example's first token is never a target (nothing comes before it): TRL's padding-free collator masks it,
    # a padded batch keeps it in `labels` but the model's shift drops it. So "every token" is real - examples.
    if answers_only and counts.trained >= counts.real - counts.examples:
        return [Problem("labels", tr(f"every one of the {counts.real:,} tokens is trained, questions and chat markers "
                                     "included: the model would learn to write questions too",
                                     f"全部 {counts.real:,} 个 token 都参与训练，包括问题和对话标记：模型也会学着写问题"),
                        tr("set assistant_only_loss=True in SFTConfig (and keep the template's {% generation %} markers)",
                           "在 SFTConfig 中设 assistant_only_loss=True（并保留模板的 {% generation %} 标记）"))]
    return []
