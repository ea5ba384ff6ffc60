"""The training plumbing against the real libraries: the planned schedule against what a TRL trainer logs,
what a real collated batch trains on (padded and padding-free), checkpoint listing, and the two sliders."""

import math

import pytest
import torch

from course_lib import training
from course_lib.ernie import END_OF_TURN


def sft_config(tmp_path, **overrides):
    from trl import SFTConfig

    settings = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=60, learning_rate=2e-4,
                    lr_scheduler_type="linear", warmup_steps=5, logging_steps=1, save_strategy="no",
                    max_length=256, packing=False, assistant_only_loss=True, use_cpu=True, seed=3407,
                    report_to="none", disable_tqdm=True)
    return SFTConfig(**{**settings, **overrides})


def test_planned_linear_schedule_matches_the_formula(tmp_path):
    rates = training.planned_learning_rates(sft_config(tmp_path), 60)
    assert len(rates) == 60
    # warm-up: step s (1-based) uses (s - 1) / 5 of the peak, so step 1 updates with 0
    assert rates[:6] == pytest.approx([0.0, 4e-5, 8e-5, 1.2e-4, 1.6e-4, 2e-4])
    # then a linear decay that would reach 0 one step after the last
    for step in range(6, 61):
        assert rates[step - 1] == pytest.approx(2e-4 * (60 - (step - 1)) / 55)
    assert rates[-1] == pytest.approx(2e-4 / 55)


def test_planned_cosine_schedule_with_a_warmup_ratio(tmp_path):
    args = sft_config(tmp_path, lr_scheduler_type="cosine", warmup_steps=0.1)  # below 1: a share of the steps
    rates = training.planned_learning_rates(args, 40)
    assert args.get_warmup_steps(40) == 4
    assert max(rates) == pytest.approx(2e-4) and rates.index(max(rates)) == 4
    progress = (20 - 4) / (40 - 4)  # step 21 uses the rate after 20 scheduler steps
    assert rates[20] == pytest.approx(2e-4 * 0.5 * (1 + math.cos(math.pi * progress)))


def tiny_rows(n: int):
    import datasets

    from course_lib.data import bundled_rows, to_messages

    return datasets.Dataset.from_list([to_messages(row) | row for row in bundled_rows("train")[:n]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LoRA SFTTrainer on the tiny slice, trained for 12 steps, as notebook 4 sets it up (smaller)."""
    from peft import LoraConfig, get_peft_model
    from trl import SFTTrainer

    from course_lib.tiny_ernie import make_tiny_ernie

    model, tokenizer = make_tiny_ernie("tiny", seed=0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    args = sft_config(tmp_path_factory.mktemp("checkpoints"), max_steps=12, warmup_steps=3, logging_steps=1)
    rows = tiny_rows(64)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=rows.select_columns(["messages"]),
                         args=args)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.train()
    return trainer, tokenizer, rows, batch


def test_planned_rates_are_the_rates_the_trainer_logged(trained):
    trainer = trained[0]
    planned = training.planned_learning_rates(trainer.args, 12)
    logged = training.logged_learning_rates(trainer.state.log_history)
    assert sorted(logged) == list(range(1, 13))
    for step, rate in logged.items():
        assert rate == pytest.approx(planned[step - 1], abs=1e-12), step
    # and not the rate one step later: the comparison can tell the two apart
    assert max(abs(logged[s] - planned[s]) for s in range(1, 12)) > 1e-5


def test_first_example_of_a_padded_batch_trains_exactly_its_answer(trained):
    _, tokenizer, rows, batch = trained
    assert "attention_mask" in batch and batch["input_ids"].shape[0] == 4
    input_ids, labels = training.first_example(batch)
    assert len(input_ids) == len(labels) == int(batch["attention_mask"][0].sum())
    runs = training.label_runs(input_ids, labels)
    assert [trained_run for trained_run, _ in runs] == [False, True]  # prompt masked, then the answer
    prompt, answer = (tokenizer.decode(ids) for _, ids in runs)
    question = prompt.split("User: ", 1)[1].rsplit("\nAssistant:", 1)[0]
    row = rows[rows["question"].index(question)]
    assert answer == " " + row["answer"] + END_OF_TURN  # the tokenizer joins the space to the answer's first word


def test_first_example_of_a_padding_free_batch_stops_where_the_second_begins():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    # rows as SFTTrainer's dataset holds them after tokenizing: ids, and labels already masked to the answer
    examples = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
                {"input_ids": [9, 10, 11], "labels": [-100, 10, 11]}]
    padding_free = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    assert "attention_mask" not in padding_free and padding_free["input_ids"].shape == (1, 7)
    assert training.first_example(padding_free) == ([5, 6, 7, 8], [-100, -100, 7, 8])

    padded = DataCollatorForLanguageModeling(pad_token_id=0)(examples[::-1])
    assert padded["input_ids"].shape == (2, 4)
    assert training.first_example(padded) == ([9, 10, 11], [-100, 10, 11])


def test_label_runs_split_where_training_starts_and_stops():
    runs = training.label_runs([1, 2, 3, 4, 5, 6], [-100, -100, 3, 4, -100, 6])
    assert runs == [(False, [1, 2]), (True, [3, 4]), (False, [5]), (True, [6])]
    assert training.label_runs([], []) == []


def test_checkpoints_are_listed_by_step_not_by_name(tmp_path):
    for name in ("checkpoint-100", "checkpoint-20", "checkpoint-5", "checkpoint-final", "runs"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-7").write_text("a file, not a checkpoint")
    (tmp_path / "checkpoint-20" / "adapter_model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "checkpoint-20" / "sub").mkdir()
    (tmp_path / "checkpoint-20" / "sub" / "optimizer.pt").write_bytes(b"x" * 24)
    found = training.checkpoints(tmp_path)
    assert [(step, path.name) for step, path in found] == [(5, "checkpoint-5"), (20, "checkpoint-20"),
                                                          (100, "checkpoint-100")]
    assert training.checkpoints(tmp_path / "missing") == []


def test_a_trainer_checkpoint_is_found_with_its_step(tmp_path):
    from peft import LoraConfig, get_peft_model
    from trl import SFTTrainer

    from course_lib.tiny_ernie import make_tiny_ernie

    model, tokenizer = make_tiny_ernie("tiny", seed=0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    args = sft_config(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=3)
    SFTTrainer(model=model, processing_class=tokenizer, train_dataset=tiny_rows(16).select_columns(["messages"]),
               args=args).train()
    found = training.checkpoints(tmp_path)
    assert [step for step, _ in found] == [2, 4]
    assert (found[-1][1] / "adapter_model.safetensors").exists()


def test_steps_slider_readout_counts_batch_epochs_and_tokens():
    from course_lib.widgets import steps_slider

    box = steps_slider(60, batch_size=8, accumulation=2, gpus=2, tokens_per_example=150.0, dataset_rows=2000)
    assert box.value == 60
    text = box.readout.value
    assert "<b>32</b>" in text  # 8 x 2 x 2
    assert "one epoch of 2,000 examples = 63 steps" in text  # ceil(2000 / 32)
    assert "1,920 examples" in text and "0.96 epochs" in text and "288,000 tokens" in text
    box.slider.value = 125
    assert box.value == 125 and "4,000 examples" in box.readout.value and "2.00 epochs" in box.readout.value


def test_steps_slider_counts_packed_examples_per_row():
    from course_lib.widgets import steps_slider

    box = steps_slider(60, batch_size=8, accumulation=1, gpus=1, tokens_per_example=128.0, dataset_rows=2000,
                       examples_per_row=1024 / 128)
    text = box.readout.value
    assert "about 8 packed examples" in text
    assert "one epoch of 2,000 examples = 32 steps" in text  # ceil(2000 / 64)
    assert "3,840 examples" in text and "1.92 epochs" in text


@pytest.mark.parametrize("rate, word", [(2e-4, "usual"), (5e-3, "high"), (1e-5, "low")])
def test_learning_rate_slider_reads_out_its_value(rate, word):
    from course_lib.widgets import learning_rate_slider

    box = learning_rate_slider(rate)
    assert box.value == pytest.approx(rate)
    assert f"{rate:.1e}" in box.readout.value and word in box.readout.value


def test_planned_rates_leave_the_global_random_state_alone(tmp_path):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    training.planned_learning_rates(sft_config(tmp_path), 10)
    assert torch.equal(torch.rand(3), expected)
