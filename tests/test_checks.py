"""course_lib.checks: every impossible setting is refused by name; the chat-template and label guards on the tiny
slice's real tokenizer and on real batches of TRL's SFTTrainer, built as notebook 4 builds it."""

import math

import datasets
import pytest
import torch

from course_lib.checks import check_chat_template, check_labels, check_training_settings, label_counts, stop_if
from course_lib.data import bundled_rows, to_messages
from course_lib.ernie import TRAINING_CHAT_TEMPLATE
from course_lib.tiny_ernie import ensure_tiny_ernie

COURSE = dict(r=16, lora_alpha=32, learning_rate=2e-4, max_steps=60, batch_size=8, grad_accumulation=1)


def test_the_course_settings_pass():
    assert check_training_settings(**COURSE) == []
    assert check_training_settings(**{**COURSE, "max_steps": -1}) == []  # train epochs instead
    assert stop_if([], "anywhere") is None


@pytest.mark.parametrize("change, expected", [
    (dict(r=0), "LORA_R = 0 must be at least 1. The adapter rank: use 8, 16"),
    (dict(r=-8), "LORA_R = -8 must be at least 1"),
    (dict(r=16.0), "LORA_R = 16.0 is not a whole number: write 16"),
    (dict(r=2.5), "LORA_R = 2.5 is not a whole number. The adapter rank"),
    (dict(r="16"), "LORA_R = '16' is text; write the number without quotes"),
    (dict(r=True), "LORA_R = True is a bool, not a number"),
    (dict(lora_alpha=0), "LORA_ALPHA = 0: the update is scaled by alpha / r, so 0 switches LoRA off"),
    (dict(lora_alpha=-32), "LORA_ALPHA = -32: the update is scaled by alpha / r"),
    (dict(learning_rate=0), "LEARNING_RATE = 0: with 0 nothing is learned"),
    (dict(learning_rate=-2e-4), "LEARNING_RATE = -0.0002: with 0 nothing is learned, below 0 the loss is pushed up"),
    (dict(learning_rate=0.05), "LEARNING_RATE = 0.05 is far too high for LoRA (above 0.01): Adam moves every"),
    (dict(learning_rate=2e4), "LEARNING_RATE = 20000 is far too high for LoRA"),
    (dict(learning_rate=math.nan), "LEARNING_RATE is nan"),
    (dict(learning_rate="2e-4"), "LEARNING_RATE = '2e-4' is text"),
    (dict(max_steps=0), "MAX_STEPS = 0 must be at least 1. Optimizer updates: use a positive count (the course "
                        "uses 60), or -1"),
    (dict(max_steps=-5), "MAX_STEPS = -5 must be at least 1"),
    (dict(max_steps=None), "MAX_STEPS = None: it needs a number"),
    (dict(batch_size=0), "BATCH_SIZE = 0 must be at least 1. Examples per device per step"),
    (dict(batch_size=2.5), "BATCH_SIZE = 2.5 is not a whole number"),
    (dict(grad_accumulation=0), "GRAD_ACCUMULATION = 0 must be at least 1"),
    (dict(lora_dropout=1.0), "LORA_DROPOUT = 1.0 is the share of inputs dropped: it must be at least 0 and below 1"),
    (dict(max_length=0), "MAX_LENGTH = 0 must be at least 1"),
])
def test_each_bad_setting_is_named_with_what_to_use(change, expected):
    with pytest.raises(ValueError) as error:
        stop_if(check_training_settings(**{**COURSE, **change}), "in the settings cell")
    print(error.value)
    assert expected in str(error.value)
    assert str(error.value).startswith("1 problem to fix in the settings cell:\n- ")


def test_a_learning_rate_typo_gets_a_suggestion_and_the_usual_range():
    with pytest.raises(ValueError) as error:
        stop_if(check_training_settings(**{**COURSE, "learning_rate": 2e4}), "in the settings cell")
    assert "instead of falling (did you mean 2e-4?). LoRA's usual range is 1e-4 to 5e-4" in str(error.value)
    with pytest.raises(ValueError) as error:
        stop_if(check_training_settings(**{**COURSE, "learning_rate": 0.05}), "in the settings cell")
    assert "did you mean" not in str(error.value) and "falling. LoRA's usual" in str(error.value)
    assert check_training_settings(**{**COURSE, "learning_rate": 1e-2}) == []  # high, but at the limit


def test_several_bad_settings_are_listed_together():
    with pytest.raises(ValueError) as error:
        stop_if(check_training_settings(r=0, lora_alpha=0, learning_rate=0, max_steps=0, batch_size=0,
                                        grad_accumulation=0), "in the settings cell")
    print(error.value)
    assert str(error.value).startswith("6 problems to fix")
    assert all(name in str(error.value) for name in ("LORA_R", "LORA_ALPHA", "LEARNING_RATE", "MAX_STEPS",
                                                     "BATCH_SIZE", "GRAD_ACCUMULATION"))


# The chat template and the labels, on the tiny slice loaded as notebook 4 loads the model.

NO_MARKERS = TRAINING_CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
CHATML = ("{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\n' -}}"
          "{%- if message['role'] == 'assistant' -%}{% generation %}{{- message['content'] + '<|im_end|>\n' -}}"
          "{% endgeneration %}{%- else -%}{{- message['content'] + '<|im_end|>\n' -}}{%- endif -%}{%- endfor -%}")
WHOLE_TURN = TRAINING_CHAT_TEMPLATE.replace("{{- 'Assistant: ' -}}{% generation %}",
                                         "{% generation %}{{- 'Assistant: ' -}}")  # the prompt's end trained too


@pytest.fixture(scope="module")
def model_and_tokenizer():
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(str(ensure_tiny_ernie("tiny")), max_seq_length=256,
                                                         dtype=torch.float32, load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             random_state=3407)
    return model, tokenizer


@pytest.fixture()
def tokenizer(model_and_tokenizer):
    tokenizer = model_and_tokenizer[1]
    yield tokenizer
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE  # tests below change it


def make_trainer(model_and_tokenizer, tmp_path, train_dataset=None, **settings):
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = model_and_tokenizer
    if train_dataset is None:
        train_dataset = datasets.Dataset.from_list([to_messages(row) for row in bundled_rows("train")[:16]])
    args = SFTConfig(**{**dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, max_length=256,
                               use_cpu=True, assistant_only_loss=True, report_to="none", disable_tqdm=True),
                        **settings})
    return SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train_dataset, args=args)


def test_the_course_template_passes(tokenizer):
    assert check_chat_template(tokenizer) == []


def test_a_template_without_generation_markers_is_stopped_with_the_fix(tokenizer, model_and_tokenizer, tmp_path):
    tokenizer.chat_template = NO_MARKERS
    with pytest.raises(ValueError) as error:
        stop_if(check_chat_template(tokenizer), "before training")
    print(error.value)
    assert "no {% generation %} ... {% endgeneration %} markers" in str(error.value)
    assert "tokenizer.chat_template = course_lib.ernie.TRAINING_CHAT_TEMPLATE" in str(error.value)
    # what TRL itself says, later, when the trainer is built: the cryptic message the guard replaces
    with pytest.raises(ValueError, match="The chat template is not training-compatible"):
        make_trainer(model_and_tokenizer, tmp_path)
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE  # the fix the message gives
    assert check_chat_template(tokenizer) == []


def test_a_template_without_ernies_markers_is_stopped(tokenizer):
    tokenizer.chat_template = CHATML
    with pytest.raises(ValueError) as error:
        stop_if(check_chat_template(tokenizer), "before training")
    print(error.value)
    assert "does not write ERNIE's <|begin_of_sentence|> and <|end_of_sentence|>" in str(error.value)


def test_markers_around_more_than_the_answer_are_stopped(tokenizer):
    tokenizer.chat_template = WHOLE_TURN
    with pytest.raises(ValueError) as error:
        stop_if(check_chat_template(tokenizer), "before training")
    print(error.value)
    assert "surround 'Assistant: 2 + 3 = 5." in str(error.value)


def test_no_template_at_all_is_stopped(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        stop_if(check_chat_template(tokenizer), "before training")


def test_a_real_batch_and_dataset_of_the_course_setup_pass(model_and_tokenizer, tmp_path):
    trainer = make_trainer(model_and_tokenizer, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    assert check_labels(batch) == [] and check_labels(trainer.train_dataset) == []
    counts = label_counts(batch)
    print(counts)
    assert (counts.trained, counts.real) == (int((batch["labels"] != -100).sum()), int(batch["attention_mask"].sum()))
    rows = trainer.train_dataset
    everything = label_counts(rows)
    assert everything.trained == sum(label != -100 for row in rows["labels"] for label in row)
    assert (everything.real, everything.examples) == (sum(map(len, rows["input_ids"])), 16)


def test_training_every_token_is_stopped(model_and_tokenizer, tmp_path):
    trainer = make_trainer(model_and_tokenizer, tmp_path, assistant_only_loss=False)
    batch = next(iter(trainer.get_train_dataloader()))
    with pytest.raises(ValueError) as error:
        stop_if(check_labels(batch), "before training")
    print(error.value)
    assert "tokens is trained, questions and chat markers included" in str(error.value)
    assert "assistant_only_loss=True" in str(error.value)
    assert check_labels(batch, answers_only=False) == []


def test_a_batch_with_no_trained_token_is_stopped(model_and_tokenizer, tmp_path):
    """A learner's own tokenized data whose masking went wrong: TRL keeps a given `labels` column, and with
    max_length=None it filters nothing, so every label reaches the batch as -100 and training 'works' at loss 0."""
    model, tokenizer = model_and_tokenizer
    conversations = [to_messages(row)["messages"] for row in bundled_rows("train")[:8]]
    ids = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] for c in conversations]
    masked = datasets.Dataset.from_dict({"input_ids": ids, "labels": [[-100] * len(i) for i in ids]})
    trainer = make_trainer(model_and_tokenizer, tmp_path, masked, max_length=None, assistant_only_loss=False)
    batch = next(iter(trainer.get_train_dataloader()))
    with pytest.raises(ValueError) as error:
        stop_if(check_labels(batch), "before training")
    print(error.value)
    assert "no token is trained: every label of these 4 examples is -100" in str(error.value)
    with pytest.raises(ValueError, match="no token is trained"):
        stop_if(check_labels(trainer.train_dataset), "before training")
    # what happens without the guard: a "successful" run that learned nothing
    assert trainer.train().training_loss == 0.0


def test_an_empty_trainer_dataset_is_explained(model_and_tokenizer, tmp_path):
    """max_length shorter than every question: TRL drops every example, and PyTorch's own error is cryptic."""
    trainer = make_trainer(model_and_tokenizer, tmp_path, max_length=8)
    assert len(trainer.train_dataset) == 0
    with pytest.raises(ValueError, match="the training dataset is empty.*raise max_length"):
        stop_if(check_labels(trainer.train_dataset), "before training")
    with pytest.raises(ValueError, match="num_samples=0"):
        trainer.get_train_dataloader()


def test_assistant_masks_of_a_template_without_markers_are_all_zero_and_stopped(tokenizer):
    conversations = [to_messages(row)["messages"] for row in bundled_rows("train")[:4]]

    def encoded(template):
        tokenizer.chat_template = template
        rows = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
                for c in conversations]
        return datasets.Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                                           "assistant_masks": [r["assistant_masks"] for r in rows]})

    with pytest.raises(ValueError, match="no token is trained"):
        stop_if(check_labels(encoded(NO_MARKERS)), "before training")
    assert check_labels(encoded(TRAINING_CHAT_TEMPLATE)) == []
    assert label_counts(encoded(TRAINING_CHAT_TEMPLATE)).untrained_examples == 0


def test_examples_cut_before_their_answer_are_counted_in_a_batch():
    from transformers import BatchEncoding

    labels = torch.tensor([[-100, -100, 5, 6], [-100, -100, -100, -100]])
    batch = BatchEncoding({"input_ids": labels.clamp(min=0), "labels": labels,
                           "attention_mask": torch.ones_like(labels)})  # what transformers' collators return
    assert check_labels(batch) == []
    assert str(label_counts(batch)) == ("2 of 8 real tokens in 2 examples are trained (25%; padding is not counted); "
                                        "1 of them train nothing (cut by max_length before their answer, or masked "
                                        "wrongly)")


def test_labels_of_real_collated_batches():
    """TRL's own collator, padded and padding-free: all masked, partly trained, and every real token trained. The
    last is only visible when padding is left out of the count (the padded rows' -100s are not "masked" tokens)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    masked = [{"input_ids": [5, 6, 7], "labels": [-100, -100, -100]}, {"input_ids": [8, 9], "labels": [-100, -100]}]
    partly = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [-100, -100]}]
    everything = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    for padding_free in (False, True):
        collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=padding_free)
        (problem,) = check_labels(collate(masked))
        assert "no token is trained" in problem.what
        assert check_labels(collate(partly)) == []
        (problem,) = check_labels(collate(everything))
        assert "every one of the 5 tokens is trained" in problem.what
        assert check_labels(collate(everything), answers_only=False) == []
        assert label_counts(collate(partly)).trained == 2 and label_counts(collate(partly)).real == 5


def test_settings_problems_speak_chinese_and_still_name_the_setting(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    (problem,) = check_training_settings(**{**COURSE, "r": "16"})
    assert problem.what == "LORA_R = '16' 是文本；请去掉引号，直接写数字" and "16" in problem.fix
    (problem,) = check_training_settings(**{**COURSE, "learning_rate": 2e4})
    assert problem.what.startswith("LEARNING_RATE = 20000 对 LoRA 来说太高了") and "2e-4 吗" in problem.what
    with pytest.raises(ValueError, match=r"^有 1 个问题需要解决（in the settings cell）：\n- LEARNING_RATE = 20000"):
        stop_if([problem], "in the settings cell")
