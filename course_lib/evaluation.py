"""Held-out evaluation: greedy answers, batched, and exact match of the final number."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Evaluation:
    questions: list[str]
    references: list[str]
    predictions: list[str]
    correct: list[bool]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0

    def summary(self) -> str:
        return f"{sum(self.correct)}/{len(self.correct)} correct = {100 * self.accuracy:.1f}% exact match"


from course_lib.ernie import END_OF_TURN


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: the tokenizer's end of text and, where the vocabulary has it as one
    token, ERNIE's end of turn, which is what a fine-tuned model writes after its answer."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id and end_of_turn not in stops:
        stops.append(end_of_turn)
    return stops


def generate_answers(model, tokenizer, questions: list[str], max_new_tokens: int = 256, batch_size: int = 16,
                     progress: bool = True) -> list[str]:
    """Greedy answers to `questions`, asked in ERNIE's chat format, in batches; each stops at a token of
    `stop_token_ids` or after `max_new_tokens`."""
    import torch
    from tqdm.auto import tqdm

    from course_lib.chat_format import generation_prompt

    prompts = [generation_prompt(tokenizer, [{"role": "user", "content": q}]) for q in questions]
    # A decoder-only model continues from the last token, so pad on the left; restore the trainer's side after.
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer)
    answers = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                        pad_token_id=tokenizer.pad_token_id)
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return answers


def evaluate(model, tokenizer, dataset, limit: int | None = None, **generate_kwargs) -> Evaluation:
    """Exact match of the final numeric answer on `dataset` (question/answer rows)."""
    from course_lib.data import answers_match

    rows = dataset if limit is None else dataset.select(range(min(limit, len(dataset))))
    questions, references = list(rows["question"]), list(rows["answer"])
    predictions = generate_answers(model, tokenizer, questions, **generate_kwargs)
    correct = [answers_match(p, r) for p, r in zip(predictions, references)]
    return Evaluation(questions, references, predictions, correct)


def side_by_side(before: Evaluation, after: Evaluation, n: int = 3, width: int = 300) -> str:
    """The first `n` questions with the reference, the answer before and the answer after fine-tuning."""
    def cut(text):
        return text if len(text) <= width else text[:width] + " ..."

    blocks = []
    for i in range(min(n, len(before.questions))):
        blocks.append("\n".join([
            f"Q{i + 1}: {cut(before.questions[i])}",
            f"  reference: {cut(before.references[i])}",
            f"  before [{'right' if before.correct[i] else 'wrong'}]: {cut(before.predictions[i])}",
            f"  after  [{'right' if after.correct[i] else 'wrong'}]: {cut(after.predictions[i])}",
        ]))
    return "\n\n".join(blocks)
