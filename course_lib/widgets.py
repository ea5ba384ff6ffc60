"""Sliders that show, live, what a setting changes. A later cell reads `.value`, so a headless run (CI,
nbmake) simply takes the default. The sliders set values; the library calls that use them stay in the
notebook."""

from __future__ import annotations


def linear_shapes(model, target_modules) -> list[tuple[str, int, int]]:
    """(name, in_features, out_features) of every Linear layer whose name ends in one of `target_modules`."""
    import torch

    return [
        (name, module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in target_modules
    ]


def lora_parameter_count(shapes: list[tuple[str, int, int]], r: int) -> int:
    """LoRA adds A (r x in) and B (out x r) to each layer: r * (in + out) parameters."""
    return sum(r * (fan_in + fan_out) for _, fan_in, fan_out in shapes)


def _with_readout(slider, describe, budget=None):
    """A box holding `slider` and a line of text that `describe(value)` rewrites whenever it moves; `budget(value)`,
    when given, adds a second line (the T4 estimate of `course_lib.budget.budget_readout`)."""
    import ipywidgets as widgets

    def text(value):
        return describe(value) if budget is None else f"{describe(value)}<br>{budget(value)}"

    class SliderWithReadout(widgets.VBox):
        @property
        def value(self):
            return slider.value

    readout = widgets.HTML(text(slider.value))
    slider.observe(lambda change: setattr(readout, "value", text(change["new"])), names="value")
    box = SliderWithReadout([slider, readout])
    box.slider, box.readout = slider, readout
    return box


def rank_slider(shapes, total_parameters: int, value: int = 16, budget=None):
    """LoRA rank r, with the trainable parameters it gives and their share of the model."""
    import ipywidgets as widgets

    def describe(r):
        trainable = lora_parameter_count(shapes, r)
        return (f"r = {r}: <b>{trainable:,}</b> trainable parameters in {len(shapes)} layers = "
                f"<b>{100 * trainable / total_parameters:.2f}%</b> of the model's {total_parameters:,}; "
                f"lora_alpha = 2r = {2 * r}")

    # Powers of two, plus the settings' own rank if it is none (LORA_R = 12 must not break the cell).
    options = sorted({1, 2, 4, 8, 16, 32, 64, 128, value})
    slider = widgets.SelectionSlider(options=options, value=value, description="LoRA r")
    return _with_readout(slider, describe, budget)


def learning_rate_slider(value: float = 2e-4):
    """Learning rate on a log scale, with a word on what the value usually means for LoRA."""
    import ipywidgets as widgets

    def describe(lr):
        if lr > 1e-3:
            advice = "high for LoRA: expect a jumpy or exploding loss"
        elif lr < 2e-5:
            advice = "low for LoRA: the loss will fall slowly"
        else:
            advice = "the usual LoRA range (1e-4 to 5e-4 is typical)"
        return f"learning rate = {lr:.1e}: {advice}"

    slider = widgets.FloatLogSlider(value=value, base=10, min=-6, max=-2, step=0.1, description="learning rate",
                                    readout_format=".1e")
    return _with_readout(slider, describe)


def steps_slider(value: int, batch_size: int, accumulation: int, gpus: int, tokens_per_example: float,
                 dataset_rows: int, examples_per_row: float = 1.0, max_steps: int = 1000, budget=None):
    """Optimizer steps, with the effective batch and the examples, epochs and tokens they add up to.

    `gpus` counts the devices that each take `batch_size` rows per step (1 on a CPU); with packing, a row
    holds `examples_per_row` examples (max_length / tokens per example), without it exactly one."""
    import math

    import ipywidgets as widgets

    effective = batch_size * accumulation * gpus
    steps_per_epoch = math.ceil(dataset_rows / (effective * examples_per_row))

    def describe(steps):
        examples = round(steps * effective * examples_per_row)
        packed = f" rows of about {examples_per_row:.0f} packed examples" if examples_per_row > 1 else ""
        return (f"effective batch = {batch_size} per device x {accumulation} accumulation x {gpus} device(s) = "
                f"<b>{effective}</b>{packed}; one epoch of {dataset_rows:,} examples = {steps_per_epoch} steps; "
                f"{steps} steps = {examples:,} examples = <b>{examples / dataset_rows:.2f} epochs</b> = "
                f"about {examples * tokens_per_example:,.0f} tokens")

    slider = widgets.IntSlider(value=value, min=1, max=max(max_steps, value), step=1, description="max steps")
    return _with_readout(slider, describe, budget)
