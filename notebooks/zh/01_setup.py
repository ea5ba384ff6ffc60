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

# %% [markdown] en_hash="5c63587f74"
# # 1 · 环境准备：你的机器、所需的库，以及初识 ERNIE-4.5
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/zh/01_setup.ipynb)
#
# **你将学到：** 如何确认自己在什么机器上运行，以及这决定了什么（能用哪种精度训练）；如何用 Unsloth 加载 ERNIE-4.5；模型内部由什么组成；ERNIE 的对话格式（chat format）是什么样子。
#
# **你需要：** 一个带 GPU 的 Colab 运行时：*代码执行程序（Runtime）→ 更改运行时类型（Change runtime type）→ T4 GPU*。没有 GPU、或者连不上 Hugging Face Hub 时，每个单元格照样能运行，只是换成离线替身模型，并且会明确告诉你。
#
# **在 T4 上的耗时：** 约 5 分钟，大部分花在安装上。

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

# %% [markdown] en_hash="6af827c718"
# **不在 Colab 上？** 同样的单元格也能在 Kaggle、百度 AI Studio 和魔搭 ModelScope 的免费 GPU notebook 上运行。这些平台提供的资源经常变化，请以它们自己的页面为准；对本课程来说要注意的是：
#
# | 平台 | 选择 | 安装单元格 | 文件保存在 |
# |---|---|---|---|
# | Kaggle | *Accelerator: GPU T4 x2*，*Internet: on*（账号需要先验证手机号） | 不用改 | `/kaggle/working`（保存 notebook 版本时一起保存） |
# | 百度 AI Studio | 一个 GPU 环境 | 先运行 `!pip install torch`；GitHub 可能连不上（见 README.zh.md） | `/home/aistudio` |
# | 魔搭 ModelScope Notebook | 一个 GPU 实例 | 不用改（已预装 PyTorch） | `/mnt/workspace` |
#
# Unsloth 要求 GPU 的 CUDA 计算能力（compute capability）不低于 7.0（见它的安装要求页面）：Kaggle 的 P100 是 6.0，所以请选 T4。课程会把工作目录（数据、适配器、合并后的模型）放在各平台会保留的文件夹里，这样后面的 notebook 能找到这个 notebook 保存的东西；第 2 节会打印它识别出的平台。在中国大陆，GitHub、PyPI 或 Hugging Face Hub 可能很慢或无法访问，镜像的用法见 README.zh.md。

# %% [markdown] en_hash="880497ecad"
# ## 1 · 先导入 Unsloth
#
# Unsloth 在被导入时会给 `transformers`、`peft` 和 `trl` 打补丁（patch）来加速训练，所以必须在它们之前导入。它还会检测 GPU，并告诉你它选择了哪个后端（backend）：在 Colab 上是 `cuda`；在没有 GPU 的机器上则是它的 CPU 后端（底层就是普通的 transformers + PEFT）。

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("zh")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %% [markdown] en_hash="0dd00a9b6c"
# ## 2 · 这是一台什么机器？
#
# 先看最后一行。bf16 需要计算能力（compute capability）8.0 或更高的 GPU（A100、L4、H100）。T4 是 7.5：它用 fp16 加损失缩放（loss scaling）来训练。（`torch.cuda.is_bf16_supported()` 在 T4 上会回答 *True*，因为 bf16 在那里可以被模拟，只是很慢；计算能力才是靠得住的判断依据。）CPU 用 fp32 训练。

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown] en_hash="f41cbb8079"
# `doctor` 会在这些问题耽误时间之前，先检查课堂上最常让人卡住的几件事：在 Colab 上没有选择 GPU 运行时、Unsloth 在 `transformers` 之后才导入、所选的精度这块 GPU 跑不了。它会把每个问题连同解决办法一起打印出来。

# %%
from course_lib.doctor import doctor

problems = doctor()

# %% [markdown] en_hash="1f2bcf11c1"
# ## 3 · 设置
#
# 课程默认使用 ERNIE-4.5-0.3B-PT：百度发布的 0.36B 参数的*后训练*（对话）模型。"-PT" 指 PyTorch 权重（"-Paddle" 版本是 PaddlePaddle 权重）；预训练的基础模型是 `baidu/ERNIE-4.5-0.3B-Base-PT`，它的模型卡写明 "The Base model only supports text completion"（基础模型只支持文本续写）。本课程把这个对话模型适配到一项任务的格式和内容上，notebook 4 会测量训练改变了什么。
#
# - 想从基础模型出发，就设置 `MODEL_NAME = "baidu/ERNIE-4.5-0.3B-Base-PT"`。它在训练前不懂对话格式，所以训练前的回答离任务更远，训练前后的差别也更大。其余一切不变。
# - 做正式项目时，可以换成 21B 的混合专家（mixture-of-experts，MoE）模型，它每个 token 激活 3B 参数；它需要 `LOAD_IN_4BIT = True`，以及比 T4 更大的 GPU（约 24 GB）。

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # the chat model; "baidu/ERNIE-4.5-0.3B-Base-PT" is the base model
MAX_SEQ_LENGTH = 1024  # tokens; the longest example the model will see (word problems need < 400)
LOAD_IN_4BIT = False  # True stores the blocks' Linear weights in 4 bits (QLoRA); solution 3 measures it

# %% [markdown] en_hash="65c95f83fd"
# 实际会加载哪个模型？如果连不上 Hub（或者设置了 `ERNIE_COURSE_MODEL=tiny`），课程会退而使用离线替身模型（一个在本机构建、很小的 ERNIE-4.5 模型），下面的横幅（banner）会醒目地说明这一点，并告诉你怎样改用真实模型。横幅也会说明真实模型是从哪里来的：Hub、Hub 镜像（`HF_ENDPOINT`，在第 1 节之前的单元格里设置）或者魔搭 ModelScope（`ERNIE_COURSE_MODEL=modelscope`）；在中国大陆的做法见 README.zh.md。

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown] en_hash="42fb363660"
# ## 4 · 用 Unsloth 加载模型
#
# 一次调用就能加载权重和分词器（tokenizer）。`dtype` 就是上面选出的精度。在 GPU 上，已用显存会增加权重那么多（0.3B 模型在 16-bit 下约 0.7 GB）；在 CPU 上，这个数字是整个进程的内存，大部分是 PyTorch 本身，离线替身模型的权重（约 2 MiB）几乎看不出来。`get_memory_footprint` 只统计权重。

# %%
print("before:", env.memory())

# %%
model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=model_choice.name_or_path,  # a Hub id, or a local folder
    max_seq_length=MAX_SEQ_LENGTH,  # Unsloth's name for the context it prepares for
    dtype=precision.torch_dtype,  # bf16 on Ampere+, fp16 on a T4, fp32 on a CPU
    load_in_4bit=LOAD_IN_4BIT,  # bitsandbytes 4-bit (QLoRA)
)

# %%
print("after: ", env.memory())
print(f"the weights alone: {model.get_memory_footprint() / 2**20:,.1f} MiB")

# %% [markdown] en_hash="4ea3e631f0"
# ## 5 · 模型里有什么
#
# ERNIE-4.5-0.3B 是一个仅解码器（decoder-only）的 Transformer：token 嵌入层（embedding）、一串结构相同的块（block，每块由注意力和一个 MLP 组成），以及一个与嵌入层共享权重的输出头。先数一数参数，再看看这些块。

# %%
n_parameters = sum(p.numel() for p in model.parameters())
print(f"{n_parameters:,} parameters, stored as {next(model.parameters()).dtype}")
print(f"{model.config.num_hidden_layers} blocks, hidden size {model.config.hidden_size}, "
      f"vocabulary {model.config.vocab_size:,} tokens")

# %%
print(model)

# %% [markdown] en_hash="2754ebc510"
# 注意力采用的是*分组查询注意力*（grouped-query attention）：多个查询头（query head）共享少数几个键/值头（key/value head），因此 `k_proj` 和 `v_proj` 比 `q_proj` 窄。每个块中的这七个 Linear 层（`q/k/v/o_proj` 和 `gate/up/down_proj`），就是 LoRA 将在 notebook 2 中添加适配器（adapter）的地方。

# %%
config = model.config
attention = model.model.layers[0].self_attn
print(f"{config.num_attention_heads} query heads share {config.num_key_value_heads} key/value heads "
      f"of {config.head_dim} dimensions each")
for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
    layer = getattr(attention, name)
    print(f"  {name}: {layer.in_features} -> {layer.out_features}")

# %% [markdown] en_hash="897528537d"
# ## 6 · 分词器
#
# 模型读的是 token id，而不是文本。分词器按角色给特殊 token 命名：填充（padding；ERNIE 用 `<unk>` 填充，id 0）、文本的开始和结束（`<s>`、`</s>`），以及 ERNIE 对话格式的两个标记：`<|begin_of_sentence|>`（它的 `cls_token`）和 `<|end_of_sentence|>`（它的 `sep_token`）。

# %%
for role in ("pad_token", "unk_token", "bos_token", "eos_token", "cls_token", "sep_token"):
    token = getattr(tokenizer, role)
    if token is not None:
        print(f"{role:>9} = {token!r:<24} id {tokenizer.convert_tokens_to_ids(token)}")

# %%
sentence = "Maya buys 3 pens at $2 each."
ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
print(len(ids), "tokens:", tokenizer.convert_ids_to_tokens(ids))

# %% [markdown] en_hash="c265b1a16b"
# ## 7 · ERNIE 的对话格式
#
# 分词器的对话模板（chat template）会把一段对话渲染成一个字符串：`User: ...`、一个换行、`Assistant: ...`，每个回答都以 `<|end_of_sentence|>` 结尾。微调要教会模型在 `Assistant: ` 之后接着写，并以这个结束标记停下。

# %%
conversation = [
    {"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"},
    {"role": "assistant", "content": "3 × $2 = $6.\nThe answer is 6."},
]
print(tokenizer.apply_chat_template(conversation, tokenize=False))

# %% [markdown] en_hash="c09d854cce"
# 提问时，只渲染用户那一轮，再加上*生成提示*（generation prompt）`Assistant: `；模型会续写后面的内容。

# %%
prompt = tokenizer.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True)
print(repr(prompt))

# %% [markdown] en_hash="90675fdb75"
# ## 8 · 训练之前，先问问模型
#
# `FastLanguageModel.for_inference` 会把 Unsloth 切换到更快的生成路径。贪心解码（`do_sample=False`）让回答可以复现。ERNIE-4.5-0.3B-PT 是对话模型，所以它会作答；它还没学会的是本课程的任务：按数据的风格写出解题步骤，最后以 `The answer is N.` 结尾。离线时，离线替身模型模仿一个对话模型（它在其他应用题的对话格式上简单训练过），所以它也会作答，只是水平有限。notebook 4 会在训练前后给两者打分。

# %%
from transformers import TextStreamer

FastLanguageModel.for_inference(model)
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
_ = model.generate(**inputs, max_new_tokens=80, do_sample=False, streamer=TextStreamer(tokenizer, skip_prompt=True))

# %% [markdown] en_hash="9b13eb1d89"
# ## 小结
#
# - 先导入 Unsloth；它会报告自己选择了哪个后端。
# - GPU 的计算能力决定精度：8.0 及以上用 bf16，T4 用 fp16，CPU 用 fp32。
# - `FastLanguageModel.from_pretrained` 一次调用就返回模型和它的分词器。
# - ERNIE-4.5-0.3B 有 18 个块，每块由分组查询注意力和一个 MLP 组成；LoRA 将适配其中的七个 Linear 层。
# - ERNIE 的对话格式是 `<|begin_of_sentence|>User: …\nAssistant: …<|end_of_sentence|>`。
#
# 下一步：[notebook 2](02_lora_configuration.ipynb) 添加 LoRA 适配器，并算清楚它们的开销。
#
# ## 练习
#
# 1. 修改第 7 节中的问题，再问一次。模型会自己停下来吗？用的是哪个 token？
# 2. 对一句中文分词。它要用多少个 token？和意思相同的英文句子相比呢？
# 3. 设置 `LOAD_IN_4BIT = True` 能省下多少显存？4-bit 把块内的 Linear 层量化成每个权重半个字节（每 64 个权重另加一个很小的缩放系数（scale）），嵌入层则保持 16-bit。为这个模型算一算，再以 4-bit 实际加载并测量。

# %% [markdown] en_hash="f604b5ae3d"
# ### 参考答案：请先自己试一试；每个答案都已折叠，点击即可展开
#
# “全部运行”（Run All）会跳过它们：每个答案只打印一行提示，直到你在下面的单元格里设置 `SHOW_SOLUTIONS = True`
# 并运行它。然后再运行你想看的那个答案（它的输出也是折叠的：点击即可展开）。

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% en_title="Solution 1: does the model stop?" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 1：模型会自己停下来吗？ { display-mode: "form" }
# %%solution
from course_lib.evaluation import stop_token_ids

stops = stop_token_ids(tokenizer)  # </s>, and <|end_of_sentence|>, the marker that ends ERNIE's answers
questions = ["A book costs $12 and a pen costs $3. What do both cost together?",
             "Tom walks 4 km an hour for 3 hours. How far does he walk?",
             "What is the capital of France?"]
texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
         for q in questions]
# One batch, padded on the left so that every row continues right after its own prompt.
asked = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(model.device)
output = model.generate(**asked, max_new_tokens=80, do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
for new in output[:, asked["input_ids"].shape[1]:].tolist():
    ends = [i for i, token in enumerate(new) if token in stops]  # a row that stopped is padded after its stop
    ending = f"stopped by itself with {tokenizer.convert_ids_to_tokens(new[ends[0]])}" if ends else "cut off at 80"
    answer = tokenizer.decode(new[:ends[0]] if ends else new, skip_special_tokens=True)
    print(f"{ends[0] + 1 if ends else len(new):>2} tokens, {ending}: {answer[:60]!r}")

# %% en_title="Solution 2: the same sentence in other languages" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 2：同一句话换成别的语言 { display-mode: "form" }
# %%solution
translations = {
    "English": sentence,
    "French": "Maya achète 3 stylos à 2 $ chacun.",
    "German": "Maya kauft 3 Stifte zu je 2 $.",
    "Chinese": "玛雅买了 3 支笔，每支 2 美元。",
}
n_english = len(tokenizer(sentence, add_special_tokens=False)["input_ids"])
for language, text in translations.items():
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    print(f"{language:>8}: {n:>3} tokens for {len(text):>2} characters = {n / n_english:.1f}x English")
# More tokens means less text per context and more compute per sentence. The offline stand-in learned its
# 1,536 pieces from the course's English and Chinese word problems only: a character it never saw there (玛, 雅
# and 美 here) falls back to its UTF-8 bytes, 3 tokens each. ERNIE-4.5 is a Chinese-English model (its model
# card, huggingface.co/baidu/ERNIE-4.5-0.3B-PT, lists en and zh) with 103,424 tokens: run this on Colab and compare.

# %% en_title="Solution 3: what 4-bit would save" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 3：4-bit 能省下多少 { display-mode: "form" }
# %%solution
import torch

# bitsandbytes quantizes the Linear layers of the blocks; the embeddings (shared with the output head)
# and the norms stay in 16-bit.
n_quantized = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
bytes_16bit = 2 * n_parameters
bytes_4bit = 2 * (n_parameters - n_quantized) + n_quantized * (0.5 + 1 / 64)  # 4 bits + ~1 byte of scale per 64
print(f"{n_quantized:,} of {n_parameters:,} parameters ({n_quantized / n_parameters:.0%}) are in quantized layers")
print(f"16-bit: {bytes_16bit / 2**20:.2f} MiB, 4-bit: {bytes_4bit / 2**20:.2f} MiB "
      f"= {1 - bytes_4bit / bytes_16bit:.0%} less (75% only if every weight were quantized)")
print(f"as loaded here ({next(model.parameters()).dtype}): {model.get_memory_footprint() / 2**20:.2f} MiB")
# bitsandbytes 0.50 has CPU kernels too, so this loads anywhere (on a CPU the layers are stored in 4-bit;
# the course trains and merges in 4-bit on a GPU only: Unsloth's CPU backend cannot merge into a 4-bit base).
model_4bit, _ = FastLanguageModel.from_pretrained(model_name=model_choice.name_or_path,
                                                  max_seq_length=MAX_SEQ_LENGTH, load_in_4bit=True)
print(f"measured in 4-bit on {card.name if card else 'the CPU'}: {model_4bit.get_memory_footprint() / 2**20:.2f} MiB "
      f"({type(model_4bit.model.layers[0].self_attn.q_proj).__name__} layers)")
