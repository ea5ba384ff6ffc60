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

# %% [markdown] en_hash="38c51e94f9"
# # 4 · 训练：SFTTrainer、loss，以及训练改变了什么
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/zh/04_training.ipynb)
#
# **你将学到：** 在训练之前，先在留出（held-out）问题上给模型打分；添加 LoRA 适配器；配置 TRL 的 `SFTConfig` 和 `SFTTrainer`；在一个真实的 batch 上确认只有答案参与训练；读懂学习率调度（learning-rate schedule）和 loss 曲线；保存 checkpoint 并从中恢复训练；衡量训练改变了什么；以及为 notebook 5 保存适配器。
#
# **你需要：** 一个带 GPU 的 Colab 运行时（*代码执行程序（Runtime）→ 更改运行时类型（Change runtime type）→ T4 GPU*）。notebook 3 保存的数据从工作目录读取；如果那里没有，本 notebook 会重建课程的默认数据，并且会说明这一点。
#
# **在 T4 上的耗时：** 约 10 分钟：安装 2 分钟，训练几分钟，其余时间用来在训练前后给回答打分。

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

# %% [markdown] en_hash="7d2be74cf6"
# ## 1 · 先导入 Unsloth
#
# Unsloth 在被导入时会给 `transformers`、`peft` 和 `trl` 打补丁，所以要在它们之前导入；它会告诉你自己选择了哪个后端。

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("zh")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %% [markdown] en_hash="8d8d656a86"
# ## 2 · 这是一台什么机器？
#
# 最后一行决定 trainer 使用的精度：Ampere 或更新的 GPU 用 bf16，T4 用 fp16，CPU 用 fp32。

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown] en_hash="e00a54e28d"
# ## 3 · 设置
#
# 本 notebook 训练时用到的每一个数字都在这里。模型和 LoRA 的设置与 notebook 1 和 2 一致；训练设置是一次简短的首次训练（60 步），T4 几分钟就能跑完。断线之后，设置 `RESUME_FROM_CHECKPOINT = True` 并重新运行所有单元格：训练会从上一个 checkpoint 停下的地方继续。

# %% tags=["parameters"]
from course_lib.paths import work_dir

MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # the chat model; "baidu/ERNIE-4.5-0.3B-Base-PT": the base model
MAX_SEQ_LENGTH = 1024  # tokens Unsloth prepares for; the word problems need < 400
LOAD_IN_4BIT = False  # True: QLoRA, the blocks' Linear weights in 4 bits (the course trains it on a GPU)
LORA_R = 16  # adapter rank: 8, 16, 32, 64; higher = more capacity, more memory
LORA_ALPHA = 32  # the update is scaled by alpha / r; 2 x r is the usual choice
LORA_DROPOUT = 0.0  # 0 is fastest in Unsloth; 0.05-0.1 against overfitting on small data
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # all 7 per block
USE_RSLORA = False  # True scales by alpha / sqrt(r): steadier at high ranks
MAX_LENGTH = 1024  # tokens per example the trainer keeps (SFTConfig max_length); longer ones are cut
BATCH_SIZE = 8  # rows per device per step; halve it if the GPU runs out of memory
PACKING = True  # GPU: fill each row with several examples, up to MAX_LENGTH tokens (section 9 says why)
GRAD_ACCUMULATION = 1  # steps whose gradients add up before one update: 4 x batch 2 = batch 8
LEARNING_RATE = 2e-4  # LoRA's usual range is 1e-4 to 5e-4; full fine-tuning uses about 10x less
MAX_STEPS = 60  # optimizer updates; wins over num_train_epochs
WARMUP_STEPS = 5  # updates over which the learning rate climbs from 0 to LEARNING_RATE
SEED = 3407  # same seed, same adapter initialisation and data order
SAVE_STEPS = 20  # updates between checkpoints
N_EVAL = 50  # held-out questions scored before and after training
N_EVAL_LOSS = 32  # other held-out conversations whose loss the trainer measures during training
MAX_NEW_TOKENS = 256  # longest answer generated, in tokens; a worked solution needs < 150
RESUME_FROM_CHECKPOINT = False  # True after a disconnect: continue from the newest checkpoint in CHECKPOINT_DIR

WORK_DIR = work_dir()  # $ERNIE_COURSE_WORK, /content/ernie-course on Colab, else ~/ernie-course
DATA_DIR = WORK_DIR / "data"  # notebook 3 saved `train` and `heldout` here
CHECKPOINT_DIR = WORK_DIR / "checkpoints"  # the trainer saves checkpoint-<step> folders here
ADAPTER_DIR = WORK_DIR / "lora-adapter"  # this notebook saves the adapter here; notebook 5 reads it

# %% [markdown] en_hash="374cefbaaa"
# 设置里的笔误应该现在就让 notebook 停下来，而不是等到模型加载完之后：`check_training_settings` 会指出任何不可能的取值（秩为 0、把学习率 2e-4 写成了 2e4……），并告诉你该用什么值。

# %%
from course_lib.checks import check_training_settings, stop_if

stop_if(check_training_settings(LORA_R, LORA_ALPHA, LEARNING_RATE, MAX_STEPS, BATCH_SIZE, GRAD_ACCUMULATION,
                                lora_dropout=LORA_DROPOUT, max_length=MAX_LENGTH), "in the settings cell")
print(f"settings OK: r = {LORA_R}, alpha = {LORA_ALPHA} (scale {LORA_ALPHA / LORA_R:g}), learning rate "
      f"{LEARNING_RATE:.1e}, {MAX_STEPS} steps of {BATCH_SIZE} x {GRAD_ACCUMULATION} rows")

# %% [markdown] en_hash="76a55daef9"
# ## 4 · 加载模型
#
# 和 notebook 1 中的调用完全相同。离线时，横幅会醒目地说明改用了离线替身模型。

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %%
print("before:", env.memory())

# %%
model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=model_choice.name_or_path,  # on Colab this is MODEL_NAME; offline, the stand-in's folder
    max_seq_length=MAX_SEQ_LENGTH,  # Unsloth's name for the context it prepares for
    dtype=precision.torch_dtype,  # bf16 on Ampere+, fp16 on a T4, fp32 on a CPU
    load_in_4bit=LOAD_IN_4BIT,  # bitsandbytes 4-bit (QLoRA); needs a GPU
)

# %%
print("after: ", env.memory())

# %% [markdown] en_hash="0f64ced92e"
# ## 5 · 数据
#
# notebook 3 在工作目录中保存了两个划分：`train`，以及 `heldout`（从未用于训练的问题，用来打分）。如果它们不在了（Colab 重启运行时后会丢掉文件），这里会重建课程的默认数据，并由单元格说明这一点。

# %%
import datasets

from course_lib.data import load_math_dataset, to_messages

if (DATA_DIR / "train").exists() and (DATA_DIR / "heldout").exists():
    train = datasets.load_from_disk(str(DATA_DIR / "train"))
    heldout = datasets.load_from_disk(str(DATA_DIR / "heldout"))
    print(f"loaded notebook 3's splits from {DATA_DIR}")
else:
    print("!" * 100 + f"\nNOTEBOOK 3'S OUTPUT WAS NOT FOUND in {DATA_DIR}: rebuilding the default data instead.")
    (train, choice), (heldout, _) = load_math_dataset("train"), load_math_dataset("heldout")
    train, heldout = train.map(to_messages), heldout.map(to_messages)
    print(choice.banner() + "\n" + "!" * 100)
print(f"train: {len(train):,} rows, held-out: {len(heldout):,} rows, columns {train.column_names}")

# %% [markdown] en_hash="715ae93092"
# trainer 用分词器的对话模板渲染每一段 `messages` 对话。ERNIE 自己的模板没有 `{% generation %}` 标记，而 `assistant_only_loss` 需要靠它们找到答案的 token（notebook 3 演示了原因），所以要把课程的模板（渲染出的文本完全相同）设置到分词器上。

# %%
from course_lib.ernie import TRAINING_CHAT_TEMPLATE

tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
print(tokenizer.apply_chat_template(train[0]["messages"], tokenize=False))

# %% [markdown] en_hash="e64fd27136"
# ## 6 · 训练之前：给模型打分
#
# 要知道训练改变了什么，先得测量，而且要在模型没有训练过的问题上测量。一个留出问题如果重复了某个训练问题（一字不差，或者换了说法但数字相同），测到的就是记忆而不是能力，所以先把这些问题去掉。（"相近"指数字相同，并且至少 20% 的词三元组相同：`course_lib/data.py` 说明了为什么是 20%，以及哪些换了说法的问题是按词比较看不出来的。）

# %%
from course_lib.data import drop_training_repeats

heldout, dropped = drop_training_repeats(heldout, train)
print(f"dropped {dropped['exact']} exact and {dropped['near']} near repeats of training questions: "
      f"{len(heldout)} held-out questions left")

# %% [markdown] en_hash="0a47684ef5"
# 先问一个问题，把调用一一写出来：这就是 `evaluate` 对每个问题做的事。提示是用 ERNIE 对话格式写出的问题，以 `Assistant:` 结尾（notebook 3 说明了为什么去掉最后那个空格）；贪心解码（`do_sample=False`）让回答可以复现；遇到 ERNIE 的任何一个结束标记就停止。

# %%
from course_lib.chat_format import generation_prompt
from course_lib.evaluation import stop_token_ids

FastLanguageModel.for_inference(model)
prompt = generation_prompt(tokenizer, [{"role": "user", "content": heldout[0]["question"]}])
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                        eos_token_id=stop_token_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))

# %% [markdown] en_hash="68d438606b"
# `evaluate` 用对话格式提出其中的前 `N_EVAL` 个问题，用贪心解码生成回答（可以复现），并分开测量两件事：回答是否在训练教它停下的地方*停下*，即在 `MAX_NEW_TOKENS` 以内以 `<|end_of_sentence|>` 结束（摘要也会数出以 `</s>` 这个文本结束符结束的回答，以及用完了 token 的回答）；以及它的*最终数字*是否等于参考答案的。参考答案里没有一个明确最终数字的行（"3 cm 乘 4 cm"、"剩下 3/4"）无法打分：这些行会被跳过，并计数。每个比率都附带 95% 区间：50 个问题时，50% 左右的比率有 ±7 个百分点的不确定性（一个标准误），95% 区间是 ±14 个百分点。把结果留着：第 15 节会再问一遍同样的问题。

# %%
from course_lib.evaluation import evaluate

before = evaluate(model, tokenizer, heldout, limit=N_EVAL, max_new_tokens=MAX_NEW_TOKENS)
print("before training:", before.summary())

# %% [markdown] en_hash="df35926dee"
# 它写出了什么？ERNIE-4.5-0.3B-PT 是对话模型，所以它会按对话格式作答；训练改变的是内容和形式：数据集里的解题步骤，最后以 `The answer is N.` 结尾。（如果设置 `MODEL_NAME = "baidu/ERNIE-4.5-0.3B-Base-PT"`，用的是基础模型，它的模型卡说它 "only supports text completion"（只支持文本续写），起点更远，训练前后的差别也更大。）离线时，离线替身模型模仿的是对话模型。读一个回答：它有没有分步骤解题，有没有以一个数字结尾，有没有停下来？

# %%
print(f"Q: {before.questions[0]}\n\nbefore training: {before.predictions[0]}")

# %% [markdown] en_hash="ed1fa3816a"
# ## 7 · 添加 LoRA 适配器
#
# `for_training` 把 Unsloth 从推理路径切换回训练；`get_peft_model` 冻结模型并添加适配器，所用的设置与 notebook 2 讲解的相同。

# %%
FastLanguageModel.for_training(model)
model = FastLanguageModel.get_peft_model(
    model,
    r=LORA_R,  # rank of the update: 8, 16, 32, 64
    target_modules=TARGET_MODULES,  # which Linear layers get an adapter
    lora_alpha=LORA_ALPHA,  # scale: the update is multiplied by alpha / r
    lora_dropout=LORA_DROPOUT,  # 0 is what Unsloth optimises for
    bias="none",  # train no biases: the adapter stays small and mergeable
    use_gradient_checkpointing="unsloth",  # recompute activations in the backward pass: much less memory
    random_state=SEED,  # the adapters' initial values
    use_rslora=USE_RSLORA,  # rank-stabilised scaling, alpha / sqrt(r)
)

# %%
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
total = sum(p.numel() for p in model.parameters())
print(f"{trainable:,} trainable of {total:,} parameters = {100 * trainable / total:.2f}%")

# %% [markdown] en_hash="be8558dae2"
# ## 8 · 训练多少
#
# 对第一次训练来说，最重要的两个数字是学习率和优化器的步数。拖动滑块：读数会告诉你每个值通常意味着什么；这些步数加起来相当于多少样本、多少个 epoch 和多少 token（在训练数据上实测），分别按这里和 T4 上的同一次训练来算，各自按自己的打包（packing）方式计算（Unsloth 的 CPU 后端会关掉打包）；以及这次 T4 训练需要多少资源：GPU 显存峰值和耗时，根据 H200 上的实测结果估算（`course_lib/budget.py`），某个设置放不下时会事先发出警告。在无界面（headless）模式下运行时，保持设置中的值。

# %%
import torch
from IPython.display import display

from course_lib.widgets import learning_rate_slider, steps_slider

gpus = max(1, torch.cuda.device_count())  # devices that each take BATCH_SIZE rows per step (1 on a CPU)
sample = train.select(range(min(500, len(train))))
lengths = [len(ids) for ids in tokenizer.apply_chat_template(list(sample["messages"]))["input_ids"]]
tokens_per_example = sum(lengths) / len(lengths)  # measured on the first 500 rows
packs = PACKING and card is not None  # Unsloth's CPU backend turns packing off
examples_per_row = MAX_LENGTH / tokens_per_example if packs else 1  # a packed row holds several examples
t4_run = dict(model=MODEL_NAME, r=LORA_R, batch=BATCH_SIZE, max_length=MAX_LENGTH, packing=PACKING,
              accumulation=GRAD_ACCUMULATION, load_in_4bit=LOAD_IN_4BIT, example_tokens=tokens_per_example)
lr_slider = learning_rate_slider(LEARNING_RATE)
step_slider = steps_slider(MAX_STEPS, BATCH_SIZE, GRAD_ACCUMULATION, gpus, tokens_per_example, len(train),
                           examples_per_row, t4_run=t4_run, current=card)
display(lr_slider, step_slider)

# %% [markdown] en_hash="7087ff6941"
# 这个单元格读取滑块的值。*有效 batch*（effective batch）是一次更新所平均的范围：每个设备的行数 × 梯度累积步数 × 设备数。`max_steps` 计的是更新次数，并且优先于 `num_train_epochs`。不打包时，一行就是一个样本，所以 60 步、每步 8 个样本，一共看到 480 个样本；在 GPU 上打包时，每个 1,024 token 的行装着好几个样本，60 步大约会把整个训练集看一到两遍。两种情况都足以教会模型一种格式。

# %%
import math

learning_rate, max_steps = lr_slider.value, step_slider.value
effective_batch = BATCH_SIZE * GRAD_ACCUMULATION * gpus
steps_per_epoch = math.ceil(len(train) / (effective_batch * examples_per_row))
print(f"learning_rate = {learning_rate:.1e}, max_steps = {max_steps}, {tokens_per_example:.0f} tokens per example")
print(f"effective batch = {BATCH_SIZE} per device x {GRAD_ACCUMULATION} accumulation x {gpus} device(s) = "
      f"{effective_batch} rows of about {examples_per_row:.1f} example(s) each (packing {'on' if packs else 'off'})")
print(f"one epoch = {steps_per_epoch} steps, so {max_steps} steps = {max_steps / steps_per_epoch:.2f} epochs")

# %% [markdown] en_hash="5876573d78"
# ## 9 · Trainer
#
# `SFTConfig` 保存所有训练设置；请读一读注释。`assistant_only_loss=True` 只在答案上训练。
#
# **为什么选择打包、batch 8 和 max_length 1024。** 一道应用题大约 150 个 token。不打包时，一步 8 个样本只处理约 1,200 个 token，GPU 大部分时间都在等待。在一块 GPU 上用这个模型的完整形状实测（`bench/RESULTS.md`，一块 H200）：不打包的 batch 8 每秒处理 **7,241** 个真实（非填充）token；打包成 1,024 token 的行之后，同样 8 行一个 batch 每秒处理 **47,362** 个（6.5×），GPU 显存峰值为 **2.8 GiB**，远在 T4 的 15 GB 之内。本课程起源的那篇教程（batch 1 × 8 步梯度累积，4,096 token 的行）只有 26,782。在一个打包行中，每个样本的位置编号都从 0 重新开始（第 10 节会展示），Unsloth 把这些边界变成块对角（block-diagonal）注意力，所以样本之间不会互相关注。Unsloth 的 CPU 后端会关闭打包。
#
# 这两点在 2026-12-01 都实测过（`bench/RESULTS.md`，同样是一块 H200）：在 Unsloth 下，打包行里每个样本得到的 logits 与它单独运行时相同，差别在 bf16 自身的舍入误差之内（0.031 对 0.041）；每步 32 个打包行时，每秒处理的 token 是原教程的 4.1-4.4 倍。默认值仍然是 8 行：在离线替身模型上，同样的 3,100 个样本，步子越大学到的越少（同样的学习率下，每步 208 个样本时留出 loss 为 0.90，每步 52 个时为 0.73），所以按 token 算更快，并不等于按样本算更好。

# %%
from trl import SFTConfig, SFTTrainer

training_args = SFTConfig(
    output_dir=str(CHECKPOINT_DIR),  # checkpoints land here
    per_device_train_batch_size=BATCH_SIZE,  # examples per device per step; lower it on out-of-memory errors
    gradient_accumulation_steps=GRAD_ACCUMULATION,  # raise it to keep the effective batch when you lower the batch
    max_steps=max_steps,  # optimizer updates; set it to -1 to train num_train_epochs instead
    learning_rate=learning_rate,  # peak rate, reached after warm-up
    lr_scheduler_type="linear",  # decays linearly towards 0; "cosine" and "constant" are alternatives
    warmup_steps=WARMUP_STEPS,  # climb from 0 first: Adam's first steps rest on little gradient history
    optim="adamw_8bit",  # AdamW with 8-bit optimizer states: less memory, about the same results
    weight_decay=0.01,  # a light pull towards 0 on the adapter weights
    logging_steps=1,  # log the loss every step (5 or 10 on long runs)
    save_steps=SAVE_STEPS,  # write a checkpoint every SAVE_STEPS updates
    save_total_limit=3,  # keep the newest 3 checkpoints; older ones are deleted
    eval_strategy="steps",  # also measure the loss on held-out conversations while training
    eval_steps=0.2,  # below 1, a fraction of max_steps: every 20% of the run, 5 evaluations
    eval_on_start=True,  # and one before the first update: the held-out loss of the untrained model
    per_device_eval_batch_size=BATCH_SIZE,  # evaluation keeps no gradients: this batch fits where training's does
    max_length=MAX_LENGTH,  # tokens per example; longer examples are cut
    packing=PACKING,  # several examples per row: 6.5x the tokens per second measured (see above)
    assistant_only_loss=True,  # loss on the answer tokens only: the {% generation %} part of the template
    bf16=precision.bf16,  # Ampere and newer
    fp16=precision.fp16,  # a T4
    use_cpu=card is None,  # no GPU: train on the CPU in fp32
    seed=SEED,  # data order and dropout
    report_to="none",  # or "wandb", "tensorboard" to log to a dashboard
)
train_dataset = train.select_columns(["messages"])  # the trainer needs only the conversations
# The last N_EVAL_LOSS held-out conversations: the questions section 6 scores come first, so these are others.
eval_dataset = heldout.select(range(len(heldout) - N_EVAL_LOSS, len(heldout))).select_columns(["messages"])
trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train_dataset, eval_dataset=eval_dataset,
                     args=training_args)

# %% [markdown] en_hash="5c0a89cdd8"
# **Unsloth 可能会改动这些设置。** 它的 CPU 后端会改写处理器无法运行的设置，并在上方打印说明：8-bit 优化器需要 GPU（换成 `adamw_torch_fused`），打包需要 FlashAttention（被关掉），在没有 bf16 指令的处理器上 `bf16=True` 会变成 `False`。在 GPU 上，它们按要求运行。对比一下你要求的设置和 trainer 实际会用的设置：

# %%
asked = {"optim": "adamw_8bit", "packing": PACKING, "bf16": precision.bf16, "fp16": precision.fp16}
for name, value in asked.items():
    used = getattr(trainer.args, name)
    used = getattr(used, "value", used)  # optim is an enum
    print(f"{name:<8} asked {value!s:<12} used {used!s:<20}{'' if used == value else '<- changed by Unsloth'}")
print(f"on {trainer.args.device}; {len(trainer.train_dataset):,} rows, tokenized: {trainer.train_dataset.column_names}")

# %% [markdown] en_hash="85478f7fbd"
# **旧教程，新 TRL。** 很多教程（包括本课程所源自的那一篇）把下面这些参数传给 trainer；TRL 1.x 已经把它们移走或改了名：
#
# | 旧教程的写法 | TRL 1.x 的写法 |
# |---|---|
# | `SFTTrainer(tokenizer=tokenizer)` | `SFTTrainer(processing_class=tokenizer)` |
# | `SFTTrainer(dataset_text_field="text")` | `SFTConfig(dataset_text_field="text")` |
# | `SFTTrainer(max_seq_length=2048)` | `SFTConfig(max_length=2048)` |
# | `SFTTrainer(packing=True)` | `SFTConfig(packing=True)` |
# | `SFTConfig(max_seq_length=2048)`、`evaluation_strategy=` | `SFTConfig(max_length=2048)`、`eval_strategy=` |
#
# TRL 自己的 `SFTTrainer` 会拒绝这些旧名字，报 `TypeError: ... unexpected keyword argument`。`import unsloth` 之后换上的是 Unsloth 的包装类，它仍然接受前四个，并把它们放到该放的地方，所以旧代码在这里能跑，换个环境就会出错。`SFTConfig` 即使在 Unsloth 下也会拒绝它的旧名字：

# %%
for old in ("max_seq_length", "evaluation_strategy"):
    try:
        SFTConfig(output_dir=str(CHECKPOINT_DIR), bf16=precision.bf16, fp16=precision.fp16, use_cpu=card is None,
                  **{old: 1024})
    except TypeError as error:
        print(f"{type(error).__name__}: {error}")

# %% [markdown] en_hash="97ec880be2"
# ## 10 · loss 看到的是什么：一个真实的 batch
#
# trainer 的数据加载器（data loader）把数据行变成一个由 `input_ids` 和 `labels` 组成的 batch。label 为 -100 表示"这里不计 loss"。解码 batch 中的第一个样本：问题和 `Assistant: ` 应该被屏蔽（masked），只有答案和它的 `<|end_of_sentence|>` 参与训练。如果所有内容都参与训练，模型还会学着去写问题。（在 GPU 上，Unsloth 可能把一个 batch 的样本首尾相接地放进一行，不加填充：这时 `first_example` 会在位置编号重新从 0 开始的地方切出第一个样本。）

# %%
batch = next(iter(trainer.get_train_dataloader()))
print({name: tuple(tensor.shape) for name, tensor in batch.items()})

# %%
from course_lib.training import first_example, label_runs

input_ids, labels = first_example(batch)
for trained, ids in label_runs(input_ids, labels):
    print(f"{'TRAINED' if trained else 'masked '} ({len(ids):>3} tokens): {tokenizer.decode(ids)!r}")

# %% [markdown] en_hash="c0ecc182a9"
# 对整个 batch 做同样的统计。如果有填充，填充不计入：它既不参与训练，也不是真实的 token。

# %%
from course_lib.checks import label_counts

print(label_counts(batch))

# %% [markdown] en_hash="395d3c4f37"
# 在耗时较长的部分开始之前设一道防线：如果对话模板标记了错误的 token，或者 loss 一个 token 都看不到（掩码坏了就什么也训练不到，而 loss 显示为 0，仿佛一切正常），或者看到了所有 token（连问题也在训练），就停下来。TRL 还会在不发出任何警告的情况下丢掉问题本身就占满 `MAX_LENGTH` 的行：数一数它保留了多少。

# %%
from course_lib.checks import check_chat_template, check_labels

stop_if(check_chat_template(tokenizer) + check_labels(trainer.train_dataset), "before training")
print(f"template and labels OK; TRL kept {len(trainer.train_dataset):,} of {len(train):,} rows")

# %% [markdown] en_hash="17d9ce1431"
# ## 11 · 学习率调度
#
# trainer 用 `transformers.get_scheduler` 根据自己的参数构建学习率调度。在训练之前，在这里构建一个一模一样的调度并画出来：预热（warm-up）阶段线性上升，然后线性衰减到 0。注意第 1 步更新时的学习率是 0：预热是从零开始的。

# %%
from course_lib.plots import plot_schedule
from course_lib.training import planned_learning_rates

planned = planned_learning_rates(trainer.args, max_steps)
warmup = trainer.args.get_warmup_steps(max_steps)
print(f"step 1: {planned[0]:.1e}, step {warmup + 1} (peak): {planned[warmup]:.1e}, "
      f"step {max_steps}: {planned[-1]:.1e}")
figure = plot_schedule(planned, warmup)

# %% [markdown] en_hash="212ca21f5c"
# ## 12 · 训练
#
# `trainer.train()` 运行训练循环：取 batch、前向传播、计算 loss、反向传播、优化器更新、调度器更新、记录日志，并且每 `SAVE_STEPS` 步保存一个 checkpoint。设置了 `RESUME_FROM_CHECKPOINT = True` 时，它会先重新加载 `CHECKPOINT_DIR` 中最新的 checkpoint。在 GPU 上，Unsloth 会先打印一个横幅，列出样本数、总步数和总 batch 大小（即第 8 节的有效 batch）。在 GPU 上，比较训练前后的显存峰值：LoRA 只训练一小部分权重，所以峰值的增长比激活值多不了多少。在 CPU 上，这个数字是整个进程的内存，离线替身模型的训练几乎不会让它变化。

# %%
print("before:", env.memory())

# %% [markdown] en_hash="e962f59620"
# 如果这个单元格失败了，`doctor` 会读取错误和 trainer，说明该改什么（显存不足、旧的 TRL 参数、对话模板、在 T4 上用了 bf16），然后照常抛出错误。

# %%
import time

from course_lib.doctor import doctor

start = time.perf_counter()
try:
    trainer_stats = trainer.train(resume_from_checkpoint=RESUME_FROM_CHECKPOINT or None)
except Exception as error:
    doctor(error=error, trainer=trainer)
    raise
seconds = time.perf_counter() - start
print(f"at step {trainer_stats.global_step} of {max_steps} after {seconds:.0f} s "
      f"on {card.name if card else 'the CPU'}")

# %%
print("after: ", env.memory())

# %% [markdown] en_hash="5f38640537"
# 这些是计划中的学习率吗？trainer 记录了每一步的学习率。在 transformers 5 中，第 *s* 步记录的值就是第 *s* 步更新时用的值（它在调度器前进之前读取），所以要把第 *s* 步和计划中的第 *s* 步比较；错开一步比较，两者就对不上。

# %%
from course_lib.training import logged_learning_rates

logged = logged_learning_rates(trainer.state.log_history)
same_step = max(abs(rate - planned[step - 1]) for step, rate in logged.items())
one_off = max(abs(rate - planned[step]) for step, rate in logged.items() if step < max_steps)
print(f"{len(logged)} logged rates; largest difference from the plan: {same_step:.1e} (same step), "
      f"{one_off:.1e} (one step later)")

# %% [markdown] en_hash="3af88d3124"
# ## 13 · Loss
#
# loss 是模型在每个参与训练的 token 上的平均"意外程度"（交叉熵，单位是 nat）。先看日志中的几行，再看曲线：

# %%
import pandas as pd

log = pd.DataFrame([row for row in trainer.state.log_history if "loss" in row])
print(log[["step", "loss", "grad_norm", "learning_rate"]].to_string(index=False, max_rows=8))

# %% [markdown] en_hash="bdc298fadb"
# trainer 还在 `N_EVAL_LOSS` 段留出对话上测量了 loss：第一次更新之前测一次，之后每跑完 20% 测一次。下表把每一次的留出 loss 和自上一次评估以来各步训练 loss 的平均值放在一起（单独一步的 loss 只基于一个 8 条样本的 batch，噪声太大，不宜单独比较）：

# %%
from course_lib.plots import loss_table

print(pd.DataFrame(loss_table(trainer.state.log_history)).to_string(index=False, na_rep="-",
                                                                      float_format="{:.3f}".format))
evaluations = [row for row in trainer.state.log_history if "eval_loss" in row]
print(f"{len(evaluations)} evaluations took {sum(row['eval_runtime'] for row in evaluations):.1f} s in all")

# %%
from course_lib.plots import plot_loss

figure = plot_loss(trainer.state.log_history)

# %% [markdown] en_hash="af0a4ecdae"
# **两条曲线为什么不同。** 留出 loss 每次都在同一批对话上测量，而且是在该步更新之后。训练 loss 是在某一步的 batch 上、在该步更新之前测量的，而"自上一次评估以来的平均值"是对一个一直在进步的模型取平均：在下降的曲线上，留出 loss 略低于它并不说明有什么问题。在第一个 epoch 之内（第 8 节打印了这次训练跑了多远），每个训练 batch 对模型来说也是新的，所以两者测的都是模型还没有从中学习过的文本；如果差距朝另一个方向拉开，训练 loss 降到留出 loss 之下，而且差距越来越大，那就是模型在死记训练数据。这时应该少训练几步，或者用更多数据。

# %% [markdown] en_hash="490393c116"
# 如何读 loss 曲线：
#
# - **健康：** 一开始下降得很快，然后趋于平缓，每一步之间有些噪声：每个 batch 装的样本不同，有的更难，所以连续几步的上升（包括预热期间）本身并不说明有问题。要比较若干步的平均值，就像下面的单元格那样。
# - **出现尖峰，或者上升持续很多步：** 学习率太高；调低它，或者延长预热。
# - **从一开始就是平的：** 学习率太低，或者根本没有东西在训练（检查第 10 节中被屏蔽的 labels）。
# - **很快接近 0：** 模型在死记训练数据；数据太少而 epoch 太多。像接下来几节那样，在留出问题上检查它。
#
# 离线替身模型就是在类似的文本上预训练的，所以它的曲线起点就低，只会下降一点点。

# %%
from course_lib.plots import losses_from_history

steps, losses = losses_from_history(trainer.state.log_history)
print(f"first logged loss {losses[0]:.3f} (step {steps[0]}), last {losses[-1]:.3f} (step {steps[-1]})")
print(f"mean of the first 5: {sum(losses[:5]) / 5:.3f}, of the last 5: {sum(losses[-5:]) / 5:.3f}")

# %% [markdown] en_hash="e631d6ae3a"
# ## 14 · Checkpoint
#
# 每隔 `SAVE_STEPS` 次更新，trainer 就写入一个 `checkpoint-<step>` 文件夹：适配器、优化器和调度器的状态，以及随机数状态，也就是精确地继续训练所需的全部内容。

# %%
from course_lib.saving import folder_size
from course_lib.training import checkpoints

for step, path in checkpoints(CHECKPOINT_DIR):
    print(f"step {step:>5}: {path.name:<16} {folder_size(path) / 2**20:7.1f} MiB")
print("inside the newest:", sorted(p.name for p in checkpoints(CHECKPOINT_DIR)[-1][1].iterdir()))

# %% [markdown] en_hash="dd6bef93c5"
# **恢复训练。** 如果 Colab 在训练中途断开，重新连接后，在设置中设 `RESUME_FROM_CHECKPOINT = True`，然后运行所有单元格：`trainer.train(resume_from_checkpoint=True)` 会选取 `CHECKPOINT_DIR` 中最新的 checkpoint，从它的步数接着训练，调度和数据顺序都保持不变。
#
# **把 checkpoint 保存在 Google Drive 上。** Colab 运行时被回收时，它的磁盘会被清空，checkpoint 也不例外。要保留它们，就在设置单元格之后紧接着加一个单元格，挂载你的 Drive，并把 `CHECKPOINT_DIR` 指向那里（或者在设置单元格之前把 `ERNIE_COURSE_WORK` 设为 Drive 中的一个文件夹，从而保留整个工作目录）：
#
# ```python
# from pathlib import Path
# from google.colab import drive
#
# drive.mount('/content/drive')
# CHECKPOINT_DIR = Path("/content/drive/MyDrive/ernie-course/checkpoints")
# ```

# %% [markdown] en_hash="b70af4f14e"
# ## 15 · 训练之后：改变了什么
#
# 同样的问题，同样的贪心解码，这次经过适配器。`for_inference` 把 Unsloth 切换回它的生成路径。

# %%
model.config.output_router_logits = False  # MoE: TRL turned the router loss on; generation cannot compute it
FastLanguageModel.for_inference(model)
after = evaluate(model, tokenizer, heldout, limit=N_EVAL, max_new_tokens=MAX_NEW_TOKENS)
print(f"before training: {before.summary()}\nafter training:  {after.summary()}")

# %% [markdown] en_hash="38866a9fc0"
# 变化超出偶然了吗？两个区间重叠与否说明不了问题，因为两个比率来自同一批问题：要逐题比较。只有发生了变化的问题才携带信息（只在训练后答对，或者只在训练前答对）；如果训练什么也没改变，其中每一个都会像抛一枚公平的硬币那样随机偏向一边。精确 McNemar 检验数出这些问题，给出偶然得到至少这么不均衡的划分的概率。

# %%
from course_lib.evaluation import paired_test

print(paired_test(before.stopped, after.stopped).summary("stopped at the end of turn"))
print(paired_test(before.correct, after.correct).summary("final number right"))

# %% [markdown] en_hash="f97139bbea"
# 不要只看比率，也要看回答：它们现在是否遵循训练数据的形式（先写解题步骤，再给出最终数字），并且会停下来？一个小到不会算术的模型（离线替身模型）可以学会形式，数字却仍然算错，所以两个比率要分开看。结束方式的统计数出每个回答在训练前后停在了哪个标记上：一个对话模型在任何训练之前就可能已经使用对话轮次结束符。

# %%
from course_lib.evaluation import side_by_side

print(side_by_side(before, after, n=3))

# %% [markdown] en_hash="ff740c1429"
# ## 16 · 保存适配器
#
# 在 LoRA 模型上调用 `save_pretrained` 只会写入适配器及其配置，不包括基座模型：对 r = 16 的 0.3B 模型来说，大约是 600 万个参数，几十 MB，而模型本身有 0.7 GB。分词器（连同对话模板）也一起保存，这样 notebook 5 就能从 `ADAPTER_DIR` 同时加载两者。大多数教程只写这两行：
#
# ```python
# model.save_pretrained(ADAPTER_DIR)  # adapter_model.safetensors + adapter_config.json
# tokenizer.save_pretrained(ADAPTER_DIR)  # the tokenizer and its chat template
# ```
#
# 下面的单元格做同样的事，但更安全。保存到一半中断时，绝不能留下一个看起来像适配器的文件夹：`atomic_folder` 先写进旁边的一个临时文件夹，只有所有保存都完成之后，它才变成 `ADAPTER_DIR`。
#
# `saving_format` 决定保存下来的副本带些什么，只对它里面的保存起作用。ERNIE 发布的生成配置只在 `</s>` 处停止，但每个训练过的答案都以 `<|end_of_sentence|>` 结尾：它把这个停止符加上。对话模板则是 ERNIE 的官方模板（文本相同；`{% generation %}` 只给 TRL 用，llama.cpp 和各种服务端都不接受它）。`save_vocabulary` 保留 `tokenizer.model`：transformers 5 不再写出这个文件，而转换 GGUF 需要它。

# %%
from course_lib.chat_format import saving_format
from course_lib.saving import atomic_folder

needed = ["adapter_model.safetensors", "adapter_config.json", "tokenizer.model"]
with saving_format(model, tokenizer) as what, atomic_folder(ADAPTER_DIR, required=needed) as staging:
    print(what)
    model.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)  # PEFT writes only the adapter: keep the stops beside it
    tokenizer.save_pretrained(staging)
    tokenizer.save_vocabulary(staging)  # tokenizer.model, the SentencePiece file
for path in sorted(ADAPTER_DIR.iterdir()):
    print(f"{path.stat().st_size:>12,} bytes  {path.name}")

# %% [markdown] en_hash="7243927f40"
# ## 17 · 多于一块 GPU
#
# 只展示，不运行：本 notebook 只用一块 GPU。`examples/finetune_ernie.py` 可以在 `accelerate launch` 下
# 用多块 GPU 做同样的训练：每块 GPU 一个进程，各持完整的模型，各算每个批次中自己的那一份（数据并行）。
# 有效批次随 GPU 数增长，为 `batch × accumulation × processes`，脚本会打印它；让它等于单 GPU 时的值，结果
# 就相同（`tests/test_multi_process.py` 在两个 CPU 进程上验证这一点）。在 Kaggle 的 2 × T4 上：
#
# ```bash
# accelerate launch --config_file examples/accelerate/ddp.yaml examples/finetune_ernie.py \
#     --data my_data.jsonl --output my-ernie --batch-size 4 --grad-accumulation 1
# # effective batch: 4 per GPU x 1 accumulation x 2 processes = 8 sequences per step
# ```
#
# 4-bit 的 ERNIE-4.5-21B-A3B 在专家上加 LoRA 后放不进一块 T4（估计约 15 GiB 显存），所以数据并行帮不上忙；
# `examples/accelerate/fsdp_qlora.yaml` 改为把它切分到 2-8 块 GPU 上（FSDP2）。Unsloth 目前对多 GPU 的
# 支持，以及哪些运行过、哪些没有：[docs/multi_gpu.md](../../docs/multi_gpu.md)。

# %% [markdown] en_hash="5bc5a6c8c7"
# ## 小结
#
# - 训练之前先测量：在训练前后用同样的留出问题打分，就能看出改变了什么。
# - `get_peft_model` 添加适配器；`SFTConfig` 保存所有训练设置；`SFTTrainer` 把模型、分词器、数据和设置组合在一起。
# - `assistant_only_loss=True` 屏蔽答案以外的一切（labels 为 -100）；解码一个真实的 batch 来检查。
# - 有效 batch 是 batch × 梯度累积步数 × 设备数；`max_steps` 计的是更新次数，并且优先于 epoch 数。
# - 学习率调度就是用 trainer 的参数调用 `get_scheduler`；记录下来的学习率与它逐步吻合。
# - 健康的 loss 先下降，再趋于平缓。checkpoint 让你可以恢复训练；在 Colab 上要把它们保存在 Drive 里。
# - `model.save_pretrained` 只保存适配器：几十 MB，而不是整个模型。
# - 想把这些复制到自己的项目里：[examples/finetune_ernie.py](../../examples/finetune_ernie.py) 用一个普通文件、不借助 `course_lib`，完成同样的流程（加载、LoRA、格式化、训练、合并、保存）。
#
# 下一步：[notebook 5](05_merge_and_save.ipynb) 加载适配器，把它合并进模型，并保存结果。
#
# ## 练习
#
# 1. 设置 `LEARNING_RATE = 2e-3`（10×），重新训练。比较两条 loss 曲线和两个分数。
# 2. 把 `LORA_R` 先改成 4，再改成 64（同时设 `LORA_ALPHA = 2 * LORA_R`）。可训练参数、loss 和分数分别怎样变化？
# 3. 打包在 GPU 上默认开启，在 CPU 上关闭（Unsloth 的 CPU 后端会关掉它）。两种方式下，一个 batch 各包含多少个样本？`max_steps` 步加起来相当于多少数据？（像 notebook 3 那样，用 TRL 的 `pack_dataset` 打包分词后的样本。）如果有 GPU，再用 `PACKING = False` 训练一次，比较耗时。
# 4. 自己写十道带解题过程的应用题，像 notebook 3 那样构建一个带 `messages` 列的 `Dataset`，只在它上面训练 30 步，然后问模型其中一道题和一道新题。
# 5. 在中文应用题上训练。`course_lib.data_zh.bundled_chinese_rows` 提供 500 道生成的中文应用题（另有 100 道留出题），每道都附有中文解题过程，并以 `答案是 N。` 结尾。像第 5 节那样把它们格式化，用第 9 节的 `SFTConfig` 和 `SFTTrainer` 训练一个新的适配器，并测量训练前后的留出 loss。再读一个回答：最后的数字对吗？

# %% [markdown] en_hash="7e01cde3b7"
# ### 参考答案：请先自己试一试；每个答案都已折叠，点击即可展开
#
# “全部运行”（Run All）会跳过它们：每个答案只打印一行提示，直到你在下面的单元格里设置 `SHOW_SOLUTIONS = True`
# 并运行它。然后再运行你想看的那个答案（它的输出也是折叠的：点击即可展开）。
#
# 答案 1 定义了 `train_fresh`，答案 2 和 4 会复用它：它在一份重新加载的基座模型上训练一个新的适配器，除了传给它的那几项之外都使用第 9 节的设置，并且不改动 `model` 和 `trainer`。在 GPU 上，这些训练和 notebook 中的一样长，并像第 15 节那样打分。在 CPU 上，它们跑完同一个调度的前 30 步就停下，也不打分（在 CPU 上回答 50 道题要好几分钟）。这些 loss 仍然可以公平比较：每次训练都以同样的顺序看到同样的 batch，而且在第一个 epoch 之内，每一步的 loss 都是在模型还没训练过的 batch 上测得的。

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% en_title="Solution 1: a learning rate 10x higher" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 1：学习率调高 10 倍 { display-mode: "form" }
# %%solution
import dataclasses

from transformers import TrainerCallback

COMPARE_STEPS = max_steps if card else min(30, max_steps)  # the whole run on a GPU; its first 30 steps on a CPU


class StopAfter(TrainerCallback):
    """Ends training after `steps` updates without changing the schedule, which stays planned for max_steps."""

    def __init__(self, steps):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.steps


def train_fresh(data=train_dataset, rank=LORA_R, steps=COMPARE_STEPS, **changes):
    """(model, losses) of a new adapter trained as in section 12, except for `changes` (SFTConfig fields) and
    the rank (alpha keeps the settings' ratio, 2 x r)."""
    base, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path, max_seq_length=MAX_SEQ_LENGTH,
                                                dtype=precision.torch_dtype, load_in_4bit=LOAD_IN_4BIT)
    fresh = FastLanguageModel.get_peft_model(base, r=rank, target_modules=TARGET_MODULES,
                                             lora_alpha=LORA_ALPHA * rank // LORA_R, lora_dropout=LORA_DROPOUT,
                                             bias="none", use_gradient_checkpointing="unsloth", random_state=SEED,
                                             use_rslora=USE_RSLORA)
    args = dataclasses.replace(training_args, output_dir=str(WORK_DIR / "exercise-runs"), save_strategy="no",
                               eval_strategy="no", eval_on_start=False, **changes)
    run = SFTTrainer(model=fresh, processing_class=tokenizer, train_dataset=data, args=args,
                     callbacks=[StopAfter(steps)])
    run.train()
    FastLanguageModel.for_inference(fresh)
    return fresh, losses_from_history(run.state.log_history)[1]


high_lr_model, high_lr_losses = train_fresh(learning_rate=10 * learning_rate)
print(f"step  loss at {learning_rate:.0e} (notebook)  loss at {10 * learning_rate:.0e}")
for step in sorted({1, *range(5, COMPARE_STEPS + 1, 5)}):
    print(f"{step:>4}  {losses[step - 1]:>22.3f}  {high_lr_losses[step - 1]:>11.3f}")
print(f"mean of the last 5: {sum(losses[COMPARE_STEPS - 5:COMPARE_STEPS]) / 5:.3f} against "
      f"{sum(high_lr_losses[-5:]) / 5:.3f}")
if card:
    high_lr_score = evaluate(high_lr_model, tokenizer, heldout, limit=N_EVAL, max_new_tokens=MAX_NEW_TOKENS)
    print(f"score at {learning_rate:.0e}: {after.summary()}; at {10 * learning_rate:.0e}: {high_lr_score.summary()}")

# %% en_title="Solution 2: rank 4 and rank 64" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 2：秩 4 和秩 64 { display-mode: "form" }
# %%solution
n_base = total - trainable
print(f"rank  trainable  share of the model  mean loss of steps {COMPARE_STEPS - 4}-{COMPARE_STEPS}")
print(f"{LORA_R:>4}  {trainable:>9,}  {100 * trainable / n_base:>17.1f}%  "
      f"{sum(losses[COMPARE_STEPS - 5:COMPARE_STEPS]) / 5:.3f} (the notebook's run)")
for rank in (4, 64):
    rank_model, rank_losses = train_fresh(rank=rank)
    n_lora = sum(p.numel() for name, p in rank_model.named_parameters() if "lora_" in name)
    print(f"{rank:>4}  {n_lora:>9,}  {100 * n_lora / n_base:>17.1f}%  {sum(rank_losses[-5:]) / 5:.3f}")
    if card:
        print("      score:", evaluate(rank_model, tokenizer, heldout, limit=N_EVAL,
                                       max_new_tokens=MAX_NEW_TOKENS).summary())
# The tiny slice is only 128 wide, so r = 64 adds more than half its size; on the real 0.3B model, 6.7%.

# %% en_title="Solution 3: what a batch holds, packed or not" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 3：打包与不打包时，一个 batch 里有什么 { display-mode: "form" }
# %%solution
from trl import pack_dataset

every_example = tokenizer.apply_chat_template(list(train["messages"]))["input_ids"]
packed_rows = pack_dataset(datasets.Dataset.from_dict({"input_ids": every_example}), seq_length=MAX_LENGTH)
per_row = len(every_example) / len(packed_rows)  # TRL's "bfd" packing, as on a GPU
for name, per_batch in [("unpacked", effective_batch), ("packed", effective_batch * per_row)]:
    seen = max_steps * per_batch
    print(f"{name:>8}: a batch of {effective_batch} rows holds {per_batch:.0f} examples; {max_steps} steps = "
          f"{seen:,.0f} examples = {seen / len(train):.2f} epochs")
n_in_batch = len(batch["input_ids"]) if "attention_mask" in batch else int((batch["position_ids"] == 0).sum())
print(f"section 10's batch, packing {'on' if packs else 'off'} here: {n_in_batch} examples")
if card is None:
    print(f"this CPU run is the unpacked one: {seconds:.0f} s for {trainer_stats.global_step} steps. Timing the "
          "packed run needs a GPU (bench/RESULTS.md, an H200: 7,241 tokens/s unpacked, 47,362 packed).")
else:
    print(f"this GPU run, packing {'on' if packs else 'off'}: {seconds:.0f} s; set PACKING = "
          f"{not PACKING} and run all cells to time the other way.")

# %% en_title="Solution 4: ten problems of your own" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 4：你自己的十道题 { display-mode: "form" }
# %%solution
from course_lib.data import answers_match
from course_lib.evaluation import generate_answers

own = [("Sam", 7, 5), ("Ana", 12, 9), ("Raj", 4, 8), ("Lin", 15, 6), ("Eva", 9, 9),
       ("Tom", 21, 4), ("Mia", 3, 17), ("Ben", 11, 11), ("Zoe", 8, 14), ("Ali", 16, 7)]


def apples(name, have, buy):
    return {"question": f"{name} has {have} apples and buys {buy} more. How many apples does {name} have now?",
            "answer": f"{name} had {have} and buys {buy}: {have} + {buy} = {have + buy}.\nThe answer is {have + buy}."}


own_dataset = datasets.Dataset.from_list([apples(*row) for row in own]).map(to_messages).select_columns(["messages"])
own_model, own_losses = train_fresh(data=own_dataset, steps=30, max_steps=30)
# Ten examples seen again and again: the loss falls as they are memorised (towards 0 on a large model; the tiny
# stand-in gets only part of the way). Whether the new question is right shows if more than that was learned.
print(f"loss on the ten: {own_losses[0]:.3f} at step 1, {own_losses[-1]:.3f} at step 30")
for row in (apples(*own[0]), apples("Kai", 13, 6)):
    (answer,) = generate_answers(own_model, tokenizer, [row["question"]], max_new_tokens=64, progress=False)
    print(f"Q: {row['question']}\nA: {answer}\n   right: {answers_match(answer, row['answer'])}")

# %% en_title="Solution 5: train on Chinese word problems" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 5：用中文应用题训练 { display-mode: "form" }
# %%solution
from course_lib.data import answers_match
from course_lib.data_zh import bundled_chinese_rows
from course_lib.evaluation import generate_answers

zh_train = datasets.Dataset.from_list(bundled_chinese_rows("train")).map(to_messages).select_columns(["messages"])
zh_heldout = datasets.Dataset.from_list(bundled_chinese_rows("heldout")).map(to_messages)
print(tokenizer.apply_chat_template(zh_train[0]["messages"], tokenize=False))  # the same chat format as section 5
ZH_STEPS = max_steps  # as long as section 12's run; on the stand-in (make test, 2 busy CPU cores) 60 took 22 s
zh_base, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path, max_seq_length=MAX_SEQ_LENGTH,
                                               dtype=precision.torch_dtype, load_in_4bit=LOAD_IN_4BIT)
zh_model = FastLanguageModel.get_peft_model(zh_base, r=LORA_R, target_modules=TARGET_MODULES, lora_alpha=LORA_ALPHA,
                                            lora_dropout=LORA_DROPOUT, bias="none", use_gradient_checkpointing="unsloth",
                                            random_state=SEED, use_rslora=USE_RSLORA)
zh_args = SFTConfig(
    output_dir=str(WORK_DIR / "exercise-runs"),  # not CHECKPOINT_DIR: the notebook's checkpoints stay as they are
    per_device_train_batch_size=BATCH_SIZE,
    gradient_accumulation_steps=GRAD_ACCUMULATION,
    max_steps=ZH_STEPS,
    learning_rate=learning_rate,
    lr_scheduler_type="linear",
    warmup_steps=WARMUP_STEPS,
    optim="adamw_8bit",
    weight_decay=0.01,
    logging_steps=1,
    save_strategy="no",  # an exercise run: no checkpoints
    per_device_eval_batch_size=BATCH_SIZE,
    max_length=MAX_LENGTH,
    packing=PACKING,
    assistant_only_loss=True,  # the answers only, as in section 9: the Chinese answers end with <|end_of_sentence|> too
    bf16=precision.bf16,
    fp16=precision.fp16,
    use_cpu=card is None,
    seed=SEED,
    report_to="none",
)
zh_eval = zh_heldout.select(range(N_EVAL_LOSS)).select_columns(["messages"])  # held-out Chinese conversations
zh_trainer = SFTTrainer(model=zh_model, processing_class=tokenizer, train_dataset=zh_train, eval_dataset=zh_eval,
                        args=zh_args)
zh_before = zh_trainer.evaluate()["eval_loss"]
start = time.perf_counter()
zh_trainer.train()
zh_seconds = time.perf_counter() - start
zh_after = zh_trainer.evaluate()["eval_loss"]
print(f"held-out loss on {len(zh_eval)} Chinese conversations: {zh_before:.3f} before, {zh_after:.3f} after "
      f"{ZH_STEPS} steps ({zh_seconds:.0f} s on {card.name if card else 'the CPU'})")
FastLanguageModel.for_inference(zh_model)
row = zh_heldout[-1]  # not among the zh_eval conversations
(answer,) = generate_answers(zh_model, tokenizer, [row["question"]], max_new_tokens=MAX_NEW_TOKENS, progress=False)
print(f"Q: {row['question']}\nA: {answer}\n   right: {answers_match(answer, row['answer'])}")
# ERNIE-4.5 is a Chinese-English model: it starts from Chinese it already reads. The offline stand-in read a
# few Chinese problems in pre-training (none of these); here its held-out loss fell from 4.55 to 3.50 in 60
# steps, but its greedy answer still began the English way its chat training taught it ("The ..."): 60 steps
# at this learning rate lower the loss before they change how it answers.
