"""How much GPU memory and time will a training run take? An estimate for the sliders, from a formula whose
constants were fitted to the course's own GPU measurements.

Everything here is an ESTIMATE. The measurements are from one H200 (`bench/RESULTS.md`,
`bench/h200-2026-11-28/results.jsonl`: ERNIE-4.5-0.3B's shape, Unsloth, LoRA on all seven projections,
adamw_8bit, gradient checkpointing). No T4 was measured: T4 times are the H200's scaled by published
throughput, and T4 memory assumes that memory does not depend on the GPU (same kernels, same batch).

    peak = weights + LoRA states + activations (tokens in flight x cost per token) + workspace + CUDA context
    time = warm-up + steps x accumulation x max(step floor, tokens per micro-batch / token rate)
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from course_lib import defaults
from course_lib.language import tr

GIB = 2**30

# ---- constants measured on the H200, 2026-11-28 (bench/RESULTS.md; raw: bench/h200-2026-11-28/results.jsonl) ----
# Memory is torch's peak *reserved* memory (max_memory_reserved), as the benchmark and env.memory() report it.
# MEASURED_RUNS (end of this block) are the six Unsloth runs these constants were fitted to; tests re-check them.
WORKSPACE_GIB = 0.28  # fixed cost beyond weights + LoRA: the intercept of the two packed 16-bit runs (1.86, 2.79 GiB)
PACKED_MIB_PER_TOKEN = 0.235  # slope between the packed runs: 1x4096 (3,715 tokens, 1.86 GiB), 8x1024 (7,785, 2.79)
# Unpacked batches cost more per real token, and the two unpacked runs disagree with each other: batch 8
# (1,174 tokens, 1.33 GiB) and batch 16 (2,359 tokens, 2.73 GiB) give 0.28 and 0.75 MiB/token over the packed
# intercept. 0.51 splits the difference: each of the two is reproduced within 20%, no better.
UNPACKED_MIB_PER_TOKEN = 0.51
FOUR_BIT_EXTRA_GIB = 0.10  # 4-bit saved less than its weights: 1.30 vs 1.33 GiB unpacked, 1.67 vs 1.86 packed
PACKED_FILL = 0.95  # real tokens per packed slot: 7,785 of 8 x 1,024 in the course default's run (BFD packing)
EXAMPLE_TOKENS = 145  # median tokens of a bundled word problem in ERNIE's chat format (slice tokenizer)
H200_TOKENS_PER_S = 47_362  # the course default's throughput (bf16, packed 8 x 1024): the most any run moved
STEP_FLOOR_S = 0.15  # a micro-batch took 0.14-0.16 s however few tokens it held (1,174 to 7,785): launch overhead
WARMUP_S = 40  # Unsloth's first step compiles: 26-46 s measured; paid once per run
FOUR_BIT_SLOWDOWN = 1.05  # 4-bit / 16-bit seconds per step: 0.174/0.162 unpacked, 1.143/1.110 tutorial
# (label, 4-bit?, packed?, batch, max_length, accumulation, real tokens per micro-batch, peak reserved GiB, s/step)
MEASURED_RUNS = [
    ("batch 8 unpacked, 16-bit", False, False, 8, 1024, 1, 1_173.7, 1.330, 0.162),
    ("batch 8 unpacked, 4-bit", True, False, 8, 1024, 1, 1_173.7, 1.299, 0.174),
    ("tutorial 1 x 4096 packed x 8, 16-bit", False, True, 1, 4096, 8, 3_714.5, 1.861, 1.110),
    ("tutorial 1 x 4096 packed x 8, 4-bit", True, True, 1, 4096, 8, 3_714.5, 1.674, 1.143),
    ("batch 16 unpacked, 16-bit", False, False, 16, 1024, 1, 2_359.3, 2.734, 0.136),
    ("course default 8 x 1024 packed, 16-bit", False, True, 8, 1024, 1, 7_785.4, 2.795, 0.164),
]

# ---- constants NOT measured here (rules of thumb, named so they can be replaced by measurements) ----
CUDA_CONTEXT_GIB = 0.5  # CUDA context + cuBLAS workspaces: outside torch's reserved memory, visible in nvidia-smi
LORA_BYTES_PER_PARAM = 10  # fp32 adapter weight (4) + fp32 gradient (4) + two 8-bit Adam moments (2)
BNB_4BIT_BYTES = 0.52  # NF4: 0.5 byte per weight + double-quantized absmax per block of 64 (bitsandbytes)
# Cross-check of the weights terms: notebook 1 on the H200 (load + a short generation, bench/RESULTS.md) peaked
# at 0.78 GiB in 16-bit and 0.44 GiB in 4-bit; the terms give 0.67 and 0.32 for the weights alone.
# Without gradient checkpointing every layer keeps its activations: ~34 x hidden bytes per token per layer in
# 16-bit (Korthikanti et al. 2022, with FlashAttention-style attention); checkpointing keeps ~2 x hidden.
NO_CHECKPOINT_BYTES_PER_TOKEN_LAYER_HIDDEN = 32
HEADROOM = 0.10  # warn when less than 10% of the card would be left

# Dense fp16/bf16 tensor-core throughput from the vendor's data sheets, in TFLOPS, and the memory torch reports.
# Times on another GPU = the H200's measured rate x (its TFLOPS / the H200's). The H200 run was bound by launch
# overhead (~10% of its peak), so this scaling is pessimistic for a T4: treat T4 times as "at most about".
TFLOPS = {"T4": 65, "L4": 121, "A100": 312, "A100-80GB": 312, "H100": 989, "H200": 989}
T4_GIB = 14.74  # total memory torch reports for Colab's T4 (Unsloth's notebooks print "Max memory = 14.741 GB")
H200_GIB = 140.4  # 143,771 MiB, the benchmark machine


@dataclass(frozen=True)
class Shape:
    label: str
    params: float  # all parameters
    embedding_params: float  # kept in 16-bit by 4-bit loading (the tied lm_head reads them too)
    active_params: float  # parameters one token multiplies through (the MoE routes each token to 6 of 64 experts)
    lora_params_per_rank: int  # LoRA parameters per unit of r that the course's seven names train (Unsloth, GPU)
    layers_x_hidden: int  # scales activations per token relative to the measured 0.3B
    expert_params: float = 0  # routed experts: fused 3-D tensors, which 4-bit loading may or may not quantize


SHAPES = {
    # ERNIE-4.5-0.3B: 360.7M parameters (bench/RESULTS.md); r=16 on the 7 projections = 6,045,696 (notebook 2).
    "0.3b": Shape("ERNIE-4.5-0.3B", 360.7e6, 103_424 * 1024, 360.7e6, 6_045_696 // 16, 18 * 1024),
    # ERNIE-4.5-21B-A3B, counted on the meta device from transformers' Ernie4_5_MoeConfig (tests/test_budget.py):
    # 21,825,437,888 parameters = 264.8M embeddings (tied) + 440.4M attention + 94.4M dense MLP (layer 0)
    # + 637.0M shared experts + 20,384.3M routed experts (27 layers x 64, 1536 wide) + 4.4M routers + norms.
    # Active per token: everything but 58 of each layer's 64 routed experts = 3.35B. LoRA: on a GPU, Unsloth
    # 2026.10.9's get_peft_model gives the seven names every part, the routed experts through PEFT's
    # target_parameters (seen on an H200 with the MoE stand-in, 2026-12-01): r=16 trains 284,311,552 parameters,
    # 269.0M of them on the routed experts. (Plain PEFT 0.21, and so Unsloth's CPU backend, instead moves
    # gate/up/down_proj onto the routed experts at rank 2r and skips the shared experts and dense MLP: 432.0M.)
    "21b-a3b": Shape("ERNIE-4.5-21B-A3B", 21_825_437_888, 103_424 * 2560, 3.35e9, 284_311_552 // 16, 28 * 2560,
                     expert_params=20_384_317_440),
}
MEASURED = SHAPES["0.3b"]


def shape_of(model: str) -> Shape:
    """"baidu/ERNIE-4.5-0.3B-PT", "0.3b", "21B-A3B", ...: the model's shape, or a ValueError naming the choices."""
    name = model.lower()
    for key, shape in SHAPES.items():
        if key in name:
            return shape
    raise ValueError(tr(f"no budget for model {model!r}: the estimator knows {', '.join(SHAPES)} "
                        "(e.g. baidu/ERNIE-4.5-0.3B-PT or baidu/ERNIE-4.5-21B-A3B-PT)",
                        f"没有模型 {model!r} 的估算：估算器只认识 {', '.join(SHAPES)}"
                        "（例如 baidu/ERNIE-4.5-0.3B-PT 或 baidu/ERNIE-4.5-21B-A3B-PT）"))


def gpu_spec(gpu) -> tuple[str, float, float | None]:
    """(name, GiB, TFLOPS or None) for "T4", "H200", ... or an `environment.gpu()` card (name, memory_gib)."""
    if isinstance(gpu, str):
        key = gpu.upper()
        if key not in TFLOPS:
            raise ValueError(tr(f"unknown GPU {gpu!r}: use one of {', '.join(TFLOPS)} or pass environment.gpu()",
                                f"未知的 GPU {gpu!r}：请用 {', '.join(TFLOPS)} 之一，或传入 environment.gpu()"))
        memory = {"T4": T4_GIB, "H200": H200_GIB, "L4": 22.0, "A100": 39.4, "A100-80GB": 79.1, "H100": 79.1}[key]
        return (f"Tesla {key}" if key == "T4" else f"NVIDIA {key}"), memory, TFLOPS[key]
    tflops = next((value for key, value in TFLOPS.items() if key in gpu.name.upper()), None)
    return gpu.name, gpu.memory_gib, tflops


@dataclass(frozen=True)
class Estimate:
    model: str
    gpu: str
    gpu_gib: float
    weights_gib: float
    lora_gib: float
    activations_gib: float
    workspace_gib: float
    tokens_per_micro_batch: float
    steps: int
    seconds: float | None  # None when the GPU's throughput is unknown
    settings: str
    load_in_4bit: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def reserved_gib(self) -> float:
        """What torch.cuda.max_memory_reserved() would report: compare this with a measured run."""
        return self.weights_gib + self.lora_gib + self.activations_gib + self.workspace_gib

    @property
    def peak_gib(self) -> float:
        """What the card must hold: torch's reserved memory plus the CUDA context."""
        return self.reserved_gib + CUDA_CONTEXT_GIB

    def fits(self, gpu_gib: float | None = None, headroom: float = 0.0) -> bool:
        """True if the peak fits in `gpu_gib` (default: this estimate's GPU) with `headroom` (0.1 = 10%) to spare."""
        return self.peak_gib <= (self.gpu_gib if gpu_gib is None else gpu_gib) * (1 - headroom)

    def __str__(self) -> str:
        if self.seconds is None:
            time = tr("time unknown", "耗时未知")
        else:
            time = tr(f"~{minutes(self.seconds)} for {self.steps} steps", f"约 {minutes(self.seconds)}（{self.steps} 步）")
        return tr(f"{self.model}, {self.settings} on {self.gpu}: ~{self.peak_gib:.1f} GiB peak of "
                  f"{self.gpu_gib:.1f} GiB, {time} (estimate)",
                  f"{self.model}，{self.settings}，在 {self.gpu} 上：显存峰值约 {self.peak_gib:.1f} GiB"
                  f"（共 {self.gpu_gib:.1f} GiB），{time}（估算）")


def estimate(model: str = defaults.MODEL_NAME, r: int = defaults.LORA_R, batch: int = defaults.BATCH_SIZE,
             max_length: int = defaults.MAX_LENGTH, packing: bool = defaults.PACKING, steps: int = defaults.MAX_STEPS,
             precision="fp16", load_in_4bit: bool = defaults.LOAD_IN_4BIT, gpu="T4",
             accumulation: int = defaults.GRAD_ACCUMULATION, example_tokens: float = EXAMPLE_TOKENS,
             gradient_checkpointing: bool = True, experts_4bit: bool = True,
             trainable_params: int | None = None) -> Estimate:
    """Peak memory and training time of one LoRA run. `precision` is "bf16", "fp16", "fp32" or an
    `environment.Precision`; `gpu` is "T4", "H200", ... or `environment.gpu()`. Unpacked batches are taken as
    padding-free (Unsloth turned that on in every measured run): `batch` examples of `example_tokens` each.
    A mixture of experts in 4-bit: Unsloth's GPU loader quantizes the routed experts too; `experts_4bit=False`
    keeps them in 16-bit, as plain transformers + bitsandbytes (and Unsloth's CPU backend) load them. `trainable_params` (e.g. `model.get_nb_trainable_parameters()[0]`)
    replaces the LoRA count of the seven names at rank r."""
    shape, precision = shape_of(model), getattr(precision, "name", precision)
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(tr(f"precision {precision!r} is not one of bf16, fp16, fp32",
                            f"精度 {precision!r} 不是 bf16、fp16、fp32 之一"))
    for name, value in (("r", r), ("batch", batch), ("max_length", max_length), ("accumulation", accumulation)):
        if value < 1:
            raise ValueError(tr(f"{name} = {value}: it must be at least 1", f"{name} = {value}：它至少要为 1"))
    gpu_name, gpu_gib, tflops = gpu_spec(gpu)
    bytes_16 = 4 if precision == "fp32" else 2
    if load_in_4bit:
        sixteen = shape.embedding_params + (0 if experts_4bit else shape.expert_params)
        weights = sixteen * bytes_16 + (shape.params - sixteen) * BNB_4BIT_BYTES
    else:
        weights = shape.params * bytes_16
    tokens = batch * max_length * PACKED_FILL if packing else batch * min(example_tokens, max_length)
    per_token = (PACKED_MIB_PER_TOKEN if packing else UNPACKED_MIB_PER_TOKEN) * 2**20
    per_token *= shape.layers_x_hidden / MEASURED.layers_x_hidden * bytes_16 / 2
    if not gradient_checkpointing:
        per_token += NO_CHECKPOINT_BYTES_PER_TOKEN_LAYER_HIDDEN * shape.layers_x_hidden * bytes_16 / 2
    notes = []
    seconds = None
    if tflops is not None:
        rate = H200_TOKENS_PER_S * tflops / TFLOPS["H200"] * MEASURED.active_params / shape.active_params
        per_micro_batch = max(STEP_FLOOR_S, tokens / rate) * (FOUR_BIT_SLOWDOWN if load_in_4bit else 1)
        seconds = WARMUP_S + steps * accumulation * per_micro_batch
        if "H200" not in gpu_name.upper():
            notes.append(tr(f"time scaled from the H200 by {tflops}/{TFLOPS['H200']} TFLOPS, not measured on a {gpu_name}",
                            f"时间由 H200 的实测按 {tflops}/{TFLOPS['H200']} TFLOPS 换算，未在 {gpu_name} 上实测"))
    if shape is not MEASURED:
        notes.append(tr(f"{shape.label} was never measured: its activations are the 0.3B's scaled by size",
                        f"{shape.label} 从未实测：其激活值由 0.3B 的实测按模型规模换算"))
        if load_in_4bit and shape.expert_params:
            notes.append(tr("routed experts in 4-bit, as Unsloth's GPU loader stores them",
                            "路由专家为 4-bit，与 Unsloth 的 GPU 加载器存储它们的方式相同") if experts_4bit else
                         tr("routed experts in 16-bit, as plain transformers + bitsandbytes load them",
                            "路由专家为 16-bit，与只用 transformers + bitsandbytes 加载时相同"))
    packed = tr(f"{batch} x {max_length} packed", f"{batch} x {max_length} 打包") if packing else \
        tr(f"batch {batch} unpacked", f"批次 {batch} 不打包")
    comma = tr(", ", "，")
    settings = (f"r={r}{comma}{packed}" + (tr(f" x {accumulation} accumulation", f" x {accumulation} 梯度累积")
                                          if accumulation > 1 else "")
                + f"{comma}{'4-bit' if load_in_4bit else precision}"
                + ("" if gradient_checkpointing else comma + tr("no checkpointing", "不用梯度检查点"))
                + (comma + tr("16-bit experts", "专家为 16-bit")
                   if load_in_4bit and shape.expert_params and not experts_4bit else ""))
    lora = (shape.lora_params_per_rank * r if trainable_params is None else trainable_params) * LORA_BYTES_PER_PARAM
    workspace = WORKSPACE_GIB + (FOUR_BIT_EXTRA_GIB if load_in_4bit else 0.0)
    return Estimate(shape.label, gpu_name, gpu_gib, weights / GIB, lora / GIB, tokens * per_token / GIB, workspace,
                    tokens, steps, seconds, settings, load_in_4bit, tuple(notes))


def minutes(seconds: float) -> str:
    unit = tr("min", "分钟")
    return f"{seconds / 60:.1f} {unit}" if seconds < 600 else f"{seconds / 60:.0f} {unit}"


def warning(est: Estimate, precision=None) -> str:
    """A sentence when `est` will not fit its GPU, or leaves under 10% of it free; "" when it fits comfortably.
    Pass the run's `precision` to also warn about bf16 on a T4."""
    lines = []
    if est.weights_gib + CUDA_CONTEXT_GIB > est.gpu_gib:
        lines.append(tr(f"will NOT fit: the weights alone are {est.weights_gib:.1f} GiB and the {est.gpu} has "
                        f"{est.gpu_gib:.1f} GiB. ",
                        f"放不下：仅权重就要 {est.weights_gib:.1f} GiB，而 {est.gpu} 只有 {est.gpu_gib:.1f} GiB 显存。")
                     + (tr("Load the model in 4-bit.", "请以 4-bit 加载模型。") if not est.load_in_4bit else
                        tr("This model needs a bigger GPU.", "这个模型需要显存更大的 GPU。")))
    elif not est.fits():
        lines.append(tr(f"will NOT fit: ~{est.peak_gib:.1f} GiB needed, the {est.gpu} has {est.gpu_gib:.1f} GiB. "
                        "Lower the batch size (raise gradient accumulation to keep the effective batch), then "
                        "max_length, then r",
                        f"放不下：约需 {est.peak_gib:.1f} GiB，而 {est.gpu} 只有 {est.gpu_gib:.1f} GiB 显存。"
                        "先调小批次大小（同时调大梯度累积，使有效批次不变），再调小 max_length，然后是 r")
                     + (tr("; or load in 4-bit.", "；或者以 4-bit 加载。") if not est.load_in_4bit else tr(".", "。")))
    elif not est.fits(headroom=HEADROOM):
        free = est.gpu_gib - est.peak_gib
        lines.append(tr(f"tight: ~{est.peak_gib:.1f} of {est.gpu_gib:.1f} GiB, only {free:.1f} GiB "
                        f"({free / est.gpu_gib:.0%}) left; a longer batch than average can run out of memory. "
                        "Lower the batch size or max_length.",
                        f"很紧：约 {est.peak_gib:.1f} / {est.gpu_gib:.1f} GiB，只剩 {free:.1f} GiB"
                        f"（{free / est.gpu_gib:.0%}）；比平均更长的批次可能耗尽显存。请调小批次大小或 max_length。"))
    if getattr(precision, "name", precision) == "bf16" and "T4" in est.gpu.upper():
        lines.append(tr("a T4 (compute capability 7.5) has no bf16: train in fp16.",
                        "T4（计算能力 7.5）不支持 bf16：请用 fp16 训练。"))
    return " ".join(lines)


def budget_readout(as_html: bool = True, current=None, **settings) -> str:
    """One line for a slider: the T4 estimate, its warning, and (when `current` is an `environment.gpu()` card
    that is not a T4) the same run on this GPU. `settings` are `estimate`'s keywords."""
    t4 = estimate(**{**settings, "gpu": "T4"})
    def took(est):
        return tr(f", ~{minutes(est.seconds)}", f"，约 {minutes(est.seconds)}") if est.seconds is not None else ""

    parts = [tr(f"T4 estimate (not measured on a T4): ~{t4.peak_gib:.1f} of {t4.gpu_gib:.1f} GiB",
                f"T4 估算（未在 T4 上实测）：显存约 {t4.peak_gib:.1f} / {t4.gpu_gib:.1f} GiB") + took(t4)]
    if current is not None and "T4" not in current.name.upper():
        here = estimate(**{**settings, "gpu": current})
        parts.append(tr(f"this {here.gpu}: ~{here.peak_gib:.1f} of {here.gpu_gib:.0f} GiB",
                        f"本机的 {here.gpu}：约 {here.peak_gib:.1f} / {here.gpu_gib:.0f} GiB") + took(here))
    text = tr("; ", "；").join(parts)
    if shape_of(settings.get("model", "0.3b")) is not MEASURED:
        text += tr(f" ({t4.model} was never measured: a rough scale-up of the 0.3B's figures)",
                   f"（{t4.model} 从未实测：由 0.3B 的数字粗略放大）")
    alert = warning(t4)  # a T4 trains in fp16 whatever this machine chose, so no precision warning here
    if not as_html:
        return text + (tr(f". WARNING: {alert}", f"。警告：{alert}") if alert else "")
    line = html.escape(text)
    return line + (f"<br><span style='color:#b00020'><b>{tr('Warning:', '警告：')}</b> {html.escape(alert)}</span>"
                   if alert else "")
