"""Held-out evaluation on the tiny slice: batched greedy answers, where they stop, and how they are scored."""

import pytest

from course_lib import evaluation
from course_lib.evaluation import Evaluation, evaluate, generate_answers, side_by_side, stop_token_ids
from course_lib.ernie import END_OF_TURN


@pytest.fixture(scope="module")
def slice_and_questions():
    from course_lib.data import bundled_rows
    from course_lib.models import resolve_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(mode="tiny").name_or_path  # the pre-trained slice, as the notebooks load it
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    rows = bundled_rows("heldout")[:6]
    return model, tokenizer, rows


def test_one_answer_per_question_and_batches_answer_as_single_questions_do(slice_and_questions):
    model, tokenizer, rows = slice_and_questions
    questions = [row["question"] for row in rows]
    assert tokenizer.padding_side == "right"
    batched = generate_answers(model, tokenizer, questions, max_new_tokens=24, batch_size=4, progress=False)
    assert len(batched) == len(questions) and all(isinstance(answer, str) for answer in batched)
    assert tokenizer.padding_side == "right"  # restored after generating with left padding
    alone = [generate_answers(model, tokenizer, [q], max_new_tokens=24, progress=False)[0] for q in questions]
    # questions of different lengths share a batch: only left padding leaves every answer unchanged
    assert batched == alone


def test_right_padding_would_change_the_answers(slice_and_questions):
    """The check above can fail: generating after right padding gives different answers."""
    import torch

    model, tokenizer, rows = slice_and_questions
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": row["question"]}], tokenize=False,
                                             add_generation_prompt=True) for row in rows[:4]]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)  # right padding
    assert len(set(batch["attention_mask"].sum(1).tolist())) > 1  # lengths differ, so there is padding
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    right = [text.strip() for text in tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:],
                                                             skip_special_tokens=True)]
    left = generate_answers(model, tokenizer, [row["question"] for row in rows[:4]], max_new_tokens=24,
                            progress=False)
    assert right != left


def test_stop_tokens_are_end_of_text_and_end_of_turn(slice_and_questions):
    _, tokenizer, _ = slice_and_questions
    assert stop_token_ids(tokenizer) == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    assert stop_token_ids(tokenizer) == [2, 4]


def test_generation_stops_at_a_stop_token(slice_and_questions, monkeypatch):
    model, tokenizer, rows = slice_and_questions
    question = rows[0]["question"]
    full = generate_answers(model, tokenizer, [question], max_new_tokens=64, progress=False)[0]
    tokens = tokenizer.tokenize(" " + full)  # as generated: the first word carries the space after "Assistant:"
    stop = next(i for i in range(2, len(tokens)) if tokens[i] not in tokens[:i])
    # Make a token the answer writes the end of turn: the answer must end right before it.
    monkeypatch.setattr(evaluation, "END_OF_TURN", tokens[stop])
    assert tokenizer.convert_tokens_to_ids(tokens[stop]) in stop_token_ids(tokenizer)
    cut = generate_answers(model, tokenizer, [question], max_new_tokens=64, progress=False)[0]
    assert cut == tokenizer.convert_tokens_to_string(tokens[:stop]).strip() != full


def test_stop_tokens_without_an_end_of_turn_token():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(["no chat markers here"], trainers.BpeTrainer(special_tokens=["<unk>", "</s>"]))
    plain = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", eos_token="</s>")
    assert stop_token_ids(plain) == [plain.eos_token_id] == [1]


def test_evaluate_scores_the_final_number(slice_and_questions):
    import datasets

    model, tokenizer, rows = slice_and_questions
    table = datasets.Dataset.from_list(rows)
    result = evaluate(model, tokenizer, table, limit=4, max_new_tokens=48, progress=False)
    assert len(result.questions) == len(result.predictions) == len(result.correct) == 4
    assert result.references == [row["answer"] for row in rows[:4]]
    from course_lib.data import answers_match

    assert result.correct == [answers_match(p, r) for p, r in zip(result.predictions, result.references)]


def test_accuracy_and_summary():
    result = Evaluation(["q1", "q2", "q3", "q4"], ["1", "2", "3", "4"], ["1", "5", "3", "4"],
                        [True, False, True, True])
    assert result.accuracy == 0.75
    assert result.summary() == "3/4 correct = 75.0% exact match"
    assert Evaluation([], [], [], []).accuracy == 0.0


def test_side_by_side_shows_reference_before_and_after():
    before = Evaluation(["What is 2 + 2?"], ["The answer is 4."], ["5"], [False])
    after = Evaluation(["What is 2 + 2?"], ["The answer is 4."], ["2 + 2 = 4.\nThe answer is 4."], [True])
    text = side_by_side(before, after, n=3)
    assert text.splitlines()[0] == "Q1: What is 2 + 2?"
    assert "before [wrong]: 5" in text and "after  [right]: 2 + 2 = 4." in text
    assert evaluation.side_by_side(before, after, n=1, width=3).endswith("2 + ...")
