"""Held-out evaluation on the tiny slice: batched greedy answers, where they stop, and how they are scored."""

import pytest

from course_lib import evaluation
from course_lib.evaluation import (Evaluation, evaluate, generate_answers, generate_turns, paired_test, proportion,
                                   side_by_side, stop_token_ids, wilson_interval)
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


def test_each_answer_says_how_it_ended(slice_and_questions, monkeypatch):
    """An answer's ending is the stop token it ended with, or None when it ran out of tokens. Made the end of turn,
    a token from inside an answer ends it there, one token earlier than the greedy answer went on."""
    import torch

    model, tokenizer, rows = slice_and_questions
    questions = [row["question"] for row in rows[:4]]
    stops = stop_token_ids(tokenizer)
    endings = generate_turns(model, tokenizer, questions, max_new_tokens=256, progress=False)[1]
    assert set(endings) <= set(tokenizer.convert_ids_to_tokens(stops))  # the stand-in stops by itself
    assert generate_turns(model, tokenizer, questions, max_new_tokens=2, progress=False)[1] == [None] * 4
    batch = tokenizer(evaluation.chat_prompts(tokenizer, questions[:1]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=256, do_sample=False, eos_token_id=stops,
                                pad_token_id=tokenizer.pad_token_id)
    greedy = output[0, batch["input_ids"].shape[1]:].tolist()
    k = next(i for i in range(2, len(greedy)) if greedy[i] not in greedy[:i] + stops)  # new to the answer there
    monkeypatch.setattr(evaluation, "END_OF_TURN", tokenizer.convert_ids_to_tokens(greedy[k]))
    assert greedy[k] in stop_token_ids(tokenizer)
    answers, endings = generate_turns(model, tokenizer, questions[:1], max_new_tokens=256, progress=False)
    assert endings == [evaluation.END_OF_TURN]
    assert answers == [tokenizer.decode(greedy[:k], skip_special_tokens=True).strip()]
    assert evaluation.first_stop([5, 9, 7, 2], [2, 7]) == 7
    assert evaluation.first_stop([5, 9], [2, 7]) is None


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
    assert len(result.questions) == len(result.predictions) == len(result.correct) == len(result.endings) == 4
    assert result.stopped == [ending == END_OF_TURN for ending in result.endings]
    assert result.references == [row["answer"] for row in rows[:4]] and result.left_out == 0
    from course_lib.data import answers_match

    assert result.correct == [answers_match(p, r) for p, r in zip(result.predictions, result.references)]


def test_evaluate_leaves_out_references_without_a_clear_final_number(slice_and_questions):
    import datasets

    model, tokenizer, rows = slice_and_questions
    unclear = [{"question": rows[0]["question"], "answer": "The sides are 3 cm and 4 cm."},
               {"question": rows[1]["question"], "answer": "So 3/4 of it is left."}]
    table = datasets.Dataset.from_list(unclear + rows)
    result = evaluate(model, tokenizer, table, limit=3, max_new_tokens=8, progress=False)
    assert result.left_out == 2 and result.questions == [row["question"] for row in rows[:3]]
    assert "2 rows left out" in result.summary()


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (1, 50, 0.0035, 0.1050),
    (25, 50, 0.3664, 0.6336),
])
def test_wilson_interval_matches_known_values(k, n, low, high):
    assert wilson_interval(k, n) == (pytest.approx(low, abs=5e-4), pytest.approx(high, abs=5e-4))


def test_paired_test_counts_only_the_discordant_questions():
    before = [True, True, False, False, False, False, False, True]
    after = [True, False, True, True, True, True, True, True]
    test = paired_test(before, after)
    assert (test.gained, test.lost, test.same) == (5, 1, 2)
    assert test.p_value == pytest.approx(2 * (1 + 6) / 2 ** 6)  # two-sided binomial tail of 1 in 6
    assert paired_test([False] * 5, [True] * 5).p_value == pytest.approx(0.0625)
    assert paired_test([False] * 10, [True] * 10).p_value == pytest.approx(2 / 1024)
    assert paired_test([True, False], [True, False]).p_value == 1.0  # nothing changed
    assert paired_test([True, False, True], [False, True, True]).p_value == 1.0
    assert "more than chance" in paired_test([False] * 10, [True] * 10).summary("right")
    assert "chance alone could explain" in test.summary("right")
    with pytest.raises(ValueError, match="same questions"):
        paired_test([True], [True, False])


def test_accuracy_stopped_and_summary():
    result = Evaluation(["q1", "q2", "q3", "q4"], ["1", "2", "3", "4"], ["1", "5", "3", "4"],
                        [True, False, True, True], [END_OF_TURN, END_OF_TURN, "</s>", END_OF_TURN])
    assert result.accuracy == 0.75 and result.stopped == [True, True, False, True]
    assert proportion(result.correct) == "3/4 = 75.0% (95% CI 30.1-95.4%)"
    assert result.summary() == (f"final number right 3/4 = 75.0% (95% CI 30.1-95.4%); stopped at {END_OF_TURN} "
                                f"3/4 = 75.0% (95% CI 30.1-95.4%); ended: 3 at {END_OF_TURN}, 1 at </s>")
    assert "1 out of tokens" in Evaluation(["q"], ["1"], ["1"], [True], [None]).summary()
    assert Evaluation([], [], [], []).accuracy == 0.0


def test_side_by_side_shows_reference_before_and_after():
    before = Evaluation(["What is 2 + 2?"], ["The answer is 4."], ["5"], [False])
    after = Evaluation(["What is 2 + 2?"], ["The answer is 4."], ["2 + 2 = 4.\nThe answer is 4."], [True])
    text = side_by_side(before, after, n=3)
    assert text.splitlines()[0] == "Q1: What is 2 + 2?"
    assert "before [wrong]: 5" in text and "after  [right]: 2 + 2 = 4." in text
    assert evaluation.side_by_side(before, after, n=1, width=3).endswith("2 + ...")


def test_in_chinese_the_summary_and_the_side_by_side_name_the_same_numbers(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    result = Evaluation(["q1", "q2"], ["1", "2"], ["1", "5"], [True, False], [END_OF_TURN, None], left_out=1)
    assert result.summary() == (f"最终数字正确 1/2 = 50.0%（95% 置信区间 9.5-90.5%）；停在 {END_OF_TURN} "
                                f"1/2 = 50.0%（95% 置信区间 9.5-90.5%）；结束方式：1 个停在 {END_OF_TURN}，1 个用完 token"
                                "；略去 1 行（参考答案里没有明确的最终数字）")
    assert "训练前 [错]：5" in side_by_side(result, result, n=2)
    assert paired_test([True, False], [True, True]).summary("最终数字正确").startswith(
        "最终数字正确：1 题仅训练后正确，0 题仅训练前正确，1 题前后相同；精确 McNemar 检验 p = 1：")
