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

# %% [markdown]
# # 1 · Setup: your machine, the libraries, and a first look at ERNIE-4.5
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/en/01_setup.ipynb)
#
# **You will learn** to check what machine you are on and what that decides (the precision you can train
# in), to load ERNIE-4.5 with Unsloth, what is inside the model, and what ERNIE's chat format looks like.
#
# **You need** a Colab runtime with a GPU: *Runtime → Change runtime type → T4 GPU*. Without a GPU, or
# without the Hugging Face Hub, every cell still runs, on a tiny stand-in model, and says so.
#
# **Time on a T4:** about 5 minutes, most of it installing.

# %% [markdown]
# ## 0 · Install (hosted notebooks only)
#
# On a hosted notebook (Colab, Kaggle, Baidu AI Studio, ModelScope) the course is not installed yet: this
# cell clones it and installs its pinned packages (about 2 minutes on Colab). Unsloth goes in with
# `--no-deps` so that it cannot replace the platform's own CUDA build of PyTorch. Where the course is
# installed already (`make setup` put the same versions into `.venv`), the cell does nothing.

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

# %% [markdown]
# **Not on Colab?** The same cells run on the free GPU notebooks of Kaggle, Baidu AI Studio and ModelScope.
# What they offer changes often, so read it on their own pages; what matters for this course:
#
# | platform | choose | the install cell | files are kept in |
# |---|---|---|---|
# | Kaggle | *Accelerator: GPU T4 x2*, *Internet: on* (needs a phone-verified account) | as it is | `/kaggle/working` (saved with a version of the notebook) |
# | Baidu AI Studio | a GPU environment | first `!pip install torch`; GitHub may be out of reach (README.zh.md) | `/home/aistudio` |
# | ModelScope Notebook | a GPU instance | as it is (PyTorch is preinstalled) | `/mnt/workspace` |
#
# Unsloth asks for a GPU of CUDA compute capability 7.0 or newer (its requirements page): Kaggle's P100 is
# 6.0, so pick the T4s. The course puts its work folder (data, adapter, merged model) in the kept folder of
# each, so a later notebook finds what this one saves; §2 prints which platform it found. From mainland
# China, where GitHub, PyPI or the Hugging Face Hub may be slow or blocked, README.zh.md gives the mirrors.

# %% [markdown]
# ## 1 · Import Unsloth first
#
# Unsloth speeds up training by patching `transformers`, `peft` and `trl` as it is imported, so it must be
# imported before them. It also looks for a GPU and says which backend it chose: `cuda` on Colab, or its
# CPU backend (plain transformers + PEFT underneath) on a machine without one.

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("en")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %% [markdown]
# ## 2 · What machine is this?
#
# Read the last line first. bf16 needs a GPU of compute capability 8.0 or newer (A100, L4, H100). A T4 is
# 7.5: it trains in fp16 with loss scaling. (`torch.cuda.is_bf16_supported()` answers *True* on a T4,
# because bf16 can be emulated there, slowly; the capability is the honest test.) A CPU trains in fp32.

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown]
# The doctor checks what stops classes most often, before it costs time: no GPU runtime selected on Colab,
# Unsloth imported after `transformers`, a precision this GPU cannot run. It prints each problem with its fix.

# %%
from course_lib.doctor import doctor

problems = doctor()

# %% [markdown]
# ## 3 · Settings
#
# The course's default is ERNIE-4.5-0.3B-PT: 0.36B parameters, Baidu's *post-trained* (chat) model. "-PT"
# means PyTorch weights (the "-Paddle" releases hold PaddlePaddle weights); the pre-trained base model is
# `baidu/ERNIE-4.5-0.3B-Base-PT`, whose model card says "The Base model only supports text completion".
# The course adapts the chat model to one task's format and content, and notebook 4 measures what changed.
#
# - To start from the base model instead, set `MODEL_NAME = "baidu/ERNIE-4.5-0.3B-Base-PT"`. It knows no chat
#   format before training, so its answers before training are further from the task's, and the
#   before/after difference is larger. Everything else stays the same.
# - For real work, switch to the 21B mixture-of-experts model, which activates 3B parameters per token; it
#   needs `LOAD_IN_4BIT = True` and a larger GPU than a T4 (about 24 GB).

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # the chat model; "baidu/ERNIE-4.5-0.3B-Base-PT" is the base model
MAX_SEQ_LENGTH = 1024  # tokens; the longest example the model will see (word problems need < 400)
LOAD_IN_4BIT = False  # True stores the blocks' Linear weights in 4 bits (QLoRA); solution 3 measures it

# %% [markdown]
# Which model will actually load? If the Hub cannot be reached (or `ERNIE_COURSE_MODEL=tiny` is set), the
# course falls back to a tiny ERNIE-4.5 slice built on this machine, and the banner below says so loudly,
# with how to reach the real model instead. The banner also names where a real model came from: the Hub, a
# Hub mirror (`HF_ENDPOINT`, set in a cell above §1), or ModelScope (`ERNIE_COURSE_MODEL=modelscope`);
# README.zh.md shows both, for learners in mainland China.

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown]
# ## 4 · Load the model with Unsloth
#
# One call loads the weights and the tokenizer. `dtype` is the precision chosen above. On a GPU the memory
# in use grows by the weights (about 0.7 GB for the 0.3B model in 16-bit); on a CPU the figure is the whole
# process's RAM, mostly PyTorch itself, and the offline stand-in's weights (about 2 MiB) barely move it.
# `get_memory_footprint` counts the weights alone.

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

# %% [markdown]
# ## 5 · What is inside
#
# ERNIE-4.5-0.3B is a decoder-only transformer: token embeddings, a stack of identical blocks (attention
# and an MLP), and an output head that shares its weights with the embeddings. Count the parameters, then
# look at the blocks.

# %%
n_parameters = sum(p.numel() for p in model.parameters())
print(f"{n_parameters:,} parameters, stored as {next(model.parameters()).dtype}")
print(f"{model.config.num_hidden_layers} blocks, hidden size {model.config.hidden_size}, "
      f"vocabulary {model.config.vocab_size:,} tokens")

# %%
print(model)

# %% [markdown]
# The attention uses *grouped-query attention*: many query heads share a few key/value heads, which makes
# `k_proj` and `v_proj` narrower than `q_proj`. These seven Linear layers per block (`q/k/v/o_proj` and
# `gate/up/down_proj`) are where LoRA will add its adapters in notebook 2.

# %%
config = model.config
attention = model.model.layers[0].self_attn
print(f"{config.num_attention_heads} query heads share {config.num_key_value_heads} key/value heads "
      f"of {config.head_dim} dimensions each")
for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
    layer = getattr(attention, name)
    print(f"  {name}: {layer.in_features} -> {layer.out_features}")

# %% [markdown]
# ## 6 · The tokenizer
#
# The model reads token ids, not text. The tokenizer names its special tokens by role: padding (ERNIE pads
# with `<unk>`, id 0), the start and end of a text (`<s>`, `</s>`), and the two markers of ERNIE's chat
# format, `<|begin_of_sentence|>` (its `cls_token`) and `<|end_of_sentence|>` (its `sep_token`).

# %%
for role in ("pad_token", "unk_token", "bos_token", "eos_token", "cls_token", "sep_token"):
    token = getattr(tokenizer, role)
    if token is not None:
        print(f"{role:>9} = {token!r:<24} id {tokenizer.convert_tokens_to_ids(token)}")

# %%
sentence = "Maya buys 3 pens at $2 each."
ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
print(len(ids), "tokens:", tokenizer.convert_ids_to_tokens(ids))

# %% [markdown]
# ## 7 · ERNIE's chat format
#
# A conversation is rendered into one string by the tokenizer's chat template: `User: ...`, a newline,
# `Assistant: ...`, and `<|end_of_sentence|>` closing each answer. Fine-tuning teaches the model to
# continue after `Assistant: ` and to stop with that end marker.

# %%
conversation = [
    {"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"},
    {"role": "assistant", "content": "3 × $2 = $6.\nThe answer is 6."},
]
print(tokenizer.apply_chat_template(conversation, tokenize=False))

# %% [markdown]
# To ask a question, render only the user turn and add the *generation prompt*, `Assistant: `; the model
# writes what follows.

# %%
prompt = tokenizer.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True)
print(repr(prompt))

# %% [markdown]
# ## 8 · Ask the model, before any training
#
# `FastLanguageModel.for_inference` switches Unsloth to its faster generation path. Greedy decoding
# (`do_sample=False`) makes the answer repeatable. ERNIE-4.5-0.3B-PT is a chat model, so it answers; what it
# has not learned is this course's task: worked steps in the data's style, ending `The answer is N.`
# Offline, the stand-in imitates a chat model (it was briefly trained on the chat format of other word
# problems), so it answers too, in its own small way. Notebook 4 scores both, before and after training.

# %%
from transformers import TextStreamer

FastLanguageModel.for_inference(model)
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
_ = model.generate(**inputs, max_new_tokens=80, do_sample=False, streamer=TextStreamer(tokenizer, skip_prompt=True))

# %% [markdown]
# ## Summary
#
# - Import Unsloth first; it reports the backend it chose.
# - The GPU's compute capability decides the precision: bf16 at 8.0+, fp16 on a T4, fp32 on a CPU.
# - `FastLanguageModel.from_pretrained` returns the model and its tokenizer in one call.
# - ERNIE-4.5-0.3B has 18 blocks of grouped-query attention and an MLP; LoRA will adapt their seven Linear
#   layers.
# - ERNIE's chat format is `<|begin_of_sentence|>User: …\nAssistant: …<|end_of_sentence|>`.
#
# Next: [notebook 2](02_lora_configuration.ipynb) adds LoRA adapters and counts what they cost.
#
# ## Exercises
#
# 1. Change the question in section 7 and ask again. Does the model stop by itself, and with which token?
# 2. Tokenize a sentence in another language you know. How many tokens does it take, compared with English?
# 3. How much memory would `LOAD_IN_4BIT = True` save? 4-bit quantizes the Linear layers inside the blocks
#    to half a byte per weight (plus a small scale per block of 64) and leaves the embeddings in 16-bit.
#    Work it out for this model, then load it in 4-bit and measure.

# %% [markdown]
# ### Solutions — try first; each is folded: click to unfold it
#
# Run All skips them: each prints one line instead, until you set `SHOW_SOLUTIONS = True` in the cell below
# and run it. Then run the solution you want (its output is folded too: click to unfold it).

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 1: does the model stop? { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 2: the same sentence in other languages { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 3: what 4-bit would save { display-mode: "form" }
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
