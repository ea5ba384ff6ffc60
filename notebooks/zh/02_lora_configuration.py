# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] en_hash="9b41d1a070"
# # 2 · LoRA：训练什么，训练多少
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/zh/02_lora_configuration.ipynb)
#
# **你将学到：** 全参数微调（full fine-tuning）要付出什么代价；LoRA 如何用每层两个小矩阵取而代之；如何手算这两个矩阵的参数量（并与 PEFT 的统计核对）；秩（rank）`r`、`lora_alpha` 和 rsLoRA 如何影响更新量的缩放；哪些层会加上适配器；以及为什么一个刚创建的适配器在训练之前什么都不会改变。
#
# **你需要：** 一个带 GPU 的 Colab 运行时：*代码执行程序（Runtime）→ 更改运行时类型（Change runtime type）→ T4 GPU*。没有 GPU、或者连不上 Hugging Face Hub 时，每个单元格照样能运行，只是换成离线替身模型，并且会明确告诉你。
#
# **在 T4 上的耗时：** 约 4 分钟，大部分花在安装上。

# %% [markdown] en_hash="b9945d47c1"
# ## 0 · 安装（仅限在线 notebook 平台）
#
# 在线 notebook 平台（Colab、Kaggle、百度 AI Studio、魔搭 ModelScope）上还没有安装课程：这个单元格会克隆课程仓库，并安装课程锁定版本（pinned）的依赖包（在 Colab 上约 2 分钟）。Unsloth 用 `--no-deps` 安装，这样它就无法替换掉平台自带的 CUDA 版 PyTorch。已经装好课程的环境里（`make setup` 已经把同样的版本装进了 `.venv`），这个单元格什么也不做。

# %%
import importlib.util
import os

# A hosted notebook (Colab, Kaggle, AI Studio, ModelScope) starts without the course: install it there.
if importlib.util.find_spec("course_lib") is None:
    COURSE_DIR = os.path.abspath("ernie-lora-course")  # on Colab /content/ernie-lora-course; an uploaded copy is used
    # !test -d {COURSE_DIR} || git clone --quiet --depth 1 https://github.com/ernie-course/ernie-lora-course {COURSE_DIR}
    # !pip install --quiet -r {COURSE_DIR}/requirements.txt
    # !pip install --quiet --no-deps -r {COURSE_DIR}/requirements-unsloth.txt -r {COURSE_DIR}/requirements-gpu.txt
    # !pip install --quiet --no-deps {COURSE_DIR}

# %% [markdown] en_hash="87139a31e9"
# ## 1 · 先导入 Unsloth，再检查机器
#
# 和 notebook 1 一样：Unsloth 在被导入时会给 `transformers`、`peft` 和 `trl` 打补丁，所以它必须最先导入。报告的最后一行是加载模型时使用的精度。

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("zh")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown] en_hash="4f326d40a1"
# ## 2 · 设置
#
# 这些 LoRA 设置正是本 notebook 的主题：秩 `LORA_R`、它的缩放系数 `LORA_ALPHA`、要适配的层，以及 rsLoRA。notebook 4 使用相同的值；在这里修改之后，从头重新运行。

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # or "baidu/ERNIE-4.5-21B-A3B-PT" for real work (with 4-bit)
MAX_SEQ_LENGTH = 1024  # tokens; the longest example the model will see (word problems need < 400)
LOAD_IN_4BIT = False  # True: the blocks' Linear weights in 4 bits (QLoRA); section 10 counts what it saves
LORA_R = 16  # rank of each adapter: 8, 16, 32, 64; more capacity, more parameters
LORA_ALPHA = 32  # 2 x r; the update B A x is multiplied by alpha / r (or alpha / sqrt(r) with rsLoRA)
LORA_DROPOUT = 0.0  # 0 is fastest in Unsloth; 0.05-0.1 against overfitting a small dataset
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # attention + MLP
USE_RSLORA = False  # True: scale by alpha / sqrt(r), which keeps large ranks learning
SEED = 3407  # seeds the adapters' random start

# %% [markdown] en_hash="bf10291814"
# 会加载哪个模型？离线时，课程会退而使用离线替身模型，横幅会说明这一点。下面统计出的数字都是离线替身模型的；真实模型的数字写在正文里，供对照。

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %%
model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=model_choice.name_or_path,  # a Hub id, or a local folder
    max_seq_length=MAX_SEQ_LENGTH,  # Unsloth's name for the context it prepares for
    dtype=precision.torch_dtype,  # bf16 on Ampere+, fp16 on a T4, fp32 on a CPU
    load_in_4bit=LOAD_IN_4BIT,  # bitsandbytes 4-bit (QLoRA); needs a GPU
)

# %% [markdown] en_hash="f89e3b7f34"
# ## 3 · 全参数微调：所有参数，以及训练它们要占多少显存
#
# 全参数微调会更新每一个参数。刚加载完时，哪些参数被*标记*为可训练（`requires_grad`）取决于走的是哪条路径：Unsloth 的 CPU 后端让它们全部保持可训练；在 GPU 上，Unsloth 会一次性把它们全部冻结，等着你加 LoRA（它的加载信息里会写着 "Switching to 16bit LoRA"），除非给 `from_pretrained` 传了 `full_finetuning=True`。

# %%
n_parameters = sum(p.numel() for p in model.parameters())
n_requires_grad = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"{n_parameters:,} parameters: full fine-tuning would train all of them")
print(f"marked trainable right after loading: {n_requires_grad:,}")

# %% [markdown] en_hash="5bbe7717f2"
# 用 AdamW 训练一个参数，比单纯存储它贵得多：优化器要在每个权重旁边再保存一个梯度和两个滑动平均值（一阶矩和二阶矩），全部是 fp32（合计 16 字节）。一个冻结的权重只占它自己那一份，按加载时的 dtype 计算。激活值（activation）在这两者之外另算，这里不计入。（对 21B 的 ERNIE 模型来说，每个参数 16 字节就是 336 GB。）

# %%
BYTES_PER_TRAINED = {"weight (fp32)": 4, "gradient (fp32)": 4, "AdamW 1st moment": 4, "AdamW 2nd moment": 4}
bytes_per_trained = sum(BYTES_PER_TRAINED.values())
bytes_per_frozen = next(model.parameters()).element_size()  # 2 in fp16/bf16, 4 in fp32
full_bill = n_parameters * bytes_per_trained
print(" + ".join(f"{name} {size} B" for name, size in BYTES_PER_TRAINED.items()), f"= {bytes_per_trained} B")
print(f"full fine-tuning: {n_parameters:,} x {bytes_per_trained} B = {full_bill / 2**20:,.1f} MiB + activations")

# %% [markdown] en_hash="cc66a3351c"
# ## 4 · LoRA：W x + (B A) x · alpha / r
#
# LoRA 冻结每个权重矩阵 `W`（out × in），在它旁边学习一个低秩更新：`A`（r × in）和 `B`（out × r）。这一层计算 `W x + (B A) x · alpha / r`。取一个真实的层——第一个块的 `q_proj`——手算一下各个尺寸。

# %%
W = model.model.layers[0].self_attn.q_proj.weight
fan_out, fan_in = W.shape
print(f"W: {fan_out} x {fan_in} = {W.numel():,} parameters")
print(f"A: {LORA_R} x {fan_in} = {LORA_R * fan_in:,}   B: {fan_out} x {LORA_R} = {fan_out * LORA_R:,}")
adapter = LORA_R * (fan_in + fan_out)
print(f"A + B = r x (in + out) = {adapter:,} parameters, {100 * adapter / W.numel():.1f}% of W's")

# %% [markdown] en_hash="4fdc61056d"
# `B A` 的形状和 W 相同，所以可以加到 W 上；但它只能沿 `r` 个方向改变 W：它的秩最多是 `r`。用形状正确的随机 A 和 B 就能看出这一点。

# %%
import torch

A = torch.randn(LORA_R, fan_in)
B = torch.randn(fan_out, LORA_R)
print(f"B A: {tuple((B @ A).shape)}, the same shape as W; rank {torch.linalg.matrix_rank(B @ A)} "
      f"(W's rank: {torch.linalg.matrix_rank(W.float())})")

# %% [markdown] en_hash="9dc253868b"
# ## 5 · 选择秩
#
# 在值得一试的几个秩（8 到 64）之间拖动滑块。滑块下方依次显示：下一个单元格在这个秩下会用的 `lora_alpha`；在这里加载的模型上（离线时就是离线替身模型），LoRA 在 `TARGET_MODULES` 列出的每一个层上要训练多少参数；以及在这个秩下，用 notebook 4 的训练方式训练 `MODEL_NAME` 所指的模型时，在 T4 上需要多少资源（GPU 显存峰值和耗时，由 H200 上的实测结果换算到 T4：这是估计值，不是在 T4 上的实测）。（在无界面（headless）模式下运行时，滑块保持默认值 `LORA_R`。）

# %%
from course_lib.widgets import linear_shapes, rank_slider

t4_run = dict(model=MODEL_NAME, load_in_4bit=LOAD_IN_4BIT)  # else notebook 4's defaults: 8 x 1,024 packed, 60 steps
r_slider = rank_slider(linear_shapes(model, TARGET_MODULES), n_parameters, value=LORA_R, lora_alpha=LORA_ALPHA,
                       loaded=model_choice, t4_run=t4_run, current=card)
r_slider

# %% [markdown] en_hash="f2ed0efcc8"
# 下一个单元格读取滑块的值。`lora_alpha` 跟随 `r` 变化，保持你的设置中两者的比例（`LORA_ALPHA / LORA_R`，默认是 2）：课程的规则是 `lora_alpha = 2 * r`。

# %%
r = r_slider.value
lora_alpha = LORA_ALPHA * r // LORA_R  # 2 * r with the default settings
print(f"r = {r}, lora_alpha = {lora_alpha}")

# %% [markdown] en_hash="7b1c24b25b"
# ## 6 · r、lora_alpha 与 rsLoRA：更新量的缩放
#
# PEFT 把 `B A x` 乘以 `alpha / r`；rsLoRA（rank-stabilized LoRA，秩稳定 LoRA）则乘以 `alpha / sqrt(r)`。下面对比这两种缩放：一组取 `alpha = 2r`，另一组把 alpha 固定为 `LORA_ALPHA`。

# %%
print(f"{'r':>5} | alpha = 2r:  alpha/r  alpha/sqrt(r) | alpha = {LORA_ALPHA}:  alpha/r  alpha/sqrt(r)")
for rank in (4, 8, 16, 32, 64, 128):
    print(f"{rank:>5} | {2 * rank:>10}  {2 * rank / rank:>7.3f}  {2 * rank / rank ** 0.5:>13.3f} "
          f"| {LORA_ALPHA:>10}  {LORA_ALPHA / rank:>7.3f}  {LORA_ALPHA / rank ** 0.5:>13.3f}")

# %% [markdown] en_hash="18e5f96f27"
# alpha 固定时，标准缩放 `alpha / r` 会随秩增大而变小：秩为 128 的适配器，其更新量的缩放比秩为 4 的小 32 倍，所以大的秩学得慢、收益也小。rsLoRA 改为除以 `sqrt(r)`，这个缩放能让更新量的大小在不同的秩之间保持稳定，所以大的秩也能继续学习。课程的 `alpha = 2r` 用另一种方式避免了缩放变小（缩放始终是 2）；如果打开 rsLoRA，就应改为固定 alpha，否则缩放会按 `2 sqrt(r)` 增长。

# %%
scaling = lora_alpha / r ** 0.5 if USE_RSLORA else lora_alpha / r
print(f"this run: r = {r}, lora_alpha = {lora_alpha}, use_rslora = {USE_RSLORA} -> scale {scaling:.3f}")

# %% [markdown] en_hash="ec54db7c35"
# ## 7 · 先手算适配器参数量，再添加适配器
#
# 名字以 `TARGET_MODULES` 中某一项结尾的每个 Linear 层，都会得到自己的 A 和 B，所以 LoRA 每层增加 `r × (in + out)` 个参数。在问 PEFT 之前，先自己加总一遍。（在真实的 ERNIE-4.5-0.3B 上，对 18 个块的全部七个投影取 r = 16，一共是 6,045,696 个参数，占模型的 1.7%；离线替身模型只有 128 宽，所以同样的 r 在它里面所占的比例要大得多。）

# %%
# PEFT's rule: every Linear layer whose name ends in one of TARGET_MODULES gets an adapter.
shapes = [(name, module.in_features, module.out_features) for name, module in model.named_modules()
          if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in TARGET_MODULES]
hand_count = sum(r * (fan_in + fan_out) for _, fan_in, fan_out in shapes)
print(f"{len(shapes)} layers match; first: {shapes[0]}")
print(f"by hand: {hand_count:,} LoRA parameters at r = {r}, "
      f"{100 * hand_count / n_parameters:.2f}% of the model's {n_parameters:,}")

# %% [markdown] en_hash="bc154281e9"
# 第 9 节会验证一个刚创建的适配器什么都不改变。所以现在，在添加 LoRA 之前，先记下模型在一个提示（prompt）上的输出（它的 logits）。

# %%
question = [{"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"}]
prompt = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
with torch.no_grad():
    logits_before = model(**inputs).logits
print(f"logits before LoRA: {tuple(logits_before.shape)} (batch, tokens, vocabulary)")

# %% [markdown] en_hash="691e0d7aaf"
# 接下来就是这个调用本身。在 GPU 上，它走 Unsloth 的快速 LoRA 路径；在 CPU 上，Unsloth 把它交给 PEFT。两条路径的关键字参数完全相同。

# %%
model = FastLanguageModel.get_peft_model(
    model,
    r=r,  # rank: 8, 16, 32, 64; 16 suits a small task like ours
    target_modules=TARGET_MODULES,  # all seven projections; attention only trains fewer parameters
    lora_alpha=lora_alpha,  # scale numerator: B A x is multiplied by alpha / r; 2 x r is a good start
    lora_dropout=LORA_DROPOUT,  # 0 is fastest in Unsloth; 0.05-0.1 against overfitting
    bias="none",  # "none" is fastest in Unsloth; ERNIE's Linear layers have no bias anyway
    use_gradient_checkpointing="unsloth",  # recompute activations in backward: less memory, longer contexts
    random_state=SEED,  # seeds A's random start, so runs repeat
    use_rslora=USE_RSLORA,  # True: scale by alpha / sqrt(r) instead of alpha / r
)

# %% [markdown] en_hash="ec0c696b70"
# PEFT 也会统计可训练参数。两个数必须一致（在混合专家模型上并不一致：第 11 节说明原因）。

# %%
trainable, total = model.get_nb_trainable_parameters()
print(f"by hand: {hand_count:,}   PEFT: {trainable:,}   equal: {hand_count == trainable}")
print(f"PEFT's total {total:,} = the model's {n_parameters:,} + the adapters {trainable:,}")
assert trainable == hand_count or model.config.model_type == "ernie4_5_moe"

# %% [markdown] en_hash="f60326ce3b"
# 回到第 3 节算的显存：用了 LoRA，只有适配器的参数需要训练所需的每个 16 字节；冻结的模型只占它自己权重的那部分显存。

# %%
lora_bill = n_parameters * bytes_per_frozen + trainable * bytes_per_trained
print(f"LoRA: {n_parameters:,} frozen x {bytes_per_frozen} B + {trainable:,} trained x {bytes_per_trained} B "
      f"= {lora_bill / 2**20:,.1f} MiB")
print(f"full fine-tuning: {full_bill / 2**20:,.1f} MiB, {full_bill / lora_bill:.1f} times LoRA's")

# %% [markdown] en_hash="781ff4cd44"
# ## 8 · 哪些层加上了适配器
#
# PEFT 把每个目标 Linear 层替换成了一个 LoRA 层，里面装着 `lora_A` 和 `lora_B`。按种类分组列出来：每个块各贡献一个。

# %%
from collections import Counter

wrapped = [name for name, module in model.named_modules() if hasattr(module, "lora_A")]
print(f"{len(wrapped)} layers have adapters, first: {wrapped[0]}")
for kind, count in Counter(name.split(".")[-1] for name in wrapped).items():
    print(f"  {kind:<10} {count}")

# %% [markdown] en_hash="6e58bba28b"
# 其余的一切（嵌入层、归一化层、被包装的层内部那些冻结的 `W`）都不再训练：只有 `lora_A` 和 `lora_B` 这些张量会训练。

# %%
trainable_names = [name for name, p in model.named_parameters() if p.requires_grad]
print(f"{len(trainable_names)} trainable tensors, all LoRA: {all('lora_' in name for name in trainable_names)}")
print("for example:", trainable_names[:2])

# %% [markdown] en_hash="28ad36acf8"
# 近距离看一个被包装的层：`base_layer` 是冻结的 W，`lora_A` 把 `in` 个特征降到 `r` 维，`lora_B` 再把它们映射回 `out` 维。PEFT 存下了它将要使用的缩放系数；和第 6 节对比一下。

# %%
q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
print(q_proj)
print(f"PEFT's scaling: {q_proj.scaling['default']:.3f}   expected: {scaling:.3f}")

# %% [markdown] en_hash="764d915e09"
# ## 9 · 刚创建的适配器什么都不改变
#
# PEFT 把 `B` 初始化为零（`A` 是随机的），所以 `B A x` 为零，模型的计算结果与之前完全相同。随后，训练让 `B` 离开零；正是随机的 `A` 让 `B` 的梯度不为零。

# %%
lora_B = [module.weight for name, module in model.named_modules() if name.endswith("lora_B.default")]
lora_A = [module.weight for name, module in model.named_modules() if name.endswith("lora_A.default")]
print(f"{len(lora_B)} lora_B matrices, all zero: {all(bool((w == 0).all()) for w in lora_B)}")
print(f"{len(lora_A)} lora_A matrices, mean |value|: {torch.cat([w.flatten() for w in lora_A]).abs().mean():.4f}")

# %% [markdown] en_hash="1574e99753"
# 还是添加 LoRA 之前用过的那个提示：两组 logits 之间的最大差值应该是 0。

# %%
with torch.no_grad():
    logits_after = model(**inputs).logits
print(f"max |logits after - logits before| = {(logits_after - logits_before).abs().max().item():.2e}")

# %% [markdown] en_hash="5f6acb8336"
# ## 10 · 原教程的说法，逐条实测
#
# 本课程所源自的那篇教程做了六个承诺。下面把每一条和实测结果放在一起，并注明出处。与参数有关的三条在下面实时计算，用的是 ERNIE-4.5-0.3B 公开的形状（建在 PyTorch 的 `meta` 设备上：只有形状、没有权重，所以不占内存，离线也能运行）。
#
# | 教程的说法 | 实测 | 出处 |
# |---|---|---|
# | Unsloth 训练"快 2 倍" | 16-bit 下是纯 transformers + PEFT 的 2.55 倍（每秒 7,241 对 2,843 个 token），4-bit 下 1.67 倍（6,728 对 4,026） | `bench/RESULTS.md`，一块 H200，0.3B 形状，batch 8 |
# | "显存少用 60%" | 在 0.3B 上没有：用 Unsloth 1.33 GiB，不用 1.11 GiB（16-bit）；这个节省是在 1-34B 的模型、较长输入上报告的，那时激活值占大头（HF 的 Unsloth 基准：A100 上省 23-66%） | `bench/RESULTS.md`；huggingface.co/blog/unsloth-trl |
# | LoRA 只训练"0.1% 的参数" | r = 16、七个投影层全部适配时的比例：见下 | 实时计算 |
# | 4-bit"让模型缩小到四分之一" | 没那么多：嵌入层（与输出头共享）保持 16-bit：见下 | 实时计算 |
# | "24 GB 的显卡能跑 4-bit 的 70B" | 70B × 0.5 字节，光权重就是 35 GB：见下 | 算术 |
# | 打包"快 2-5 倍" | batch 8 时 6.5 倍（每秒 7,241 -> 47,362 个 token）；教程自己的打包设置：26,782 | `bench/RESULTS.md`，一块 H200 |

# %%
from transformers import Ernie4_5ForCausalLM

from course_lib.tiny_ernie import ernie_config

with torch.device("meta"):  # shapes only: no memory, no download
    published = Ernie4_5ForCausalLM(ernie_config("0.3b", vocab_size=0))
n_published = sum(p.numel() for p in published.parameters())
lora_published = sum(LORA_R * (m.in_features + m.out_features) for name, m in published.named_modules()
                     if isinstance(m, torch.nn.Linear) and name.split(".")[-1] in TARGET_MODULES)
print(f"LoRA r = {LORA_R}: {lora_published:,} of ERNIE-4.5-0.3B's {n_published:,} parameters = "
      f"{100 * lora_published / n_published:.2f}% (the loaded model here: {100 * trainable / n_parameters:.2f}%)")
in_blocks = sum(m.weight.numel() for m in published.model.layers.modules() if isinstance(m, torch.nn.Linear))
four_bit = 2 * (n_published - in_blocks) + in_blocks * (0.5 + 1 / 64)  # 4 bits + a scale per 64 weights
print(f"4-bit: {four_bit / 2**30:.2f} GiB against {2 * n_published / 2**30:.2f} GiB in 16-bit = "
      f"{four_bit / (2 * n_published):.0%} of it, not 25%: {n_published - in_blocks:,} parameters stay 16-bit")
print(f"70B in 4-bit: {70e9 * 0.5 / 1e9:.0f} GB ({70e9 * 0.5 / 2**30:.1f} GiB) of weights, before any activation")

# %% [markdown] en_hash="6b70006a0c"
# ## 11 · 混合专家模型上的 LoRA
#
# 原教程训练的 ERNIE-4.5-21B-A3B 是混合专家模型（MoE）：除了稠密的第 0 层，每层的 MLP 由 64 个*路由*专家组成，
# 路由器为每个 token 选出其中 6 个；另有 2 个*共享*专家，每个 token 都会经过。那七个名字会适配它的哪些部分？
# 先在 `meta` 设备上数一数它的各部分：

# %%
import copy

from transformers import Ernie4_5_MoeForCausalLM

from course_lib.tiny_ernie_moe import EXPERT_PARAMETERS, make_tiny_ernie_moe, moe_config, parameter_parts, part_of

with torch.device("meta"):  # shapes only, as in section 10
    ernie_21b = Ernie4_5_MoeForCausalLM(moe_config("21b-a3b"))
parts_21b = parameter_parts(ernie_21b)
for part, count in parts_21b.items():
    print(f"{part:<15} {count:>15,} {100 * count / sum(parts_21b.values()):6.2f}%")

# %% [markdown] en_hash="673c4b7afb"
# 其中 93% 是路由专家。下面是同一架构的玩具尺寸版本，用本 notebook 的分词器在内存中构建（3 层、8 个路由专家、
# top-2、2 个共享专家）：在 transformers 5 中，一层的路由专家是两个融合的三维张量 `(experts, out, in)`，
# 而不是 Linear 层。

# %%
moe_model = make_tiny_ernie_moe(vocab_size=len(tokenizer))
moe_parts = parameter_parts(moe_model)
print(moe_model.model.layers[1].mlp)
print({name: tuple(p.shape) for name, p in moe_model.model.layers[1].mlp.experts.named_parameters()})

# %% [markdown] en_hash="9147f1f16f"
# 第 7 节的规则（名字以 `TARGET_MODULES` 之一结尾的每个 Linear 层）会找到注意力、稠密 MLP 和共享专家，
# 却找不到任何路由专家：

# %%
linear_matches = Counter(part_of(name + ".weight") for name, module in moe_model.named_modules()
                         if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in TARGET_MODULES)
print(f"Linear layers the seven names match, per part: {dict(linear_matches)}")

# %% [markdown] en_hash="cd7e6eef2b"
# PEFT 0.21 在这里并不遵循这条规则。在 ERNIE-MoE 上（与 Qwen2-MoE、Mixtral 一样），它把 `gate_proj`、
# `up_proj`、`down_proj` 当作 transformers 4 中专家的名字，改写成 `target_parameters`：路由专家的融合张量，
# 其中 `gate_up_proj` 的秩为 2r。同名的共享专家和稠密 MLP 反而被排除在外。在 CPU 上，Unsloth 正是把 LoRA
# 交给原生 PEFT：

# %%
from peft import LoraConfig, get_peft_model

plain = get_peft_model(copy.deepcopy(moe_model), LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=TARGET_MODULES))
rewritten = plain.peft_config["default"]
print(f"target_modules {sorted(rewritten.target_modules)}, target_parameters {sorted(rewritten.target_parameters)}, "
      f"rank_pattern {rewritten.rank_pattern}")
print("trained per part:", {part: n for part, n in parameter_parts(plain, trainable_only=True).items() if n})

# %% [markdown] en_hash="e628c3328e"
# 在 GPU 上，Unsloth 自己的 `get_peft_model` 会让同样的七个名字覆盖每个部分，路由专家的秩为 r
# （在 H200 上用这个 MoE 替身模型实测；它会打印 "Detected MoE model ... Enabling LoRA on MoE parameters"）。
# 要在任何环境下都得到这个结果，就把每个部分都点名，让任何库都无从改写：注意力按模块指定，MLP 权重和融合专家
# 按参数指定。

# %%
moe_lora = get_peft_model(moe_model, LoraConfig(
    r=r,  # one rank for every part, experts included
    lora_alpha=lora_alpha,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],  # attention: Linear layers, matched by name
    target_parameters=EXPERT_PARAMETERS + ["gate_proj.weight", "up_proj.weight", "down_proj.weight"],  # fused + MLPs
    lora_dropout=0.0,  # PEFT refuses dropout on target_parameters
))
trained_parts = parameter_parts(moe_lora, trainable_only=True)
print(f"{'part':<15} {'parameters':>11} {'LoRA at r = ' + str(r):>15}")
for part, count in moe_parts.items():
    print(f"{part:<15} {count:>11,} {trained_parts[part]:>15,}")

# %% [markdown] en_hash="3121775a9f"
# 同样的名字用在真正的 21B 上（仍在 `meta` 设备上）：r 在那里训练多少参数，对比第 10 节 0.3B 的比例。

# %%
lora_21b = get_peft_model(ernie_21b, copy.deepcopy(moe_lora.peft_config["default"]), low_cpu_mem_usage=True)
trained_21b = parameter_parts(lora_21b, trainable_only=True)
print(f"r = {r}: {sum(trained_21b.values()):,} LoRA parameters, "
      f"{100 * sum(trained_21b.values()) / sum(parts_21b.values()):.2f}% of ERNIE-4.5-21B-A3B; "
      f"{trained_21b['routed experts']:,} of them on the routed experts")

# %% [markdown] en_hash="5d1e2ad0ae"
# 在八道应用题上训练几步（普通的 PyTorch 循环：`SFTTrainer` 是第 4 个 notebook 的内容）。路由专家的 `lora_B`
# 和其他所有 `lora_B` 一样从零开始；训练必须让它离开零。

# %%
from course_lib.data import bundled_rows, to_messages

texts = [tokenizer.apply_chat_template(to_messages(row)["messages"], tokenize=False) for row in bundled_rows("train")[:8]]
moe_batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
moe_labels = moe_batch["input_ids"].masked_fill(moe_batch["attention_mask"] == 0, -100)  # no loss on padding
optimizer = torch.optim.AdamW([p for p in moe_lora.parameters() if p.requires_grad], lr=1e-2)
moe_lora.train()
for step in range(5):
    loss = moe_lora(**moe_batch, labels=moe_labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    print(f"step {step + 1}: loss {loss.item():.3f}")

# %% [markdown] en_hash="4dbb570759"
# 合并，并手工重算一层的融合 `gate_up_proj` 来验证合并：对每个专家 e 计算 `W_e + (alpha / r) B_e A_e`。
# PEFT 为一个专家张量只保存一个 `A`（`r × experts` 行）和一个 `B`（同样多的列）；重塑之后，每个专家得到
# 自己的一对秩为 r 的矩阵。

# %%
gate_up = next(m for m in moe_lora.modules() if getattr(m, "parameter_name", None) == "gate_up_proj")  # layer 1
W = gate_up.get_base_layer().gate_up_proj.detach().clone()  # (experts, out, in), before merging
n_experts, fan_out, fan_in = W.shape
A = gate_up.lora_A["default"].weight.reshape(n_experts, -1, fan_in)  # (experts, r, in)
B = gate_up.lora_B["default"].weight.reshape(fan_out, -1, n_experts)  # (out, r, experts)
by_hand = W + gate_up.scaling["default"] * torch.einsum("ore,eri->eoi", B, A)
print(f"|B| after training: {B.abs().max().item():.4f}; merged weights move by up to {(by_hand - W).abs().max():.2e}")
moe_lora.eval()
with torch.no_grad():
    logits_adapter = moe_lora(**moe_batch).logits
merged_moe = moe_lora.merge_and_unload()
with torch.no_grad():
    logits_merged = merged_moe(**moe_batch).logits
print(f"merged gate_up_proj vs by hand: max |diff| = "
      f"{(merged_moe.model.layers[1].mlp.experts.gate_up_proj - by_hand).abs().max().item():.2e}")
print(f"logits, adapter vs merged model: max |diff| = {(logits_adapter - logits_merged).abs().max().item():.2e}")

# %% [markdown] en_hash="63dc336d06"
# 最后是 4-bit。bitsandbytes 量化的是 `nn.Linear` 的权重；融合的专家张量保持 16-bit，除非有别的东西量化它们。
# 用 `load_in_4bit=True` 加载 MoE 替身模型，看看这里一个 MoE 层的哪些张量是 4-bit：在 GPU 上（在 H200 上实测），
# Unsloth 的加载器把路由专家也存成 4-bit；在 CPU 上它们保持原样，换成 21B 就是 20.4B 个参数留在 16-bit，
# 38 GiB。

# %%
import tempfile

moe_folder = tempfile.mkdtemp(prefix="tiny-ernie-moe-")
merged_moe.save_pretrained(moe_folder)
tokenizer.save_pretrained(moe_folder)
moe_4bit, _ = FastLanguageModel.from_pretrained(model_name=moe_folder, max_seq_length=MAX_SEQ_LENGTH,
                                                dtype=precision.torch_dtype, load_in_4bit=True)
for name, p in moe_4bit.model.layers[1].named_parameters():
    print(f"{name:<42} {'4-bit' if type(p).__name__ == 'Params4bit' else str(p.dtype)}")

# %% [markdown] en_hash="d691d6b350"
# ## 小结
#
# - 全参数微调用 AdamW 训练每一个参数，每个约 16 字节；LoRA 只训练小小的适配器，模型保持冻结，每个参数 2 字节（16-bit）。
# - 每个被适配的 Linear 层得到 `A`（r × in）和 `B`（out × r）：共 `r × (in + out)` 个参数，更新量为 `B A x · alpha / r`，其秩最多为 `r`。
# - 在调用 `FastLanguageModel.get_peft_model` 之前，先手算适配器的参数量；PEFT 的统计必须与之相符。
# - alpha 固定时，`alpha / r` 会随秩增大而缩小；课程保持 `alpha = 2r`，而 rsLoRA（`alpha / sqrt(r)`）是另一种解决办法。
# - `B` 从零开始，所以在训练改变它之前，模型的输出保持不变。
#
# 下一步：[notebook 3](03_data_formatting.ipynb) 把数学应用题转换成 ERNIE 的对话格式，为训练做好准备。
#
# ## 练习
#
# 1. 设置 `TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]`（只适配注意力），然后重新运行。还剩多少可训练参数？第 8 节的列表中少了哪几类？
# 2. 设置 `USE_RSLORA = True`，然后重新运行。PEFT 存下的缩放系数是否符合第 6 节的 `alpha / sqrt(r)`？
# 3. 设置 `LORA_R = 64` 和 `LORA_ALPHA = 128`。可训练参数和 LoRA 训练所需的显存各增长了多少？第 9 节中 logits 的差值还是 0 吗？

# %% [markdown] en_hash="457af818a3"
# ### 参考答案：请先自己试一试；每个答案都已折叠，点击即可展开
#
# “全部运行”（Run All）会跳过它们：每个答案只打印一行提示，直到你在下面的单元格里设置 `SHOW_SOLUTIONS = True`
# 并运行它。然后再运行你想看的那个答案（它的输出也是折叠的：点击即可展开）。
#
# 每个答案都会重新加载一份基座模型，并添加它自己的适配器，所以 notebook 中的 `model` 保留的仍是第 7 节添加的那些适配器。

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% en_title="Solution 1: attention only" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 1：只适配注意力 { display-mode: "form" }
# %%solution
attention = ["q_proj", "k_proj", "v_proj", "o_proj"]
base, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path, max_seq_length=MAX_SEQ_LENGTH,
                                            dtype=precision.torch_dtype, load_in_4bit=LOAD_IN_4BIT)
by_hand = sum(r * (fan_in + fan_out) for _, fan_in, fan_out in linear_shapes(base, attention))
attention_model = FastLanguageModel.get_peft_model(base, r=r, target_modules=attention, lora_alpha=lora_alpha,
                                                   lora_dropout=LORA_DROPOUT, bias="none", random_state=SEED,
                                                   use_rslora=USE_RSLORA)
n_attention, _ = attention_model.get_nb_trainable_parameters()
kinds = {name.split(".")[-1] for name, module in attention_model.named_modules() if hasattr(module, "lora_A")}
print(f"attention only: {n_attention:,} trainable (by hand: {by_hand:,}) = {n_attention / trainable:.0%} of "
      f"the {trainable:,} on all seven kinds")
print(f"adapted: {sorted(kinds)}; gone: {sorted(set(TARGET_MODULES) - kinds)}")

# %% en_title="Solution 2: rsLoRA's scaling" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 2：rsLoRA 的缩放系数 { display-mode: "form" }
# %%solution
base, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path, max_seq_length=MAX_SEQ_LENGTH,
                                            dtype=precision.torch_dtype, load_in_4bit=LOAD_IN_4BIT)
rs_model = FastLanguageModel.get_peft_model(base, r=r, target_modules=TARGET_MODULES, lora_alpha=lora_alpha,
                                            lora_dropout=LORA_DROPOUT, bias="none", random_state=SEED,
                                            use_rslora=True)
stored = {module.scaling["default"] for _, module in rs_model.named_modules() if hasattr(module, "lora_A")}
print(f"PEFT's scaling with rsLoRA, the same in every layer: {stored}")
print(f"alpha / sqrt(r) = {lora_alpha} / sqrt({r}) = {lora_alpha / r ** 0.5:.3f}; without rsLoRA: alpha / r = "
      f"{lora_alpha / r:.3f}")
# With alpha = 2r the rsLoRA scale is 2 sqrt(r), which grows with the rank: with rsLoRA, keep alpha fixed.

# %% en_title="Solution 3: rank 64" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 3：秩 64 { display-mode: "form" }
# %%solution
base, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path, max_seq_length=MAX_SEQ_LENGTH,
                                            dtype=precision.torch_dtype, load_in_4bit=LOAD_IN_4BIT)
rank64 = FastLanguageModel.get_peft_model(base, r=64, target_modules=TARGET_MODULES, lora_alpha=128,
                                          lora_dropout=LORA_DROPOUT, bias="none", random_state=SEED,
                                          use_rslora=USE_RSLORA)
n_rank64, _ = rank64.get_nb_trainable_parameters()
bill_rank64 = n_parameters * bytes_per_frozen + n_rank64 * bytes_per_trained
with torch.no_grad():
    logits_rank64 = rank64(**inputs).logits
print(f"trainable: {trainable:,} at r = {r} -> {n_rank64:,} at r = 64 ({n_rank64 / trainable:.1f}x, "
      f"{100 * n_rank64 / n_parameters:.1f}% of the model)")
print(f"LoRA's memory bill: {lora_bill / 2**20:.1f} -> {bill_rank64 / 2**20:.1f} MiB ({bill_rank64 / lora_bill:.2f}x); "
      f"full fine-tuning: {full_bill / 2**20:.1f} MiB")
print(f"max |logits at r = 64 - logits before LoRA| = {(logits_rank64 - logits_before).abs().max().item():.2e}")
