"""Sliders that show, live, what a setting changes. A later cell reads `.value`, so a headless run (CI,
nbmake) simply takes the default. The sliders set values; the library calls that use them stay in the
notebook. Each readout line says which model or run it describes: the model loaded here (offline, the tiny
stand-in) or the T4 run `course_lib.budget` estimates for the model MODEL_NAME names."""

from __future__ import annotations

import html

from course_lib.language import tr

DESCRIPTION_WIDTH = "110px"  # the same for every slider, so that their tracks line up under one another
SLIDER_WIDTH = "560px"
RANKS = (8, 16, 32, 64)  # the ranks the notebooks advise; the settings' own rank is added when it is another


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


def loaded_model_name(choice) -> str:
    """What a `models.ModelChoice` loaded, in words: the Hub id, or which offline stand-in."""
    return {"tiny": tr("the tiny ERNIE-4.5 stand-in (offline)", "ERNIE-4.5 的离线替身模型"),
            "random-0.3b": tr("ERNIE-4.5-0.3B's shape with random weights (offline)",
                              "ERNIE-4.5-0.3B 的结构，随机权重（离线）")}.get(choice.source, choice.name_or_path)


def t4_line(t4_run: dict, current=None, **changes) -> str:
    """The T4 estimate of `budget.budget_readout` for the run `t4_run` (its keywords) with `changes`, saying
    which model it is for."""
    from course_lib.budget import budget_readout, shape_of

    run = {**t4_run, **changes}
    label = html.escape(shape_of(run["model"]).label)
    return tr(f"<b>For {label}</b> (MODEL_NAME): ", f"<b>对于 {label}</b>（MODEL_NAME）：") + \
        budget_readout(current=current, **run)


def number(value) -> str:
    """A number that never wraps in the middle: 1,234,567."""
    return f"<b style='white-space: nowrap'>{value}</b>"


def _with_readout(slider, describe):
    """A box holding `slider` and the lines `describe(value)` returns, rewritten whenever it moves."""
    import ipywidgets as widgets

    def text(value):
        return "".join(f"<div>{line}</div>" for line in describe(value))

    class SliderWithReadout(widgets.VBox):
        @property
        def value(self):
            return slider.value

    slider.style.description_width = DESCRIPTION_WIDTH
    slider.layout = widgets.Layout(width=SLIDER_WIDTH)
    readout = widgets.HTML(text(slider.value), layout=widgets.Layout(margin=f"0 0 12px {DESCRIPTION_WIDTH}"))
    slider.observe(lambda change: setattr(readout, "value", text(change["new"])), names="value")
    box = SliderWithReadout([slider, readout])
    box.slider, box.readout = slider, readout
    return box


def rank_slider(shapes, total_parameters: int, value: int, lora_alpha: int, loaded, t4_run: dict | None = None,
                current=None):
    """LoRA rank r, with the lora_alpha the next cell derives from it (the settings' ratio: lora_alpha * r / value),
    the trainable parameters of the `loaded` model (a `models.ModelChoice`) at that rank, and, with `t4_run`
    (`budget.estimate`'s keywords), the T4 estimate of that run at that rank."""
    import ipywidgets as widgets

    def describe(r):
        trainable = lora_parameter_count(shapes, r)
        name, share = html.escape(loaded_model_name(loaded)), f"{100 * trainable / total_parameters:.2f}%"
        lines = [f"lora_alpha = LORA_ALPHA x r / LORA_R = {lora_alpha} x {r} / {value} = {number(lora_alpha * r // value)}",
                 tr(f"<b>Loaded model</b>, {name}: {number(f'{trainable:,}')} trainable parameters in {len(shapes)} "
                    f"layers = {number(share)} of its {number(f'{total_parameters:,}')}",
                    f"<b>已加载的模型</b>，{name}：{number(f'{trainable:,}')} 个可训练参数，分布在 {len(shapes)} "
                    f"层中，占比 {number(share)}（共 {number(f'{total_parameters:,}')} 个参数）")]
        return lines + ([t4_line(t4_run, current, r=r)] if t4_run else [])

    options = sorted({*RANKS, value})  # LORA_R = 12 must not break the cell
    slider = widgets.SelectionSlider(options=options, value=value, description=tr("LoRA rank r", "LoRA 秩 r"))
    return _with_readout(slider, describe)


def learning_rate_slider(value: float = 2e-4):
    """Learning rate on a log scale, with a word on what the value usually means for LoRA."""
    import ipywidgets as widgets

    def describe(lr):
        if lr > 1e-3:
            advice = tr("high for LoRA (its usual range is 1e-4 to 5e-4): watch the loss for spikes; the tiny "
                        "stand-in takes more (exercise 1)",
                        "对 LoRA 来说偏高（常用范围是 1e-4 到 5e-4）：留意损失是否突然飙升；离线替身模型能承受更高的"
                        "学习率（练习 1）")
        elif lr < 2e-5:
            advice = tr("low for LoRA: the loss will fall slowly", "对 LoRA 来说偏低：损失会下降得很慢")
        else:
            advice = tr("the usual LoRA range (1e-4 to 5e-4 is typical)", "LoRA 的常用范围（通常为 1e-4 到 5e-4）")
        return [tr(f"learning rate = {number(f'{lr:.1e}')}: {advice}", f"学习率 = {number(f'{lr:.1e}')}：{advice}")]

    slider = widgets.FloatLogSlider(value=value, base=10, min=-6, max=-2, step=0.1, description=tr("learning rate", "学习率"),
                                    readout_format=".1e")
    return _with_readout(slider, describe)


def steps_slider(value: int, batch_size: int, accumulation: int, gpus: int, tokens_per_example: float,
                 dataset_rows: int, examples_per_row: float = 1.0, max_steps: int = 1000,
                 t4_run: dict | None = None, current=None):
    """Optimizer steps, with the effective batch and the examples, epochs and tokens they add up to here, and,
    with `t4_run` (`budget.estimate`'s keywords), the same count for that T4 run and its estimate.

    `gpus` counts the devices that each take `batch_size` rows per step (1 on a CPU); with packing, a row
    holds `examples_per_row` examples (max_length / tokens per example), without it exactly one. Here and on
    the T4 are counted alike, each with its own packing: Unsloth's CPU backend turns packing off."""
    import math

    import ipywidgets as widgets

    effective = batch_size * accumulation * gpus

    def epochs(steps, per_row, per_step):
        examples = round(steps * per_step * per_row)
        packed = (tr(f"packed rows of about {per_row:.1f} examples", f"个打包行，每行约 {per_row:.1f} 个样本")
                  if per_row > 1 else tr("rows of 1 example (unpacked)", "行，每行 1 个样本（不打包）"))
        epoch_steps = number(math.ceil(dataset_rows / (per_step * per_row)))
        shown, epoch_count = number(f"{examples:,}"), number(f"{examples / dataset_rows:.2f}")
        tokens = number(f"{examples * tokens_per_example:,.0f}")
        return tr(f"{per_step} {packed}; one epoch of {dataset_rows:,} examples = {epoch_steps} steps; {steps} steps = "
                  f"{shown} examples = {epoch_count} epochs = about {tokens} tokens",
                  f"{per_step} {packed}；{dataset_rows:,} 个样本的一个 epoch = {epoch_steps} 步；{steps} 步 = "
                  f"{shown} 个样本 = {epoch_count} 个 epoch = 约 {tokens} 个 token")

    def describe(steps):
        lines = [tr(f"<b>Here</b> ({gpus} device(s), {batch_size} x {accumulation} accumulation a step): ",
                    f"<b>本机</b>（{gpus} 个设备，每步 {batch_size} x {accumulation} 梯度累积）：")
                 + epochs(steps, examples_per_row, effective)]
        if t4_run:
            t4_per_row = t4_run["max_length"] / t4_run["example_tokens"] if t4_run["packing"] else 1
            t4_batch = t4_run["batch"] * t4_run.get("accumulation", 1)
            packing = tr("on", "开") if t4_run["packing"] else tr("off", "关")
            lines += [tr(f"<b>On a T4</b> (1 device, packing {packing}): ", f"<b>在 T4 上</b>（1 个设备，打包：{packing}）：")
                      + epochs(steps, t4_per_row, t4_batch), t4_line(t4_run, current, steps=steps)]
        return lines

    slider = widgets.IntSlider(value=value, min=1, max=max(max_steps, value), step=1, description=tr("max steps", "最大步数"))
    return _with_readout(slider, describe)
