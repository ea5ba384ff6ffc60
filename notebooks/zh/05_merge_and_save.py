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

# %% [markdown] en_hash="bde430f621"
# # 5 · 合并、保存与部署：适配器、合并后的模型、验证两者一致，以及聊天和 API
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/zh/05_merge_and_save.ipynb)
#
# **你将学到：** notebook 4 的 LoRA 适配器在磁盘上是什么、为什么它很小；如何把它重新加载到基座模型之上；如何把它合并进基座权重，保存成一个独立的 16-bit 模型；用户如何用普通的 `transformers` 加载这个模型；以及如何通过比较 logits 验证合并后的模型与"基座 + 适配器"算出的结果一致。然后部署它：和它聊天（流式输出，使用 ERNIE 的对话格式，在轮次结束处停止），用 `transformers serve` 把它发布成兼容 OpenAI 的 API，用官方的 `openai` 客户端调用它，并了解 GPU 上的路线（vLLM）。最后介绍其他发布方式：GGUF 和 Hub。
#
# **你需要：** 一个带 GPU 的 Colab 运行时：*代码执行程序（Runtime）→ 更改运行时类型（Change runtime type）→ T4 GPU*。notebook 4 的适配器从工作目录读取；如果单独打开本 notebook，它会先训练一个替代用的适配器，并且会说明这一点。没有 GPU、或者连不上 Hugging Face Hub 时，每个单元格照样能运行，只是换成离线替身模型。
#
# **在 T4 上的耗时：** 约 6 分钟，大部分花在安装上；服务器启动约需半分钟。

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

# %% [markdown] en_hash="32953a85b1"
# ## 1 · 先导入 Unsloth，再检查机器
#
# 和 notebook 1 一样：Unsloth 在被导入时会给 `transformers`、`peft` 和 `trl` 打补丁，所以它必须最先导入。报告的最后一行是加载模型时使用的精度。

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
print(f"load in {precision.name}: {precision.reason}")

# %% [markdown] en_hash="45b7803de2"
# ## 2 · 设置
#
# 这些文件夹都在课程的工作目录里：notebook 4 把它的适配器保存在 `ADAPTER_DIR`，本 notebook 把合并后的模型写到 `MERGED_DIR`。`LOGIT_TOLERANCE` 和 `MIN_TOP1_AGREEMENT` 是第 7 节中那次验证所用的容差，会在那里解释；最后两个设置用于第 8 节和第 9 节。

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # the base of notebook 4's adapter (the adapter also records it)
MAX_SEQ_LENGTH = 1024  # tokens; the longest example the model will see (word problems need < 400)
LOAD_IN_4BIT = False  # keep False: section 7 expects 16-bit weights on both sides; a CPU cannot merge 4-bit
MAX_STEPS = 60  # steps of the stand-in adapter, trained only if notebook 4's is missing
WORK_DIR = work_dir()  # shared by all five notebooks; /content/ernie-course on Colab
ADAPTER_DIR = WORK_DIR / "lora-adapter"  # notebook 4's model.save_pretrained
MERGED_DIR = WORK_DIR / "merged-16bit"  # written here by save_pretrained_merged
N_COMPARE = 8  # held-out conversations whose logits the proof compares (about 1,200 tokens)
LOGIT_TOLERANCE = {"fp32": 0.03, "fp16": 0.03, "bf16": 0.08}  # max |logit diff| / max |logit|, by precision
MIN_TOP1_AGREEMENT = 97.0  # % of positions where both models must predict the same next token
MAX_NEW_TOKENS = 256  # longest answer, in tokens, for the chat and the server (orca-math answers run 100-300)
SERVE_PORT = None  # None: any free port on 127.0.0.1; or a number, e.g. 8000

# %% [markdown] en_hash="1d9307e9c9"
# 适配器搭在哪个模型之上？离线时，课程会退而使用离线替身模型，横幅会醒目地说明这一点。

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown] en_hash="6e27d35ba8"
# ## 3 · notebook 4 的适配器
#
# notebook 4 最后执行了 `model.save_pretrained(ADAPTER_DIR)`。如果这个文件夹不存在（你单独打开了本 notebook），下一个单元格会用课程的默认设置训练一个替代用的适配器，调用的是与 notebook 4 相同的 Unsloth + TRL 接口，并告诉你实际发生的是哪一种情况。

# %%
from course_lib.fallbacks import ensure_adapter

print(ensure_adapter(ADAPTER_DIR, model_choice.name_or_path, max_steps=MAX_STEPS))

# %% [markdown] en_hash="ca90a3ee3a"
# 里面有什么：`adapter_model.safetensors` 只保存 `lora_A` 和 `lora_B` 矩阵，别无其他；`adapter_config.json` 说明它们该放在哪里；分词器的文件也一并保存在这里。

# %%
from course_lib.saving import describe_folder, folder_size, human_size

print(describe_folder(ADAPTER_DIR))

# %% [markdown] en_hash="a0225c7bd6"
# 配置中写明了基座模型。离开那个确切的基座，适配器毫无用处：它只保存对基座权重的改变量 `B A`，从不保存权重本身。

# %%
import json

adapter_config = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
for key in ("base_model_name_or_path", "peft_type", "r", "lora_alpha"):
    print(f"{key:>24}: {adapter_config[key]}")

# %% [markdown] en_hash="1ca7d1237f"
# ## 4 · 加载基座模型和适配器
#
# 把适配器文件夹（而不是模型名）交给 `FastLanguageModel.from_pretrained`：Unsloth 读取 `adapter_config.json`，加载其中指定的基座模型，然后把适配器放在它上面。得到的正是 notebook 4 训练结束时的模型：基座权重加 LoRA，两者仍然是分开的。

# %%
model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=str(ADAPTER_DIR),  # an adapter folder: its base model is loaded first, then the adapter
    max_seq_length=MAX_SEQ_LENGTH,  # Unsloth's name for the context it prepares for
    dtype=precision.torch_dtype,  # bf16 on Ampere+, fp16 on a T4, fp32 on a CPU
    load_in_4bit=LOAD_IN_4BIT,  # bitsandbytes 4-bit (QLoRA); needs a GPU
)

# %% [markdown] en_hash="0919cf4b15"
# 数一数加载回来的东西：LoRA 矩阵只占基座模型参数的一小部分。（离线替身模型只有 128 宽，所以 r = 16 在其中占的比例很大；在真实的 ERNIE-4.5-0.3B 上只占 1.7%。）

# %%
FastLanguageModel.for_inference(model)  # no more training: evaluation mode, the cache on
n_lora = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
n_base = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
adapted = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")})
print(f"{type(model).__name__}: {n_base:,} base parameters + {n_lora:,} LoRA parameters "
      f"({100 * n_lora / n_base:.1f}% of the base)")
print("adapted layers:", adapted)

# %% [markdown] en_hash="1352d6cc0f"
# ## 5 · 合并并以 16-bit 保存
#
# 合并会为每个被适配的层计算一次 `W + (B A) · alpha / r`，并用结果替换 `W`：模型不再需要 PEFT，运行起来和基座模型一样快（没有额外的矩阵要乘）。`save_method` 决定写入什么：
#
# - `"merged_16bit"`：16-bit 的合并权重，一个任何 `transformers` 用户都能加载的完整模型。这就是本课程发布的形式。在 GPU 上，Unsloth 会合并进基座模型自己的文件，并保留它们的 dtype（ERNIE-4.5 以 bf16 发布）；它的 CPU 后端写出 bf16（在不支持 bf16 的 CPU 上写 fp16）。
# - `"lora"`：只有适配器，和 notebook 4 中 `model.save_pretrained` 写出的一样。
# - `"merged_4bit_forced"`：合并后以 4-bit 存储：更小，但之后的每一次转换都要从已经舍入过的权重开始，这就是 Unsloth 要求加上 *forced* 这个词的原因。仅限 GPU：在 CPU 上，Unsloth 的后端只接受前两种。
#
# 合并后的模型和基座模型一样大（0.3B 模型在 16-bit 下是 0.7 GB），而保存到一半时磁盘满了，会留下一个看起来完整、却加载不了的文件夹。所以先检查磁盘空间：

# %%
from course_lib.saving import atomic_folder, check_free_disk, merged_size_estimate

needed = merged_size_estimate(model, "bf16")  # 2 bytes per base weight; the LoRA matrices fold into them
print(check_free_disk(MERGED_DIR, int(1.1 * needed)))  # 10% more for the tokenizer and some headroom

# %% [markdown] en_hash="5f6127cb0d"
# 然后保存到 `MERGED_DIR` 旁边的一个临时文件夹里，保存完成之后它才变成 `MERGED_DIR`；保存失败时，原有的 `MERGED_DIR` 保持原样。和 notebook 4 一样，`saving_format` 让保存的模型在 `<|end_of_sentence|>` 处停止，并带上 ERNIE 的官方对话模板；`save_vocabulary` 保留 `tokenizer.model`（第 9 节要把这个文件夹转换成 GGUF，需要它）。

# %%
from course_lib.chat_format import saving_format

needed = ["config.json", "tokenizer.model"]
with saving_format(model, tokenizer) as what, atomic_folder(MERGED_DIR, required=needed) as staging:
    print(what)
    model.save_pretrained_merged(
        str(staging),  # renamed to MERGED_DIR once the save succeeds
        tokenizer,  # saved beside the weights, so the folder is a complete model
        save_method="merged_16bit",  # or "lora" (adapter only), "merged_4bit_forced" (4-bit, GPU only)
    )
    tokenizer.save_vocabulary(staging)  # tokenizer.model, the SentencePiece file

# %% [markdown] en_hash="335b2cb0b8"
# 这次是一个完整的模型：`model.safetensors` 保存了每一个权重。检查它的存储 dtype（从文件本身读取），并把这个文件夹和适配器的文件夹比较一下。（离线替身模型以 fp32 存储，所以在 GPU 上它合并出来的结果也是 fp32，大小是两倍。）

# %%
from course_lib.saving import stored_dtypes

print(describe_folder(MERGED_DIR))
adapter_bytes, merged_bytes = folder_size(ADAPTER_DIR), folder_size(MERGED_DIR)
print(f"parameters by stored dtype: {stored_dtypes(MERGED_DIR)}")
print(f"adapter {human_size(adapter_bytes)} = {100 * adapter_bytes / merged_bytes:.1f}% of the merged model's "
      f"{human_size(merged_bytes)}")

# %% [markdown] en_hash="369e26ce93"
# **发布适配器，还是合并后的模型？** 如果用户已经有了基座模型，就发布*适配器*：它很小，多个适配器可以共享一个基座（每个任务一个，运行时切换），而且还能继续训练。如果模型必须独立使用，就发布*合并后的模型*：用户不需要 PEFT，也不需要下载基座，推理速度和基座模型一样快，而且 llama.cpp、Ollama 或 vLLM 这类工具都从完整的模型出发。

# %% [markdown] en_hash="2e03f54192"
# ## 6 · 像用户那样加载合并后的模型
#
# 你的模型的用户既没有适配器，也没有 Unsloth：只有普通的 `transformers`、这个文件夹，以及两次调用。有 GPU 时，`device_map="auto"` 会把模型放到 GPU 上。

# %%
from transformers import AutoModelForCausalLM, AutoTokenizer

merged_model = AutoModelForCausalLM.from_pretrained(
    MERGED_DIR,  # a local folder or, once pushed, a Hub id
    dtype=precision.torch_dtype,  # fp32 on a CPU, the precision the adapter model runs in (section 7)
    device_map="auto",  # the GPU when there is one, else the CPU
)
merged_tokenizer = AutoTokenizer.from_pretrained(MERGED_DIR)
print(f"{type(merged_model).__name__}, {merged_model.dtype}, on {merged_model.device}; "
      f"LoRA layers left: {sum('lora_' in name for name, _ in merged_model.named_modules())}")

# %% [markdown] en_hash="c5d5bcf7e2"
# 回答在哪里结束？ERNIE 用 `<|end_of_sentence|>` 结束助手的一轮发言，用 `</s>` 结束整段文本；除非传入 `eos_token_id`，`generate` 只会在 `generation_config.json` 列出的 id 处停止。把两个 id 都传进去，这样无论保存的配置里写了什么（ERNIE-4.5-0.3B-PT 的配置只列了 `</s>`），回答都会随这一轮一起结束。

# %%
from course_lib.evaluation import stop_token_ids

stops = stop_token_ids(merged_tokenizer)  # the ids of </s> and <|end_of_sentence|>
print(f"generation_config.json stops at {merged_model.generation_config.eos_token_id}; "
      f"generate gets eos_token_id={stops} = {merged_tokenizer.convert_ids_to_tokens(stops)}")

# %% [markdown] en_hash="ad73ee21ae"
# 问它一个训练中从未见过的问题，取自留出划分。（在离线替身模型上，预计回答的形式是对的，数字却是错的：离线替身模型太小，做不了算术。）

# %%
from course_lib.data import answers_match, load_math_dataset

heldout, data_choice = load_math_dataset("heldout")
print(data_choice.banner())

# %%
row = heldout[0]
prompt = merged_tokenizer.apply_chat_template([{"role": "user", "content": row["question"]}], tokenize=False,
                                              add_generation_prompt=True)
inputs = merged_tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(merged_model.device)
output = merged_model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=stops)
answer = merged_tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
print(f"question:  {row['question']}\nreference: {row['answer']}\nmerged:    {answer}")
print("final answer right:", answers_match(answer, row["answer"]))

# %% [markdown] en_hash="21e582ef85"
# ## 7 · 验证合并是正确的
#
# 一个回答说明不了什么。在合并发生的地方检查它，也就是在权重里：对每个加了适配器的矩阵，用 fp32 从适配器的文件（`B`、`A`，以及 `adapter_config.json` 里的 `s`）和基座模型的文件重新计算 `W + s · B A`，再和 `save_pretrained_merged` 写下的内容比较。两者之间只允许有舍入到存储 dtype 造成的差别。没有任何适配器碰过的张量（各个 norm、embedding，ERNIE 的输出层与之共享）必须和基座的一模一样：转换成同样的 dtype 之后逐位相同。

# %%
from course_lib.saving import base_weights_folder, check_merged_weights, lora_scaling, read_safetensors

scaling = lora_scaling(adapter_config)  # alpha / r, or alpha / sqrt(r) with use_rslora
base_dir = base_weights_folder(adapter_config["base_model_name_or_path"])  # the files the adapter was trained on
merged_tensors = read_safetensors(MERGED_DIR)
weight_check = check_merged_weights(merged_tensors, ADAPTER_DIR, base_dir)
print(f"s = {adapter_config['lora_alpha']} / {adapter_config['r']}{'^0.5' if adapter_config.get('use_rslora') else ''}"
      f" = {scaling:g}\n{weight_check.summary()}")
print("weights:", "PASS" if weight_check.passed else "FAIL")
assert weight_check.passed, "the merged weights are not W + s·B·A rounded to their dtype: do not ship them"

# %% [markdown] en_hash="e2512bc920"
# **误差界。** 就近舍入最多让一个数移动其最后一位单位的一半。fp16 保留 11 个有效二进制位，所以存下来的 `w` 与精确值之差不超过 2^-11·|w|（0.05%）；bf16 保留 8 位，即 2^-8·|w|（0.4%）。在正规数范围以下（fp16 中 |w| < 2^-14，bf16 中 2^-126），间距是固定的，移动最多为最小步长的一半：fp16 中为 2^-25，bf16 中为 2^-134。重新计算与合并自己的 fp32 运算可能相差几次 fp32 舍入（约为所涉及数值大小的 (r + 2)·2^-24），误差界把这一项也加上了。比值不超过 1，就说明每一个值都恰好是 `W + s · B A` 的舍入结果。
#
# 学习者能看到的合并结果是 logits，也就是每一个可能的下一个 token 的分数。让适配器模型（基座 + LoRA，未合并）和合并后的模型处理同样的留出对话，在每个位置上比较它们。采用右侧填充；填充的位置不参与比较。

# %%
from course_lib.data import to_messages

conversations = [tokenizer.apply_chat_template(to_messages(row)["messages"], tokenize=False)
                 for row in heldout.select(range(N_COMPARE))]
batch = tokenizer(conversations, return_tensors="pt", padding=True, padding_side="right",
                  add_special_tokens=False)
print(f"{N_COMPARE} conversations, {int(batch['attention_mask'].sum()):,} tokens, padded to {batch['input_ids'].shape[1]}")

# %%
from course_lib.saving import compare_logits

result = compare_logits(model, merged_model, batch["input_ids"], batch["attention_mask"])
for key, value in result.items():
    print(f"{key:>15}: {value:,.4g}")

# %% [markdown] en_hash="f2ff7147b0"
# logits 不可能完全一致，原因有两个。第一，合并后的权重在保存时被舍入到 16 位：上面的权重检查测出了舍入有多大，第 5 节打印了 dtype。这个舍入经过每一层传递下去，就是 CPU 上全部的差别，因为在 CPU 上两个模型都用 fp32 计算。第二，在 GPU 上两个模型还都用 16 位计算，各自以自己的方式舍入（适配器模型分别乘以 `W` 和 `B A`）。在 H200 上用离线替身模型实测：fp16 下这又增加了最大 |logit| 的 0.2%；bf16 下它占了主导，达到 1.8%（合并后的模型在 bf16 下与它自己在 fp32 下相比）。
#
# 因此容差随精度而定：**fp32 和 fp16 下为最大 |logit| 的 3%，bf16 下为 8%**，为真实模型的 18 层（离线替身模型只有 2 层）留出余量；外加 **97% 的 top-1 一致率**：在两个 token 几乎打平的位置上，一次舍入就可能让它们交换。两个模型必须用相同的精度计算（练习 2 测量混用精度的代价）。下一个单元格打印合并离容差还有多远。

# %%
from course_lib.saving import check_agreement

tolerance = LOGIT_TOLERANCE[precision.name]
passed, why = check_agreement(result, tolerance, MIN_TOP1_AGREEMENT)
print(f"{precision.name}:", "PASS:" if passed else "FAIL:", why)
assert passed, "the merged model does not compute what base + adapter computed: do not ship it"

# %% [markdown] en_hash="449debe653"
# 这个 logits 测试严格到能发现错误的合并吗？关掉适配器（`disable_adapter`）：这时模型就只剩下没有适配器的基座，也就是一次丢失了适配器的合并会保存下来的东西。它必须 FAIL；其他出错的合并（`alpha / r` 算错、用错了基座模型）它也能发现。

# %%
with model.disable_adapter():
    base_result = compare_logits(model, merged_model, batch["input_ids"], batch["attention_mask"])
base_passed, why = check_agreement(base_result, tolerance, MIN_TOP1_AGREEMENT)
print("base model vs merged model:", "PASS:" if base_passed else "FAIL:", why)
assert not base_passed, "the tolerance is too loose to tell the base model from the fine-tuned one"

# %% [markdown] en_hash="ff16500153"
# 不过，和舍入本身一样小的改变能通过 logits 测试。埋一个这样的错误：把合并后的一个矩阵乘以 1 + 4·2^-p（fp16 中 p = 11，bf16 中 p = 8），即四倍的舍入误差界；在张量的一份副本里改，为了 logits，也在已加载的合并模型里改。（如果合并结果保存为 fp32，比如 GPU 会保留离线替身模型的 fp32 文件，那么 p 取 fp16 的 11：几个 fp32 步长仍在 fp32 重新计算本身可能的偏差之内。）权重检查必须对它 FAIL；再看看 logits 测试怎么说。

# %%
import torch

nudged_name = "model.layers.0.mlp.down_proj.weight"
stored = merged_tensors[nudged_name]
unit = max(torch.finfo(stored.dtype).eps / 2, 2.0 ** -11)  # 2^-p of the stored dtype, fp16's at least
nudged = (stored.float() * (1 + 4 * unit)).to(stored.dtype)
nudged_check = check_merged_weights({**merged_tensors, nudged_name: nudged}, ADAPTER_DIR, base_dir)
print("weights:", "PASS" if nudged_check.passed else "FAIL", f"(worst {nudged_check.worst[2]:.2f} x the bound)")
assert not nudged_check.passed, "the weight check missed a matrix changed by 4 rounding bounds"

# %%
weight = merged_model.get_parameter(nudged_name)
original = weight.detach().clone()
with torch.no_grad():
    weight.copy_(nudged)  # the planted fault, in the model the logits come from
    nudged_passed, why = check_agreement(compare_logits(model, merged_model, batch["input_ids"], batch["attention_mask"]),
                                         tolerance, MIN_TOP1_AGREEMENT)
    weight.copy_(original)  # and out again: the later cells use the real merge
print("logits with the nudged matrix:", "PASS:" if nudged_passed else "FAIL:", why)

# %% [markdown] en_hash="0ade11dbb8"
# ## 8 · 和它对话
#
# 对话模型按轮次回答。对话模板把整段对话写成 ERNIE 的格式，并且在 `add_generation_prompt=True` 时以 `Assistant: ` 结尾，这样模型接下来写的就是它这一轮的发言。
#
# ### 8.1 · 一个回答，流式输出
#
# `TextStreamer` 每生成一段就立刻打印出来，就像聊天窗口里显示的那样；回答在轮次结束处（`eos_token_id=stops`，见第 6 节）或在 `MAX_NEW_TOKENS` 处停止。

# %%
from transformers import TextStreamer

messages = [{"role": "user", "content": heldout[1]["question"]}]
inputs = merged_tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                              return_tensors="pt").to(merged_model.device)
streamer = TextStreamer(merged_tokenizer, skip_prompt=True, skip_special_tokens=True)  # prints as it goes
output = merged_model.generate(**inputs, streamer=streamer, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                               eos_token_id=stops)

# %% [markdown] en_hash="987a61bc92"
# 它在哪里停下的？看最后一个 token：停在停止 token 上（模型结束了回答），还是停在长度上限。

# %%
new_tokens = output[0, inputs["input_ids"].shape[1]:].tolist()
last = merged_tokenizer.convert_ids_to_tokens(new_tokens[-1])
print(f"{len(new_tokens)} new tokens; " + (f"stopped at {last}: the model ended its answer" if new_tokens[-1] in stops
                                          else f"cut at MAX_NEW_TOKENS = {MAX_NEW_TOKENS}"))

# %% [markdown] en_hash="c5c4e220b6"
# ### 8.2 · 聊天框，用来问你自己的问题
#
# 输入一个问题，点击 *Send*。聊天框会保存整段对话，每次都把全部对话交给 `reply`：模型在两次调用之间什么也不记得，发给它的历史就是它的记忆。（在无人操作的运行中，例如 CI，没有人点击 *Send*，聊天框只是等待。）

# %%
from course_lib.chat import chat_box


def reply(conversation):  # every turn so far, ending with the new question; returns the model's next turn
    inputs = merged_tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_dict=True,
                                                  return_tensors="pt").to(merged_model.device)
    output = merged_model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=stops)
    return merged_tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


chat_box(reply)

# %% [markdown] en_hash="09150e86e0"
# ## 9 · 发布服务：兼容 OpenAI 的 API
#
# 程序通过 HTTP 访问模型。`transformers serve`（transformers 5 加上课程已安装的 `[serving]` 附加依赖）用与 OpenAI 相同的 API 发布一个模型文件夹：任何 OpenAI 客户端，以及任何基于它构建的工具，只要改一个地址就能使用你的模型。在终端里只需一行：`transformers serve /path/to/merged-16bit --port 8000`。它需要完整的模型：它没有加载适配器的途径。
#
# ### 9.1 · 启动它
#
# 在后台运行，只监听 127.0.0.1（其他机器无法访问），使用一个空闲端口。辅助函数在 `/health` 有响应后才返回；服务器无法启动时，会直接说明原因。它以本 notebook 中模型所用的精度提供服务，这样在 9.4 中两者才能精确比较。

# %%
from course_lib.serving import start_server

server = start_server(
    MERGED_DIR,  # a merged model folder
    device=str(merged_model.device),  # "cuda:0" on a GPU, "cpu" here
    dtype=merged_model.dtype,  # the precision of merged_model, for an exact comparison in 9.4
    port=SERVE_PORT,  # None: a free port
)
print(server)

# %% [markdown] en_hash="478ecc1cc0"
# ### 9.2 · 用 `openai` 客户端提问
#
# `base_url` 让官方客户端指向本地服务器（它不检查密钥）；`model` 必须是服务器所提供的模型名。`temperature=0` 表示贪心解码：transformers serve 会因此设置 `do_sample=False`，它的日志会警告 temperature 的值本身被忽略了，而这正是我们想要的。`stop=[END_OF_TURN]` 让回答在 ERNIE 的轮次结束处停止，即使 `generation_config.json` 只列了 `</s>`。

# %%
from openai import OpenAI

client = OpenAI(base_url=server.base_url, api_key="not-needed")
print(f"client for {client.base_url}, model {server.model!r}")

# %%
import time

from course_lib.ernie import END_OF_TURN

question = heldout[1]["question"]
start = time.perf_counter()
response = client.chat.completions.create(
    model=server.model,
    messages=[{"role": "user", "content": question}],
    temperature=0,  # greedy: the same answer every time
    max_tokens=MAX_NEW_TOKENS,
    stop=[END_OF_TURN],  # ERNIE's end of turn, whatever generation_config.json lists
)
served = response.choices[0].message.content
print(f"{time.perf_counter() - start:.2f} s, {response.usage.completion_tokens} tokens, "
      f"finish_reason={response.choices[0].finish_reason}\n{served}")

# %% [markdown] en_hash="c88c6b9b0a"
# ### 9.3 · 流式输出
#
# 使用 `stream=True` 时，回答一边生成一边分块到达：第一块远早于完整回答到达，这正是聊天窗口需要的。把这些块拼起来就是同样的文本。

# %%
start, first, pieces = time.perf_counter(), None, []
stream = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": question}],
                                        temperature=0, max_tokens=MAX_NEW_TOKENS, stop=[END_OF_TURN], stream=True)
for chunk in stream:
    piece = chunk.choices[0].delta.content if chunk.choices else None
    if piece:
        first = first or time.perf_counter() - start
        pieces.append(piece)
        print(piece, end="", flush=True)
print(f"\n\nfirst piece after {first:.2f} s, all of it after {time.perf_counter() - start:.2f} s; "
      f"the same text as 9.2: {''.join(pieces) == served}")

# %% [markdown] en_hash="7f643e7f7c"
# ### 9.4 · 与 `generate` 相同的回答
#
# 服务器运行的是同一个模型、用的是同样的方式吗？贪心解码是确定性的，所以对同一个问题、同样的长度上限和同样的精度，服务器写出的内容必须与本 notebook 中 `reply`（第 8.2 节）写出的完全相同。

# %%
local = reply([{"role": "user", "content": question}])
print("in-process generate == server:", local == served)
assert local == served, f"the server answered differently:\n server: {served!r}\n generate: {local!r}"

# %% [markdown] en_hash="a3c67cebef"
# ### 9.5 · 当它启动不了时
#
# 学习者常犯的两个错误，会立刻被拒绝并说明原因：把适配器文件夹而不是合并后的模型拿去发布，以及使用一个已被另一个服务器占用的端口（这里就是我们自己的服务器占用的）。

# %%
from course_lib.serving import ServerError

for folder, port in [(ADAPTER_DIR, None), (MERGED_DIR, server.port)]:
    try:
        start_server(folder, port=port)
    except ServerError as error:
        print(f"refused: {error}\n")

# %% [markdown] en_hash="e1888c0be2"
# ### 9.6 · 停止它
#
# 服务器在停止之前一直占着一份模型的显存（在 CPU 上是内存）。`stop` 向它发送 SIGTERM（退出状态 -15 表示它因这个信号而结束），如果它迟迟不退出就发送 SIGKILL。即使你忘了停止它，本 notebook 的内核退出时它也会被停止。

# %%
print("exit code:", server.stop(), "| still running:", server.running())

# %% [markdown] en_hash="e178a3b755"
# ### 9.7 · 在 GPU 上：vLLM
#
# 要同时服务很多用户时，vLLM 用同样的 API 发布同一个文件夹，速度快得多（连续批处理、分页注意力），并且支持 `Ernie4_5ForCausalLM`。这里只展示，不运行：它是只支持 CUDA 的软件包，会带来自己的 PyTorch，所以请在一个全新的运行时中安装它，不要和 Unsloth 装在一起。在 T4 上：
#
# ```bash
# pip install vllm
# vllm serve /content/ernie-course/merged-16bit \
#     --dtype half \
#     --max-model-len 2048 \
#     --gpu-memory-utilization 0.85 \
#     --served-model-name ernie-math \
#     --host 127.0.0.1 --port 8000
# ```
#
# 使用 `--dtype half`，是因为 T4（计算能力 7.5）不支持模型配置所要求的 bf16；使用 `--max-model-len 2048`（足够容纳课程中最长的对话），是因为否则 vLLM 会按 ERNIE-4.5 完整的 131,072 个 token 预留 KV 缓存的显存（0.3B 模型约 2.4 GB），这些显存更应该用来同时服务更多请求；`--gpu-memory-utilization` 是它可以占用的显存比例。9.2 中的客户端代码用 `base_url="http://127.0.0.1:8000/v1"` 和 `model="ernie-math"` 就能工作，只有一处不同：vLLM 在解码后的文本中匹配 `stop` 字符串，而 `<|end_of_sentence|>` 这样的特殊 token 已从文本中去掉，所以要改为传入 id：`extra_body={"stop_token_ids": stops}`（除非 `generation_config.json` 已经列出了这两个 id，vLLM 也会读取它）。

# %% [markdown] en_hash="a5083a5e54"
# ## 10 · 其他格式：GGUF 和 Hub
#
# ### 10.1 · GGUF，用于 llama.cpp 和 Ollama
#
# GGUF 是 llama.cpp 的单文件格式，Ollama 和 LM Studio 也用它，在 CPU 和笔记本电脑上运行。课程用 llama.cpp 自己的 `convert_hf_to_gguf.py`（它认识 ERNIE-4.5）来转换，来源版本固定：PyPI 上 llama-cpp-python 的源码包（校验哈希）带着它和它的 `gguf` 库，转换只需要 Python。（Unsloth 的 `save_pretrained_gguf` 运行时会安装系统软件包，并从 GitHub 克隆 llama.cpp，所以课程不调用它。）第一次调用会下载这个包，77 MB。

# %%
from course_lib.export import fetch_converter

converter = fetch_converter()
print(f"llama.cpp's converter: {converter / 'convert_hf_to_gguf.py'}")

# %% [markdown] en_hash="ee4974b6e0"
# 把合并后的文件夹转换两次：`f16` 把每个权重保存为 16 位；`q8_0` 把每 32 个权重一块存成 8 位整数，每块一个缩放系数，大小约为一半，几乎无损。（笔记本电脑上常用的 `q4_k_m` 需要 llama.cpp 编译好的 `llama-quantize`。）`convert_to_gguf` 先运行转换器，再用 llama.cpp 的 `gguf_new_metadata.py` 把 `<|end_of_sentence|>` 标记为一轮对话的结束，这样 llama.cpp 会自己在那里停下（它的文档字符串说明了它还为 transformers 5 保存的文件夹修正了什么）。

# %%
from course_lib.export import convert_to_gguf

GGUF_DIR = WORK_DIR / "gguf"
for outtype in ("f16", "q8_0"):
    converted = convert_to_gguf(MERGED_DIR, GGUF_DIR / f"ernie-{outtype}.gguf", outtype)
    print(f"{converted['path'].name}: {human_size(converted['bytes'])}, converted in {converted['seconds']:.0f} s")
print(f"merged model: {human_size(folder_size(MERGED_DIR))} in {MERGED_DIR}")

# %% [markdown] en_hash="2c66930bd4"
# 转换器写进去的是我们的权重吗？用转换器自己的 `gguf` 库把每个文件读回来，把每个张量和合并模型的 safetensors 比较：`f16` 中每个权重必须等于保存的权重舍入到 16 位的值；`q8_0` 中每个权重最多偏移它所在块的半个量化步长，再加上该块缩放系数的舍入误差，至多为该块最大权重的 0.44%。各个 norm 保持 float32，必须完全相等。

# %%
from course_lib.export import compare_tensors

for outtype in ("f16", "q8_0"):
    rows = compare_tensors(GGUF_DIR / f"ernie-{outtype}.gguf", MERGED_DIR)
    worst = max(rows, key=lambda row: row["max_abs_diff"])
    print(f"{outtype}: {len(rows)} tensors ({', '.join(sorted({row['type'] for row in rows}))}), largest difference "
          f"{worst['max_abs_diff']:.1e} in {worst['name']} (allowed {worst['bound']:.1e})")
    assert all(row["ok"] for row in rows), [row for row in rows if not row["ok"]]

# %% [markdown] en_hash="ddf1f2400f"
# Ollama 读取一个 `Modelfile`：要加载的 GGUF、用 Go 模板语言写的对话模板（ERNIE 的官方格式，与保存的分词器模板文本相同）、在 ERNIE 每个结束标记处的停止符，以及模型 `generation_config.json` 中的采样默认值。

# %%
from course_lib.export import write_modelfile

modelfile = write_modelfile(GGUF_DIR / "ernie-q8_0.gguf", MERGED_DIR)
print(modelfile.read_text())

# %% [markdown] en_hash="5217ae3f0a"
# 在你自己的机器上，装好 [Ollama](https://ollama.com) 后，在放着 GGUF 和 `Modelfile` 的文件夹里运行（这里只展示，不运行：这台机器上没有 Ollama）：
#
# ```bash
# ollama create ernie-math -f Modelfile
# ollama run ernie-math "A book costs $12 and a pen $3. What do both cost together?"
# ```
#
# 或者直接用 llama.cpp，通过它的 Python 绑定（`pip install llama-cpp-python` 会编译 llama.cpp：2 个核心上大约 20 分钟），用课程的提示、贪心解码来提问：
#
# ```python
# from llama_cpp import Llama
# from course_lib.chat_format import generation_prompt
#
# llm = Llama(model_path=str(GGUF_DIR / "ernie-q8_0.gguf"), n_ctx=2048)
# prompt = generation_prompt(tokenizer, [{"role": "user", "content": "What is 12 x 3?"}])
# print(llm.create_completion(prompt, max_tokens=256, temperature=0)["choices"][0]["text"])
# ```
#
# `make llama-cpp-check` 在离线替身模型上正好运行这些，两个文件都跑：llama.cpp 的贪心答案与 transformers 的逐字相同，并且会自己停下（`bench/llama-cpp-check.log`）。聊天前端（Ollama、`llama-server`、`create_chat_completion`）用的是官方模板，它以 `Assistant: ` 结尾；同一份日志也显示了这个单独的空格对按 notebook 4 微调的模型有什么影响。

# %% [markdown] en_hash="3e8517e4ea"
# ### 10.2 · Hugging Face Hub
#
# 把合并后的模型、单独的适配器，或者两者都推送到你自己的仓库。token 需要*写*（write）权限。不要把它写进单元格（单元格的文本和输出都会保存在 notebook 里）：把它放进 Colab 的密钥（Secrets）面板（钥匙图标，名称为 `HF_TOKEN`，并开启 notebook 访问权限），或者放进环境变量 `HF_TOKEN`。`hf_token` 会先在这两处查找，找不到时再用不回显的提示让你输入；它从不打印 token，它的 repr 只显示 token 从哪里来。这里设置了 token 吗？

# %%
from course_lib.secrets import hf_token

token = hf_token(ask=False)  # None if no token is set; nothing in this notebook needs one
print(repr(token) if token else "no Hugging Face token set: only needed to push to the Hub")

# %% [markdown] en_hash="2e6dc8db80"
# 要推送的话，在一个新单元格里运行下面的代码（这里不运行：它需要 token 和网络）。`model` 仍然是基座 + 适配器（第 4 节），所以同一个对象两种都能推送：
#
# ```python
# token = hf_token(required=True)  # Colab secret, else $HF_TOKEN, else a hidden prompt; a clear error if none
# model.push_to_hub_merged(
#     "your-name/ernie-4.5-0.3b-math",  # the merged model; the repository is created if it does not exist
#     tokenizer,
#     save_method="merged_16bit",  # W + B A · alpha / r, as MERGED_DIR holds it
#     token=token,
# )
# model.push_to_hub_merged(
#     "your-name/ernie-4.5-0.3b-math-lora",  # the adapter alone: a few MB
#     tokenizer,
#     save_method="lora",  # lora_A and lora_B plus adapter_config.json, as ADAPTER_DIR holds them
#     token=token,
# )
# ```
#
# 之后，任何人都可以用 `AutoModelForCausalLM.from_pretrained("your-name/ernie-4.5-0.3b-math")` 加载合并后的模型，就像第 6 节从文件夹加载那样，也可以用 `transformers serve your-name/ernie-4.5-0.3b-math` 发布它。适配器用 `FastLanguageModel.from_pretrained("your-name/ernie-4.5-0.3b-math-lora")` 加载，就像第 4 节那样，它会自动获取它所写明的基座模型。

# %% [markdown] en_hash="ae6465f9ff"
# ## 小结
#
# 本 notebook 和 notebook 4 在工作目录中留下了这些：

# %%
for folder, audience in [(ADAPTER_DIR, "users who have the base model (PEFT / Unsloth); more training"),
                         (MERGED_DIR, "anyone with transformers; the starting point for GGUF, vLLM, the Hub")]:
    print(f"{str(folder):<45} {human_size(folder_size(folder)):>9}  {audience}")

# %% [markdown] en_hash="0086cc6ed6"
# - 适配器只是 `lora_A` 和 `lora_B`，外加一个写明基座模型的配置：很小，但离开那个基座就毫无用处。
# - `FastLanguageModel.from_pretrained(adapter_folder)` 先加载基座，再把适配器放在上面。
# - `save_pretrained_merged(..., save_method="merged_16bit")` 把 `W + B A · alpha / r` 写成一个独立的 16-bit 模型，普通的 `transformers` 就能加载。
# - 发布之前先验证合并是正确的，而且在合并发生的地方验证：每个合并后的矩阵必须是 `W + s · B A` 只舍入一次到存储 dtype 的结果（fp16 中误差不超过 2^-11·|w|，bf16 中不超过 2^-8·|w|），其他每个张量都与基座的逐位相同。这样 logits 的差别就在最大 logit 的 3%（bf16 下 8%）以内，97% 的位置 top-1 token 相同，而没有适配器的基座通不过；一个舍入大小的错误能通过 logits 测试，只有权重检查能发现它。
# - 用模型自己的格式对话：对话模板加上 `add_generation_prompt=True`，`eos_token_id` 同时列出 `</s>` 和 `<|end_of_sentence|>`，这样回答会随轮次一起结束。
# - `transformers serve` 把一个合并后的文件夹发布成兼容 OpenAI 的 API；`openai` 客户端用 `temperature=0` 调用它得到贪心回答，在同样的精度下与 `generate` 的回答完全相同。vLLM 在 GPU 上发布同一个文件夹（T4 上用 `--dtype half`）。
# - GGUF（llama.cpp、Ollama）和 Hub 都从合并后的模型出发；不要把 token 写进单元格。
#
# 这就是整个课程：你加载了 ERNIE-4.5，添加了 LoRA，整理了数据，完成了训练，合并、保存并发布了一个模型。
#
# ## 练习
#
# 1. 用 `model.save_pretrained_merged(str(WORK_DIR / "lora-again"), tokenizer, save_method="lora")` 再保存一次适配器，并列出文件夹的内容。它和 notebook 4 保存的一样大吗？权重也完全一样吗？
# 2. 在第 6 节中用 `dtype="bfloat16"` 加载合并后的模型，然后重新运行第 7 节。差值大了多少？验证还能通过吗？
# 3. 故意破坏合并：把合并后模型的一个权重乘以 1.01（`merged_model.model.layers[0].mlp.down_proj.weight.data *= 1.01`），然后重新运行第 7 节的比较。一个矩阵改变 1%，能通过容差吗？重新加载模型，再试试 1.1。
# 4. 用合并后的模型再回答五个留出问题（在第 6 节中修改 `heldout[0]`）。有几个最终答案是对的？
# 5. 用 `reply`（第 8.2 节）进行两轮对话：先问一个问题，再带着第一个回答的历史追问一句。打印对话模板把整段对话变成了什么：每一轮从哪里开始、在哪里结束？
# 6. 用采样代替贪心：对第 9 节的问题调用三次 `merged_model.generate`，参数为 `do_sample=True, temperature=0.8`。几个回答不同吗？为什么 9.4 中服务器需要 `temperature=0`？

# %% [markdown] en_hash="f604b5ae3d"
# ### 参考答案：请先自己试一试；每个答案都已折叠，点击即可展开
#
# “全部运行”（Run All）会跳过它们：每个答案只打印一行提示，直到你在下面的单元格里设置 `SHOW_SOLUTIONS = True`
# 并运行它。然后再运行你想看的那个答案（它的输出也是折叠的：点击即可展开）。

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% en_title="Solution 1: the adapter, saved again" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 1：再保存一次适配器 { display-mode: "form" }
# %%solution
import torch
from safetensors.torch import load_file

AGAIN_DIR = WORK_DIR / "lora-again"
model.save_pretrained_merged(str(AGAIN_DIR), tokenizer, save_method="lora")
print(describe_folder(AGAIN_DIR))
first, again = (load_file(folder / "adapter_model.safetensors") for folder in (ADAPTER_DIR, AGAIN_DIR))
same = first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
print(f"adapter_model.safetensors: notebook 4's {human_size((ADAPTER_DIR / 'adapter_model.safetensors').stat().st_size)}, "
      f"again {human_size((AGAIN_DIR / 'adapter_model.safetensors').stat().st_size)}; "
      f"{len(again)} tensors, all equal: {same}")

# %% en_title="Solution 2: the merged model run in bf16" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 2：以 bf16 运行合并后的模型 { display-mode: "form" }
# %%solution
merged_bf16 = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype="bfloat16", device_map="auto")
bf16_result = compare_logits(model, merged_bf16, batch["input_ids"], batch["attention_mask"])
bf16_passed, why = check_agreement(bf16_result, tolerance, MIN_TOP1_AGREEMENT)
print(f"merged in {merged_model.dtype}: {result['max_abs_diff']:.4f}; in bf16: {bf16_result['max_abs_diff']:.4f} "
      f"({bf16_result['max_abs_diff'] / result['max_abs_diff']:.1f}x)")
print(f"bf16 against the {precision.name} tolerance:", "PASS:" if bf16_passed else "FAIL:", why)
# Both models must compute in the same precision for the proof to measure the merge and not the arithmetic.

# %% en_title="Solution 3: break the merge on purpose" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 3：故意破坏合并 { display-mode: "form" }
# %%solution
for factor in (1.01, 1.1):
    # A fresh copy from disk each time, so `merged_model` stays the one that passed.
    broken = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype=precision.torch_dtype, device_map="auto")
    broken.model.layers[0].mlp.down_proj.weight.data *= factor
    broken_passed, why = check_agreement(compare_logits(model, broken, batch["input_ids"], batch["attention_mask"]),
                                         tolerance, MIN_TOP1_AGREEMENT)
    print(f"down_proj x {factor}:", "PASS:" if broken_passed else "FAIL:", why)

# %% en_title="Solution 4: five more held-out questions" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 4：再问五个留出问题 { display-mode: "form" }
# %%solution
from course_lib.evaluation import evaluate

five = evaluate(merged_model, merged_tokenizer, heldout.select(range(1, 6)), max_new_tokens=128, progress=False)
for question, reference, prediction, right in zip(five.questions, five.references, five.predictions, five.correct):
    print(f"[{'right' if right else 'wrong'}] {question[:60]}...\n   reference: {reference.splitlines()[-1]}   "
          f"merged: {prediction.splitlines()[-1][:60] if prediction else '(nothing)'}")
print("merged model on held-out questions 2-6:", five.summary())

# %% en_title="Solution 5: a two-turn conversation" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 5：两轮对话 { display-mode: "form" }
# %%solution
conversation = [{"role": "user", "content": heldout[2]["question"]}]
conversation.append({"role": "assistant", "content": reply(conversation)})
conversation.append({"role": "user", "content": "Explain the last step again, in one sentence."})
conversation.append({"role": "assistant", "content": reply(conversation)})
# Each user turn opens with "User: ", each assistant turn with "Assistant: " and ends with <|end_of_sentence|>.
print(merged_tokenizer.apply_chat_template(conversation, tokenize=False))

# %% en_title="Solution 6: sampled answers" jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title 答案 6：采样得到的回答 { display-mode: "form" }
# %%solution
inputs = merged_tokenizer.apply_chat_template([{"role": "user", "content": heldout[1]["question"]}],
                                              add_generation_prompt=True, return_dict=True,
                                              return_tensors="pt").to(merged_model.device)
torch.manual_seed(0)
samples = [merged_tokenizer.decode(merged_model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=True,
                                                         temperature=0.8, eos_token_id=stops)[0, inputs["input_ids"].shape[1]:],
                                   skip_special_tokens=True) for _ in range(3)]
for i, sample in enumerate(samples, 1):
    print(f"sample {i}: {sample[:150]}")
print("all three the same:", len(set(samples)) == 1)
# Sampling draws each token at random from the model's probabilities: two runs, or two programs, rarely agree.
# Only greedy decoding (temperature 0) gives one answer that both sides of 9.4 must reproduce exactly.
