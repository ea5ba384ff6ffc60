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

# %% [markdown] en_hash="ced77e9fff"
# # 3 · 数据：从应用题到参与训练的 token
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/zh/03_data_formatting.ipynb)
#
# **你将学到：** 加载课程的数学应用题，把每道题转换成 TRL 训练所用的对话格式；给 ERNIE 的对话模板加上 TRL 需要的标记；准确看到 loss 是在哪些 token 上计算的；测量样本有多长；以及测量在这份数据上 packing（打包）能省下多少。结果会保存下来，供 notebook 4 使用。
#
# **你需要：** 一个 Colab 运行时（这里不需要 GPU：本 notebook 只做分词）。连不上 Hugging Face Hub 时，每个单元格照样能运行，使用课程自带的应用题和离线替身模型的分词器，并且会明确告诉你。
#
# **在 T4 上的耗时：** 约 3 分钟，大部分花在安装上。

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

# %% [markdown] en_hash="54e45ad27e"
# ## 1 · 先导入 Unsloth，再检查机器
#
# 和 notebook 1 一样：Unsloth 在被导入时会给 `transformers`、`peft` 和 `trl` 打补丁，所以它必须最先导入。分词在 CPU 上进行；最后一行的精度要到 notebook 4（负责训练）才用得上。

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.paths import work_dir
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

# %% [markdown] en_hash="2e6cfbb54e"
# ## 2 · 设置
#
# `MAX_LENGTH` 和 `BATCH_SIZE` 是 notebook 4 传给 TRL 的值；在这里，它们决定有多少样本会被截断，以及一个 batch 里带着多少填充（padding）。`DATA_DIR` 是本 notebook 保存数据的地方。

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # its tokenizer decides the token counts below
MAX_LENGTH = 1024  # tokens; TRL's SFTConfig max_length: longer examples are cut to it
BATCH_SIZE = 8  # examples per step in notebook 4; a padded batch is as long as its longest example
WORK_DIR = work_dir()  # shared by all five notebooks; /content/ernie-course on Colab
DATA_DIR = WORK_DIR / "data"  # this notebook writes train/ and heldout/ here, notebook 4 reads them

# %% [markdown] en_hash="020fc4bb6c"
# 用的是谁的分词器？离线时，课程会退而使用离线替身模型，横幅会说明这一点。它的分词器有 ERNIE 的特殊 token 和对话格式，但词表很小，所以同一段文本切出来的 token 比 ERNIE 的多。

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown] en_hash="004768cd76"
# 本 notebook 只需要分词器，所以只加载它，一秒钟就好；notebook 4 会用 `FastLanguageModel.from_pretrained` 把模型和这个分词器一起加载。

# %%
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(model_choice.name_or_path)
print(f"{type(tokenizer).__name__}: {len(tokenizer):,} tokens in the vocabulary")

# %% [markdown] en_hash="e2e7a674ad"
# ## 3 · 原始数据
#
# 能连上 Hub 时，课程用 Microsoft orca-math 中的 2,000 道题来训练，另外留出 200 道用于评估；连不上时，则使用 `course_lib.data` 生成的同样数量的应用题。横幅会说明你拿到的是哪一种。每一行包含一个 `question` 和一个带解题过程的 `answer`。

# %%
from course_lib.data import load_math_dataset

train_dataset, data_choice = load_math_dataset("train")
heldout_dataset, _ = load_math_dataset("heldout")
print(data_choice.banner())
print(f"train: {train_dataset.num_rows:,} rows, held out: {heldout_dataset.num_rows:,} rows, "
      f"columns {train_dataset.column_names}")

# %%
example = train_dataset[0]
print("QUESTION:", example["question"])
print("ANSWER:  ", example["answer"])

# %% [markdown] en_hash="d1cb1498e4"
# ## 4 · 对话：TRL 读取的格式
#
# TRL 的 `SFTTrainer` 能识别由 `{"role", "content"}` 轮次组成的 `messages` 列，并用分词器的对话模板渲染每一段对话。`to_messages` 生成一个用户轮（问题）和一个助手轮（答案）。`map` 会添加这一列，同时保留 `question` 和 `answer`：TRL 只读 `messages`，其余的列不会进入它的 batch，而 notebook 4 的评估需要原始的问题和答案。

# %%
from course_lib.data import to_messages

train_dataset = train_dataset.map(to_messages)
heldout_dataset = heldout_dataset.map(to_messages)
example = train_dataset[0]
print(train_dataset.column_names)
print(example["messages"])

# %% [markdown] en_hash="bd6ea18d4e"
# ## 5 · 标出答案的对话模板
#
# 设置 `assistant_only_loss=True` 时，TRL 只训练助手的 token。它靠对话模板中的 `{% generation %}...{% endgeneration %}` 标记找到这些 token。ERNIE 的官方模板没有这些标记，这时 TRL 会报错停下："The chat template is not training-compatible"。先用分词器自带的模板渲染这个样本，再用 TRL 自己的检查函数看看模板里有没有这些标记。

# %%
from trl.chat_template_utils import has_generation_markers

original_text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
print("original template has generation markers:", has_generation_markers(tokenizer.chat_template))

# %% [markdown] en_hash="9b7ef01d55"
# 课程的模板严格按照 ERNIE 的格式输出，并在每个答案及其结束标记两侧加上这些标记。（离线替身模型本身就是用这个模板构建的，所以离线时上面那一行已经是 True；用 Hub 上的模型时则是 False。）在打印出的模板中找到 `{% generation %}`。

# %%
from course_lib.ernie import TRAINING_CHAT_TEMPLATE

tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
print(tokenizer.chat_template)

# %% [markdown] en_hash="8e1054e463"
# 这些标记只改变训练哪些 token，从不改变模型读到的文本：同一个样本渲染出的字符串和之前完全相同。

# %%
course_text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
print("generation markers now:", has_generation_markers(tokenizer.chat_template))
print("same text as the original template:", course_text == original_text)

# %% [markdown] en_hash="4dd485eaa3"
# ## 6 · 文本、token id 和 token
#
# 这就是模型读到的字符串：`<|begin_of_sentence|>`、`User: `、问题、一个换行、`Assistant: `、答案，以及 `<|end_of_sentence|>`——模型必须学会在回答完毕时写出它。

# %%
print(course_text)

# %% [markdown] en_hash="118019638b"
# 分词器把这个字符串变成 id。像 TRL 那样在一次调用中完成渲染和分词，不会再额外添加别的特殊 token。（ERNIE 的分词器，以及按同样方式构建的离线替身模型的分词器，都是 SentencePiece：空格是它后面那个词开头的 `▁`，没学过的字符则拆成它的字节，例如 `<0xE4>`。）

# %%
input_ids = tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"]
print(len(input_ids), "token ids:", input_ids)
print(tokenizer.convert_ids_to_tokens(input_ids))

# %% [markdown] en_hash="07c843a030"
# ## 7 · 哪些 token 参与训练
#
# 这正是 TRL 在 `assistant_only_loss=True` 时调用的方法。`assistant_masks` 对生成标记内部的每个 token 都是 1。TRL 把它变成 `labels`：掩码（mask）为 1 的位置是该 token 的 id，其余位置是 -100，计算 loss 时会跳过这些位置。所以问题只会被读到，从不会被学习。

# %%
encoded = tokenizer.apply_chat_template(
    example["messages"],
    tokenize=True,
    return_dict=True,
    return_assistant_tokens_mask=True,  # 1 inside {% generation %}: the answer and its end marker
)
input_ids, mask = encoded["input_ids"], encoded["assistant_masks"]
labels = [token if keep else -100 for token, keep in zip(input_ids, mask)]
print("mask:  ", mask)
print("labels:", labels)

# %% [markdown] en_hash="7dea9cac69"
# 同一个掩码的文本形式：`[masked: ...]` 里的内容没有 loss，其余部分都参与训练。

# %%
from course_lib.formatting import show_trained_tokens

print(show_trained_tokens(tokenizer, input_ids, mask))

# %%
n_trained = sum(mask)
print(f"{len(input_ids)} tokens, {n_trained} trained ({n_trained / len(input_ids):.0%}), "
      f"{len(input_ids) - n_trained} masked")

# %% [markdown] en_hash="419d3ab6d8"
# 只解码参与训练的 labels：它们必须恰好是答案加上结束标记，既不含问题的任何部分，也不含 `Assistant:`。冒号后面的空格会跟着进来：ERNIE 的分词器把空格并入它后面的词，所以答案的第一个 token 是 `▁` 加上答案的第一个词。

# %%
from course_lib.ernie import END_OF_TURN

trained_text = tokenizer.decode([token for token in labels if token != -100])
print(repr(trained_text))
print("exactly the answer + end marker:", trained_text.removeprefix(" ") == example["answer"] + END_OF_TURN)

# %% [markdown] en_hash="1de3b426e6"
# ### 答案从哪里开始：训练时和提问时必须一致
#
# 这个并进来的空格在提问时很关键。TRL 对整段对话分词，所以模型学到的是在冒号后面写出 `▁First`（或 `▁If` 等）。模板的生成提示以 `Assistant: ` 结尾，带着空格，而这个空格单独分词就是 `▁`：这样提问，模型要从一个它从没学过如何接续的 token 往下写，答案的开头就偏离了训练（离线替身模型会跳过答案开头的几个词）。课程用 `generation_prompt` 提问：文本相同，只去掉最后那个空格，让模型自己写出 `▁First`。比较两种提示的最后几个 token，以及每个提示是否恰好是训练 token 的开头：

# %%
from course_lib.chat_format import generation_prompt

question = example["messages"][:1]
trained_ids = tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"]
before = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)  # "...Assistant: "
after = generation_prompt(tokenizer, question)  # "...Assistant:"
for name, prompt in [("template's prompt", before), ("generation_prompt", after)]:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    print(f"{name:>17} ends {tokenizer.convert_ids_to_tokens(ids[-2:])}, the start of the trained tokens: "
          f"{ids == trained_ids[:len(ids)]}")
print(f"{'trained':>17} ... {tokenizer.convert_ids_to_tokens(trained_ids[len(ids) - 2:len(ids) + 1])} ...")

# %% [markdown] en_hash="4c2258676d"
# ## 8 · 样本有多长？
#
# 像 TRL 那样对每一段训练对话分词，然后统计。红线是 `MAX_LENGTH`。

# %%
from course_lib.plots import plot_lengths

encoded_train = [tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True)
                 for messages in train_dataset["messages"]]
lengths = [len(encoded["input_ids"]) for encoded in encoded_train]
figure = plot_lengths(lengths, MAX_LENGTH)

# %% [markdown] en_hash="a8d434da1e"
# 比 `MAX_LENGTH` 长的样本会被 TRL 截断，只保留前 `MAX_LENGTH` 个 token，于是答案的结尾和结束标记永远不会被训练（在答案开始之前就被截断的样本会被丢弃）。如果被截断的样本很多，就调大 `MAX_LENGTH`，或者把它们过滤掉。

# %%
import statistics

n_cut = sum(n > MAX_LENGTH for n in lengths)
print(f"tokens per example: min {min(lengths)}, median {statistics.median(lengths):.0f}, max {max(lengths)}")
print(f"{n_cut} of {len(lengths):,} examples exceed MAX_LENGTH = {MAX_LENGTH} and would be cut")

# %% [markdown] en_hash="f6f3fc4223"
# 把第 7 节的检查用在每一个训练样本上：是否每个样本训练的都恰好是它的答案和结束标记？

# %%
n_exact = sum(
    tokenizer.decode([t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep]).removeprefix(" ")
    == row["answer"] + END_OF_TURN
    for encoded, row in zip(encoded_train, train_dataset)
)
print(f"{n_exact:,} of {len(encoded_train):,} examples train exactly their answer + end marker")

# %% [markdown] en_hash="907dd82854"
# 在用任何数据训练之前，先把每一行都检查一遍：`validate` 会报告为空或不是文本的问题和答案、完全重复的行，以及长度超过 `MAX_LENGTH` 个 token 的样本，每一项都给出行号。课程的数据应该能通过检查。

# %%
from course_lib.validation import validate

report = validate(train_dataset, tokenizer, max_length=MAX_LENGTH)
print(report)

# %% [markdown] en_hash="a4a3438f73"
# ## 9 · 填充还是打包？
#
# 一个 batch 是一个矩形：每个样本都被填充到同一 batch 中最长样本的长度，填充的部分会参与计算，却从不被学习。打包（packing）则是用若干个完整的样本填满长度为 `MAX_LENGTH` 个 token 的行（TRL 默认的 `packing_strategy="bfd"`，即 best fit decreasing，降序最佳适配）。`padding_stats` 在这份数据上把两种方式都统计一遍。填充这一侧按数据集的顺序组成 batch；数据行本身没有特定的顺序，所以这相当于一个打乱顺序的数据加载器平均看到的情况。

# %%
from course_lib.formatting import padding_stats

stats = padding_stats(lengths, BATCH_SIZE, MAX_LENGTH)
print(f"padded: {stats['padded_batches']} batches of {BATCH_SIZE}, {stats['padded_slots']:,} token slots for "
      f"{stats['real_tokens']:,} real tokens -> {stats['padded_fraction']:.1%} padding")
print(f"packed: {stats['packed_rows']} rows of {MAX_LENGTH} ({stats['examples_per_row']:.1f} examples each), "
      f"{stats['packed_slots']:,} slots -> {stats['packed_fraction']:.1%} left empty")
print(f"packing computes {1 - stats['packed_slots'] / stats['padded_slots']:.0%} fewer slots; an epoch is "
      f"{stats['packed_batches']} steps instead of {stats['padded_batches']}")

# %% [markdown] en_hash="f60524f44d"
# 这和 TRL 自己构建出来的一样吗？把同样的 token id 交给 TRL 的 `pack_dataset`，数一数它的行数。

# %%
from datasets import Dataset
from trl import pack_dataset

token_ids = Dataset.from_dict({"input_ids": [encoded["input_ids"] for encoded in encoded_train]})
packed = pack_dataset(token_ids, seq_length=MAX_LENGTH)  # strategy="bfd", TRL's default
row_lengths = [len(row) for row in packed["input_ids"]]
print(f"TRL: {len(packed)} rows, {sum(row_lengths):,} tokens, longest row {max(row_lengths)}; "
      f"first row holds examples of {packed[0]['seq_lengths']} tokens")

# %% [markdown] en_hash="748793feb2"
# 使用 TRL 的无填充（padding-free）batch 时，连打包行末尾的空位也不会被计算。能省下多少，取决于样本长度的分散程度：像这里这样长度相近的题目，能省的就少一些。打包也有代价：
#
# - 同一行里的样本不能互相看到。TRL 会随行一起传递每个样本的边界（上面的 `seq_lengths`），并切换到*无填充*（padding-free）batch；只有能读取这些边界的注意力实现才会遵守它们：FlashAttention，或者 GPU 上 Unsloth 的 kernel。缺少它时，TRL 会发出警告。
# - Unsloth 的 CPU 后端会关闭打包，并且会说明这一点。
# - 一步里的 `BATCH_SIZE` 个打包行包含的样本要多得多，所以 `MAX_STEPS` 覆盖的数据更多，打包训练和填充训练的 loss 不能逐步对比。
# - 在 GPU 上，Unsloth 不打包也能去掉填充：如果不设置 `padding_free`，它会自己在填充 batch 和无填充 batch 之间做选择（在课程的基准测试中，每次运行它选的都是无填充）。
#
# 少算一些位置只是收益中较小的那部分。8 个短样本组成的 batch 工作量太小，不足以让 GPU 忙起来，所以无论一步装的是 8 个样本还是 8 个满行，耗时都差不多。这就是课程在 GPU 上默认打包的原因。在 H200 上的实测结果（`bench/RESULTS.md`：0.3B 的模型形状，Unsloth，bf16，batch 8，这些应用题）：填充时每秒 7,241 个真实 token，打包时每秒 47,362 个，两种方式每步都是 0.16 s。

# %% [markdown] en_hash="dbef89b3a6"
# **打包行里的样本真的互不干扰吗？** 与其相信这一点，不如测一测。
# `check_packing` 按 TRL 无填充 collator 的方式拼出一个打包行（各样本的 token id 首尾相接，位置在每个样本开头重新从 0 开始，没有 attention mask），让模型跑一遍这一行，再让每个样本单独跑一遍：如果样本彼此隔开，每个样本两种方式得到的 logits 相同，只差舍入误差。然后它把同一行的位置改成从 0 到 N-1 一路连续，相当于一个丢掉了样本边界的 collator 送来的数据。TRL 的警告里只提到 FlashAttention，但 transformers 5 自带的 sdpa 和 eager 注意力也会从重新开始的位置里读出边界，前提是不传 attention mask、也不用缓存（TRL 两者都不传）。检查在 fp32 下、用本 notebook 的模型进行（为此在这里加载，有 GPU 就放在 GPU 上）。

# %%
import torch
from transformers import AutoModelForCausalLM

from course_lib.packing import check_packing

checked_model = AutoModelForCausalLM.from_pretrained(model_choice.name_or_path, dtype=torch.float32)
checked_model = checked_model.to("cuda" if card else "cpu").eval()
check = check_packing(checked_model, [encoded["input_ids"] for encoded in encoded_train[:3]])
print(f"{check.attn_implementation} attention; examples found in the row's positions: {check.sequences_seen}")
print(f"positions restart at 0: max |logit difference| {max(check.restarted):.1e} -> kept apart: {check.kept_apart()}")
print(f"positions 0..N-1:       max |logit difference| {max(check.continuous):.1e} (largest logit {check.logit_scale:.1f})")
del checked_model

# %% [markdown] en_hash="f15eba0399"
# 要看的是：第一个差值只是舍入误差（小于最大 logit 的 1e-4），第二个差值和 logits 本身差不多大：第二个就是每个样本会从相邻样本那里吸收进来的东西。

# %% [markdown] en_hash="3672209c3b"
# ## 10 · 你自己的数据：训练之前先检查
#
# 你自己的文件不会这么整齐。这个文件是 Alpaca 格式（`instruction`、`input`、`output`），带着几种常见的差错：一个空答案、一个本该是文本的地方写成了数字、一行被粘贴了两次，还有一行少了一个逗号。`load_rows` 能读取 JSON Lines、JSON、CSV、由字典组成的列表或 `Dataset`，读不了的每一行都会留下来写进报告。`to_question_answer` 把每一行的列映射成 `question` 和 `answer`（它也能读取 prompt/response、ShareGPT 的 `conversations` 和 OpenAI 的 `messages`，包括多轮对话）。

# %%
from course_lib.validation import load_rows, to_question_answer

MY_DATA = [  # one JSON object per line, as in a .jsonl file
    '{"instruction": "What is 12 x 3?", "input": "", "output": "12 x 3 = 36.\\nThe answer is 36."}',
    '{"instruction": "Share 20 sweets among 4 children.", "input": "How many each?", "output": ""}',
    '{"instruction": 7, "input": "", "output": "The answer is 7."}',
    '{"instruction": "What is 12 x 3?", "input": "", "output": "12 x 3 = 36.\\nThe answer is 36."}',
    '{"instruction": "How many legs do 3 cats have?" "output": "3 x 4 = 12.\\nThe answer is 12."}',
    '{"instruction": "What is 9 - 4?", "input": "", "output": "9 - 4 = 5.\\nThe answer is 5."}',
]
my_file = WORK_DIR / "my_data.jsonl"
my_file.write_text("\n".join(MY_DATA) + "\n")
my_rows = to_question_answer(load_rows(my_file))  # the shape is detected from each row's columns
print(f"{len(my_rows)} rows read, {len(my_rows.unreadable)} line(s) unreadable")

# %% [markdown] en_hash="f5bea7e597"
# `validate` 一次就报告所有问题：先是它读不了的那一行，再按编号列出每一个有问题的数据行。数据行的编号从 0 开始，和 `rows[i]` 一样；文件的行号从 1 开始，和编辑器里一样。

# %%
my_report = validate(my_rows, tokenizer, max_length=MAX_LENGTH)
print(my_report)

# %% [markdown] en_hash="e0401144bc"
# 在文件里修好它们，或者把它们排除在外：`drop_bad` 保留好的行（转换成课程的 `messages` 格式），并说明丢掉了哪些，读不了的那一行也在内。（`my_report.raise_if_bad()` 则会带着同样的清单让 notebook 停下来。）

# %%
clean, message = my_report.drop_bad()
print(message)
print(clean[-1]["messages"])

# %% [markdown] en_hash="f09098f022"
# ## 11 · 为 notebook 4 保存
#
# 两个划分（split）都保留 `question` 和 `answer`，并新增了 `messages`。notebook 4 在 `train` 上训练，在 `heldout` 上评估；它从 `DATA_DIR` 读取数据，所以在一个全新的会话里也能运行。

# %%
from datasets import load_from_disk

train_dataset.save_to_disk(DATA_DIR / "train")
heldout_dataset.save_to_disk(DATA_DIR / "heldout")
for split in ("train", "heldout"):
    saved = load_from_disk(DATA_DIR / split)
    size = sum(f.stat().st_size for f in (DATA_DIR / split).rglob("*") if f.is_file())
    print(f"{DATA_DIR / split}: {saved.num_rows:,} rows, {saved.column_names}, {size / 2**20:.1f} MiB")

# %% [markdown] en_hash="491c7c24ad"
# ## 小结
#
# - 数据是 2,000 道训练题和 200 道留出（held-out）的应用题（来自 orca-math，离线时用课程自带的题目），每道题有一个 `question` 和一个 `answer`；`to_messages` 把它变成 `messages` 对话，也就是 TRL 读取的格式。
# - TRL 的 `assistant_only_loss=True` 需要对话模板中有 `{% generation %}` 标记。课程的 `TRAINING_CHAT_TEMPLATE` 加上了这些标记，渲染出的文本与 ERNIE 自己的模板完全相同；notebook 4 也会设置它。
# - `apply_chat_template(..., return_assistant_tokens_mask=True)` 展示了训练的内容：答案和 `<|end_of_sentence|>`，从不包括问题。其他位置的 labels 都是 -100。
# - 在选定 `MAX_LENGTH` 之前先统计 token 数：更长的样本会被截断，丢掉答案的结尾。
# - 打包用完整的样本填满长度为 `MAX_LENGTH` 的行：填充更少，每一步包含的样本多得多（在 H200 上每秒处理的 token 数是填充时的 6.5 倍）。它在 GPU 上需要支持无填充的注意力实现，而且改变了"一步"的含义。
#
# 下一步：[notebook 4](04_training.ipynb) 加载这些划分，在上面训练 LoRA 适配器。
#
# ## 练习
#
# 1. 自己写三组问答，用 `to_messages` 把它们变成 `messages`，并对每一组打印 `show_trained_tokens`。每个答案是否都一直训练到 `<|end_of_sentence|>`（包括它）？
# 2. 设置 `MAX_LENGTH = 128`，从第 8 节起重新运行。有多少样本被截断？它们参与训练的 token 会怎样？（用 `encoded["input_ids"][:MAX_LENGTH]` 截断一个样本看看。）
# 3. 把 `BATCH_SIZE` 分别改成 1、8 和 32。填充比例怎么变化？为什么打包不受影响？
# 4. 渲染一段两轮的对话（user、assistant、user、assistant），并显示它参与训练的 token。一共有几段 `[masked: ...]`？

# %% [markdown] en_hash="f604b5ae3d"
# ### 参考答案：请先自己试一试；每个答案都已折叠，点击即可展开
#
# “全部运行”（Run All）会跳过它们：每个答案只打印一行提示，直到你在下面的单元格里设置 `SHOW_SOLUTIONS = True`
# 并运行它。然后再运行你想看的那个答案（它的输出也是折叠的：点击即可展开）。

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% en_title="Solution 1: your own question/answer pairs" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 1：你自己的问答 { display-mode: "form" }
# %%solution
own_rows = [
    {"question": "A train travels 180 km in 3 hours. What is its speed?",
     "answer": "Speed is distance divided by time: 180 ÷ 3 = 60 km per hour.\nThe answer is 60."},
    {"question": "Lea has 5 boxes of 12 eggs and breaks 7 eggs. How many eggs are left?",
     "answer": "She has 5 × 12 = 60 eggs, and 60 - 7 = 53 are left.\nThe answer is 53."},
    {"question": "What is 15% of 80?", "answer": "15% of 80 is 0.15 × 80 = 12.\nThe answer is 12."},
]
for row in own_rows:
    own = tokenizer.apply_chat_template(to_messages(row)["messages"], tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, keep in zip(own["input_ids"], own["assistant_masks"]) if keep])
    print(show_trained_tokens(tokenizer, own["input_ids"], own["assistant_masks"]))
    print(f"-> {sum(own['assistant_masks'])} of {len(own['input_ids'])} tokens trained; exactly the answer + "
          f"end marker: {trained.removeprefix(' ') == row['answer'] + END_OF_TURN}\n")

# %% en_title="Solution 2: MAX_LENGTH = 128" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 2：MAX_LENGTH = 128 { display-mode: "form" }
# %%solution
short = 128
cut = [i for i, n in enumerate(lengths) if n > short]
print(f"{len(cut):,} of {len(lengths):,} examples exceed {short} tokens and would be cut")
first = encoded_train[cut[0]]
print(show_trained_tokens(tokenizer, first["input_ids"][:short], first["assistant_masks"][:short]))
print(f"-> trained tokens {sum(first['assistant_masks'])} -> {sum(first['assistant_masks'][:short])}; "
      f"the end of the answer and its end marker are gone: this example never teaches the model to stop")
lost = sum(sum(e["assistant_masks"][short:]) for e in encoded_train)
no_answer = sum(sum(e["assistant_masks"][:short]) == 0 for e in encoded_train)
print(f"over the training set: {lost:,} of {sum(sum(e['assistant_masks']) for e in encoded_train):,} answer "
      f"tokens are lost; {no_answer} examples keep no answer token at all")

# %% en_title="Solution 3: padding against the batch size" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 3：填充比例与 batch 大小 { display-mode: "form" }
# %%solution
for batch_size in (1, 8, 32):
    s = padding_stats(lengths, batch_size, MAX_LENGTH)
    print(f"batch {batch_size:>2}: padded {s['padded_fraction']:5.1%} padding, packed {s['packed_fraction']:.1%} "
          f"left empty in {s['packed_rows']} rows")
# A padded batch is as long as its longest example, and more examples make a longer longest one (one example
# alone needs no padding). Packed rows are filled before they are batched: the batch size only decides how
# many rows a step takes.

# %% en_title="Solution 4: a two-turn conversation" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 4：两轮对话 { display-mode: "form" }
# %%solution
two_turns = [
    {"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"},
    {"role": "assistant", "content": "3 × $2 = $6.\nThe answer is 6."},
    {"role": "user", "content": "And for 5 pens?"},
    {"role": "assistant", "content": "5 × $2 = $10.\nThe answer is 10."},
]
turns = tokenizer.apply_chat_template(two_turns, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
shown = show_trained_tokens(tokenizer, turns["input_ids"], turns["assistant_masks"])
print(shown)
print(f"-> {shown.count('[masked: ')} masked spans (each user turn with the 'Assistant: ' after it); "
      f"{sum(turns['assistant_masks'])} of {len(turns['input_ids'])} tokens trained: both answers")
