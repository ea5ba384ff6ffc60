"""The sliders and the LoRA count behind them, checked against PEFT on the tiny ERNIE slice: each readout line says
which model or run it describes, agrees with the cells that read the slider, and follows the slider."""

import re

import pytest

from course_lib.budget import budget_readout
from course_lib.models import ModelChoice
from course_lib.widgets import (DESCRIPTION_WIDTH, learning_rate_slider, linear_shapes, lora_parameter_count,
                                rank_slider, steps_slider)

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TINY = ModelChoice("/work/tiny", "tiny", "offline")
T4_RUN = dict(model="baidu/ERNIE-4.5-0.3B-PT", r=16, batch=8, max_length=1024, packing=True, accumulation=1,
              load_in_4bit=False, example_tokens=145.0)


@pytest.fixture(scope="module")
def tiny_model():
    from course_lib.tiny_ernie import make_tiny_ernie

    model, _ = make_tiny_ernie("tiny", seed=0)
    return model


def text(box) -> str:
    """The readout as a learner reads it: tags dropped, one line per <div>."""
    return re.sub(r"<[^>]+>", "", box.readout.value.replace("</div>", "\n")).strip()


def test_linear_shapes_lists_the_targeted_layers_of_every_block(tiny_model):
    shapes = linear_shapes(tiny_model, TARGET_MODULES)
    layers = tiny_model.config.num_hidden_layers
    assert len(shapes) == 7 * layers
    by_name = {name: (fan_in, fan_out) for name, fan_in, fan_out in shapes}
    # The slice: hidden 128, 4 query heads and 2 key/value heads of 32, MLP 384.
    assert by_name["model.layers.0.self_attn.q_proj"] == (128, 128)
    assert by_name["model.layers.0.self_attn.k_proj"] == (128, 64)
    assert by_name["model.layers.1.mlp.down_proj"] == (384, 128)
    assert not any("lm_head" in name or "embed" in name for name in by_name)


@pytest.mark.parametrize("targets, r", [(TARGET_MODULES, 16), (["q_proj", "v_proj"], 8), (TARGET_MODULES, 3)])
def test_lora_parameter_count_matches_peft(targets, r):
    from peft import LoraConfig, get_peft_model

    from course_lib.tiny_ernie import make_tiny_ernie

    model, _ = make_tiny_ernie("tiny", seed=0)
    predicted = lora_parameter_count(linear_shapes(model, targets), r)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, task_type="CAUSAL_LM")
    trainable, _ = get_peft_model(model, config).get_nb_trainable_parameters()
    assert predicted == trainable


def test_lora_parameter_count_by_hand():
    assert lora_parameter_count([("a", 128, 64), ("b", 384, 128)], r=4) == 4 * (128 + 64) + 4 * (384 + 128)


def test_the_rank_readout_names_each_model_and_follows_the_slider(tiny_model):
    shapes = linear_shapes(tiny_model, TARGET_MODULES)
    total = sum(p.numel() for p in tiny_model.parameters())
    box = rank_slider(shapes, total, value=16, lora_alpha=32, loaded=TINY, t4_run={"model": T4_RUN["model"]})
    assert box.value == 16 and box.slider.options == (8, 16, 32, 64)  # the ranks the settings advise
    alpha, loaded, t4 = text(box).splitlines()
    assert loaded == (f"Loaded model, the tiny ERNIE-4.5 stand-in (offline): {lora_parameter_count(shapes, 16):,} "
                      f"trainable parameters in {len(shapes)} layers = "
                      f"{100 * lora_parameter_count(shapes, 16) / total:.2f}% of its {total:,}")
    assert t4.startswith("T4 run of ERNIE-4.5-0.3B (MODEL_NAME): T4 estimate")
    box.slider.value = 64
    assert box.value == 64
    alpha, loaded, t4 = text(box).splitlines()
    assert f"{lora_parameter_count(shapes, 64):,} trainable" in loaded
    assert budget_readout(model=T4_RUN["model"], r=64) in box.readout.value
    assert budget_readout(model=T4_RUN["model"], r=64) != budget_readout(model=T4_RUN["model"], r=16)


@pytest.mark.parametrize("lora_r, lora_alpha", [(16, 32), (16, 16), (12, 24)])
def test_the_readouts_lora_alpha_is_the_next_cells(lora_r, lora_alpha, tiny_model):
    """Notebook 2 reads the slider as `lora_alpha = LORA_ALPHA * r // LORA_R`: the readout must say the same."""
    box = rank_slider(linear_shapes(tiny_model, TARGET_MODULES), 1000, value=lora_r, lora_alpha=lora_alpha, loaded=TINY)
    assert lora_r in box.slider.options  # a rank that is not a power of two does not break the cell
    for r in box.slider.options:
        box.slider.value = r
        assert text(box).splitlines()[0].endswith(f"= {lora_alpha * r // lora_r}")


def test_a_hub_model_is_named_by_its_id(tiny_model):
    box = rank_slider(linear_shapes(tiny_model, TARGET_MODULES), 1000, value=16, lora_alpha=32,
                      loaded=ModelChoice("baidu/ERNIE-4.5-0.3B-PT", "hub", "the Hub is reachable"))
    assert "Loaded model, baidu/ERNIE-4.5-0.3B-PT:" in text(box)


def test_steps_are_counted_alike_here_and_on_the_t4_each_with_its_packing():
    box = steps_slider(60, batch_size=8, accumulation=1, gpus=1, tokens_per_example=145.0, dataset_rows=2000,
                       examples_per_row=1, t4_run=T4_RUN)
    here, t4, budget = text(box).splitlines()
    assert here == ("Here (1 device(s), 8 x 1 accumulation a step): 8 rows of 1 example (unpacked); one epoch of 2,000 "
                    "examples = 250 steps; 60 steps = 480 examples = 0.24 epochs = about 69,600 tokens")
    per_row = 1024 / 145.0  # the T4 run packs: a 1,024-token row holds about 7 examples
    assert t4 == (f"On a T4 (1 device, packing on): 8 packed rows of about {per_row:.1f} examples; one epoch of 2,000 "
                  f"examples = 36 steps; 60 steps = {round(60 * 8 * per_row):,} examples = "
                  f"{round(60 * 8 * per_row) / 2000:.2f} epochs = about {round(60 * 8 * per_row) * 145:,.0f} tokens")
    assert budget.startswith("T4 run of ERNIE-4.5-0.3B (MODEL_NAME): T4 estimate")
    box.slider.value = 600
    assert "600 steps = 4,800 examples = 2.40 epochs" in text(box)
    assert budget_readout(**T4_RUN, steps=600) in box.readout.value


def test_the_sliders_line_up_and_numbers_do_not_wrap():
    boxes = [learning_rate_slider(2e-4), steps_slider(60, 8, 1, 1, 145.0, 2000)]
    assert {box.slider.style.description_width for box in boxes} == {DESCRIPTION_WIDTH}
    assert len({box.slider.layout.width for box in boxes}) == 1
    assert all(box.readout.layout.margin.endswith(DESCRIPTION_WIDTH) for box in boxes)  # under the track
    assert "<b style='white-space: nowrap'>2.0e-04</b>" in boxes[0].readout.value
