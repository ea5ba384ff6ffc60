"""The rank slider and the LoRA count behind it, checked against PEFT on the tiny ERNIE slice."""

import pytest

from course_lib.widgets import linear_shapes, lora_parameter_count, rank_slider

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tiny_model():
    from course_lib.tiny_ernie import make_tiny_ernie

    model, _ = make_tiny_ernie("tiny", seed=0)
    return model


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


def test_rank_slider_value_and_readout_follow_the_slider(tiny_model):
    shapes = linear_shapes(tiny_model, TARGET_MODULES)
    total = sum(p.numel() for p in tiny_model.parameters())
    box = rank_slider(shapes, total, value=16)
    assert box.value == 16
    assert f"{lora_parameter_count(shapes, 16):,}" in box.readout.value
    first = box.readout.value

    box.slider.value = 64
    assert box.value == 64
    assert box.readout.value != first
    assert f"{lora_parameter_count(shapes, 64):,}" in box.readout.value
    assert "lora_alpha = 2r = 128" in box.readout.value


def test_rank_slider_accepts_a_rank_that_is_not_a_power_of_two(tiny_model):
    box = rank_slider(linear_shapes(tiny_model, TARGET_MODULES), 1000, value=12)
    assert box.value == 12
    assert 12 in box.slider.options


def test_a_budget_line_follows_the_slider():
    from course_lib.budget import budget_readout
    from course_lib.widgets import steps_slider

    def budget(steps):
        return budget_readout(r=16, batch=8, max_length=1024, packing=True, steps=steps)

    box = steps_slider(60, batch_size=8, accumulation=1, gpus=1, tokens_per_example=145.0, dataset_rows=2000,
                       budget=budget)
    assert budget(60) in box.readout.value and "T4 estimate" in box.readout.value
    box.slider.value = 600
    assert budget(600) in box.readout.value and budget(600) != budget(60)
