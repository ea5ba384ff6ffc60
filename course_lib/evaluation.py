"""Held-out evaluation: greedy answers, batched; whether each stopped where training taught it to, whether
its final number is right, and how far 50 questions let those rates be trusted."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from course_lib.ernie import END_OF_TURN
from course_lib.language import tr

Z_95 = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The 95% Wilson score interval of the proportion k/n. Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1]
    and does not shrink to a point at 0/n or n/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(flags: list[bool]) -> str:
    """"12/50 = 24.0% (95% CI 14.3-37.4%)"."""
    k, n = sum(flags), len(flags)
    low, high = wilson_interval(k, n)
    share = f"{100 * k / n:.1f}%" if n else tr("n/a", "无")
    return tr(f"{k}/{n} = {share} (95% CI {100 * low:.1f}-{100 * high:.1f}%)",
              f"{k}/{n} = {share}（95% 置信区间 {100 * low:.1f}-{100 * high:.1f}%）")


@dataclass
class PairedTest:
    """Exact McNemar test of before/after on the same questions: only the discordant pairs carry information
    (right only after: `gained`; right only before: `lost`); under "no change" each of them is a fair coin."""
    gained: int
    lost: int
    same: int

    @property
    def p_value(self) -> float:
        n, k = self.gained + self.lost, min(self.gained, self.lost)
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)  # two-sided sign test

    def summary(self, what: str) -> str:
        verdict = (tr("more than chance explains (p < 0.05)", "超出偶然所能解释的范围（p < 0.05）")
                   if self.p_value < 0.05 else
                   tr("chance alone could explain it (p >= 0.05)", "仅凭偶然就可能出现（p >= 0.05）"))
        return tr(f"{what}: {self.gained} only after, {self.lost} only before, {self.same} the same; exact McNemar "
                  f"p = {self.p_value:.3g}: {verdict}",
                  f"{what}：{self.gained} 题仅训练后正确，{self.lost} 题仅训练前正确，{self.same} 题前后相同；"
                  f"精确 McNemar 检验 p = {self.p_value:.3g}：{verdict}")


def paired_test(before: list[bool], after: list[bool]) -> PairedTest:
    if len(before) != len(after):
        raise ValueError(tr(f"a paired test needs the same questions: {len(before)} results before, {len(after)} after",
                            f"配对检验需要同一批问题：训练前 {len(before)} 个结果，训练后 {len(after)} 个"))
    gained = sum(a and not b for b, a in zip(before, after))
    lost = sum(b and not a for b, a in zip(before, after))
    return PairedTest(gained, lost, len(before) - gained - lost)


@dataclass
class Evaluation:
    questions: list[str]
    references: list[str]
    predictions: list[str]
    correct: list[bool]  # the final number equals the reference's
    endings: list[str | None] = field(default_factory=list)  # the stop token each answer ended with; None: out of tokens
    left_out: int = 0  # rows skipped: their reference states no clear final number

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0

    @property
    def stopped(self) -> list[bool]:
        """Whether each answer ended as training teaches: with ERNIE's end of turn, within the token budget."""
        return [ending == END_OF_TURN for ending in self.endings]

    def summary(self) -> str:
        counts = Counter(tr("out of tokens", "用完 token") if ending is None else tr(f"at {ending}", f"停在 {ending}")
                         for ending in self.endings)
        endings = tr(", ", "，").join(tr(f"{n} {how}", f"{n} 个{how}") for how, n in counts.most_common())
        text = tr(f"final number right {proportion(self.correct)}; stopped at {END_OF_TURN} {proportion(self.stopped)}"
                  f"; ended: {endings}",
                  f"最终数字正确 {proportion(self.correct)}；停在 {END_OF_TURN} {proportion(self.stopped)}"
                  f"；结束方式：{endings}")
        if self.left_out:
            text += tr(f"; {self.left_out} rows left out (no clear final number in the reference)",
                       f"；略去 {self.left_out} 行（参考答案里没有明确的最终数字）")
        return text


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: the tokenizer's end of text and, where the vocabulary has it as one
    token, ERNIE's end of turn, which is what a fine-tuned model writes after its answer."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    end_of_turn = end_of_turn_id(tokenizer)
    if end_of_turn is not None and end_of_turn not in stops:
        stops.append(end_of_turn)
    return stops


def end_of_turn_id(tokenizer) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    return token_id if isinstance(token_id, int) and token_id != tokenizer.unk_token_id else None


def chat_prompts(tokenizer, questions: list[str]) -> list[str]:
    """Each question as a user turn in the tokenizer's chat format, ending at "Assistant:" (chat_format says why)."""
    from course_lib.chat_format import generation_prompt  # it imports this module

    return [generation_prompt(tokenizer, [{"role": "user", "content": q}]) for q in questions]


def generate_turns(model, tokenizer, questions: list[str], max_new_tokens: int = 256, batch_size: int = 16,
                   progress: bool = True) -> tuple[list[str], list[str | None]]:
    """(greedy answers, how each ended) for `questions`, in batches: each answer stops at a token of
    `stop_token_ids` (its ending is that token, e.g. "</s>") or after `max_new_tokens` (its ending is None)."""
    import torch
    from tqdm.auto import tqdm

    prompts = chat_prompts(tokenizer, questions)
    # A decoder-only model continues from the last token, so pad on the left; restore the trainer's side after.
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer)
    answers, endings = [], []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc=tr("generating", "生成中"), disable=not progress):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                        pad_token_id=tokenizer.pad_token_id)
            for tokens in output[:, batch["input_ids"].shape[1]:].tolist():
                stop = first_stop(tokens, stops)
                # The answer is what came before its stop (and the padding after it), whatever token the stop is.
                kept = tokens if stop is None else tokens[:tokens.index(stop)]
                answers.append(tokenizer.decode(kept, skip_special_tokens=True).strip())
                endings.append(None if stop is None else tokenizer.convert_ids_to_tokens(stop))
    finally:
        tokenizer.padding_side = side
    return answers, endings


def first_stop(tokens: list[int], stops: list[int]) -> int | None:
    """The first stop token of a generated sequence (what ended it), None when it ran out of tokens."""
    return next((token for token in tokens if token in stops), None)


def generate_answers(model, tokenizer, questions: list[str], **generate_kwargs) -> list[str]:
    """Greedy answers to `questions`, asked in ERNIE's chat format (see `generate_turns`)."""
    return generate_turns(model, tokenizer, questions, **generate_kwargs)[0]


def evaluate(model, tokenizer, dataset, limit: int | None = None, **generate_kwargs) -> Evaluation:
    """Scores the first `limit` rows of `dataset` (question/answer) whose reference states a clear final
    number (`data.clear_final_number`); the rows skipped before them are counted in `left_out`. An answer is
    right when its final number equals the reference's; `Evaluation.stopped` says whether it ended with
    ERNIE's end of turn, `endings` how each one ended."""
    from course_lib.data import answers_match, clear_final_number

    rows, left_out = [], 0
    for row in dataset:
        if limit is not None and len(rows) == limit:
            break
        if clear_final_number(row["answer"]) is None:
            left_out += 1
        else:
            rows.append(row)
    questions, references = [row["question"] for row in rows], [row["answer"] for row in rows]
    predictions, endings = generate_turns(model, tokenizer, questions, **generate_kwargs)
    correct = [answers_match(p, r) for p, r in zip(predictions, references)]
    return Evaluation(questions, references, predictions, correct, endings, left_out)


def side_by_side(before: Evaluation, after: Evaluation, n: int = 3, width: int = 300) -> str:
    """The first `n` questions with the reference, the answer before and the answer after fine-tuning."""
    def cut(text):
        return text if len(text) <= width else text[:width] + " ..."

    def verdict(right):
        return tr("right", "对") if right else tr("wrong", "错")

    blocks = []
    for i in range(min(n, len(before.questions))):
        blocks.append("\n".join([
            f"Q{i + 1}: {cut(before.questions[i])}",
            tr("  reference: ", "  参考答案：") + cut(before.references[i]),
            tr("  before [{}]: ", "  训练前 [{}]：").format(verdict(before.correct[i])) + cut(before.predictions[i]),
            tr("  after  [{}]: ", "  训练后 [{}]：").format(verdict(after.correct[i])) + cut(after.predictions[i]),
        ]))
    return "\n\n".join(blocks)
