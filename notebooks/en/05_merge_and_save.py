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
# # 5 · Merge, save and deploy: adapter, merged model, proof they agree, chat and an API
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/en/05_merge_and_save.ipynb)
#
# **You will learn** what notebook 4's LoRA adapter is on disk and why it is small, how to load it back on
# top of its base model, how to merge it into the base weights and save one standalone 16-bit model, how a
# user loads that model with plain `transformers`, and how to prove, by comparing logits, that the merged
# model computes what base + adapter computed. Then deploy it: chat with it (streamed, in ERNIE's chat format,
# stopping at the end of the turn), serve it over an OpenAI-compatible API with `transformers serve`, call it
# with the official `openai` client, and see the GPU route (vLLM). Last, the other ways to ship: GGUF and the Hub.
#
# **You need** a Colab runtime with a GPU: *Runtime → Change runtime type → T4 GPU*. Notebook 4's adapter
# is read from the work folder; opened alone, this notebook trains a stand-in adapter first and says so.
# Without a GPU, or without the Hugging Face Hub, every cell still runs, on a tiny stand-in model.
#
# **Time on a T4:** about 6 minutes, most of it installing; the server takes about half a minute to start.

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
# ## 1 · Import Unsloth first, and check the machine
#
# As in notebook 1: Unsloth patches `transformers`, `peft` and `trl` as it is imported, so it comes first.
# The report's last line is the precision the models will be loaded in.

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.paths import work_dir
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("en")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"load in {precision.name}: {precision.reason}")

# %% [markdown]
# ## 2 · Settings
#
# The folders are the course's work folder: notebook 4 saved its adapter in `ADAPTER_DIR`, and this
# notebook writes the merged model to `MERGED_DIR`. `LOGIT_TOLERANCE` and `MIN_TOP1_AGREEMENT` are the
# tolerance of the proof in section 7, explained there; the last two settings are for sections 8 and 9.

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

# %% [markdown]
# Which model does the adapter sit on? Offline, the course falls back to the tiny ERNIE-4.5 slice, and the
# banner says so loudly.

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown]
# ## 3 · Notebook 4's adapter
#
# Notebook 4 ended with `model.save_pretrained(ADAPTER_DIR)`. If that folder is missing (you opened this
# notebook on its own), the next cell trains a stand-in adapter with the course's default settings, the
# same Unsloth + TRL calls as notebook 4, and tells you which of the two happened.

# %%
from course_lib.fallbacks import ensure_adapter

print(ensure_adapter(ADAPTER_DIR, model_choice.name_or_path, max_steps=MAX_STEPS))

# %% [markdown]
# What is in it: `adapter_model.safetensors` holds the `lora_A` and `lora_B` matrices and nothing else,
# `adapter_config.json` says where they go, and the tokenizer files travel along.

# %%
from course_lib.saving import describe_folder, folder_size, human_size

print(describe_folder(ADAPTER_DIR))

# %% [markdown]
# The config names the base model. An adapter is useless without that exact base: it stores only the
# change `B A` to the base's weights, never the weights themselves.

# %%
import json

adapter_config = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
for key in ("base_model_name_or_path", "peft_type", "r", "lora_alpha"):
    print(f"{key:>24}: {adapter_config[key]}")

# %% [markdown]
# ## 4 · Load the base model and the adapter
#
# Give `FastLanguageModel.from_pretrained` the adapter folder instead of a model name: Unsloth reads
# `adapter_config.json`, loads the base model it names, then puts the adapter on top. The result is the
# model notebook 4 finished training with: base weights plus LoRA, still separate.

# %%
model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=str(ADAPTER_DIR),  # an adapter folder: its base model is loaded first, then the adapter
    max_seq_length=MAX_SEQ_LENGTH,  # Unsloth's name for the context it prepares for
    dtype=precision.torch_dtype,  # bf16 on Ampere+, fp16 on a T4, fp32 on a CPU
    load_in_4bit=LOAD_IN_4BIT,  # bitsandbytes 4-bit (QLoRA); needs a GPU
)

# %% [markdown]
# Count what came back: the LoRA matrices are a small fraction of the base model's parameters. (The tiny
# slice is only 128 wide, so r = 16 is a large share of it; on the real ERNIE-4.5-0.3B it is 1.7%.)

# %%
FastLanguageModel.for_inference(model)  # no more training: evaluation mode, the cache on
n_lora = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
n_base = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
adapted = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")})
print(f"{type(model).__name__}: {n_base:,} base parameters + {n_lora:,} LoRA parameters "
      f"({100 * n_lora / n_base:.1f}% of the base)")
print("adapted layers:", adapted)

# %% [markdown]
# ## 5 · Merge and save in 16-bit
#
# Merging computes `W + (B A) · alpha / r` once for every adapted layer and writes the result in place of
# `W`: the model no longer needs PEFT, and runs as fast as the base model (no extra matrices to multiply).
# `save_method` chooses what is written:
#
# - `"merged_16bit"`: the merged weights in 16-bit, a complete model any `transformers` user can load. What
#   this course ships. On a GPU, Unsloth merges into the base model's own files and keeps their dtype
#   (ERNIE-4.5 is published in bf16); its CPU backend writes bf16 (fp16 on CPUs without bf16).
# - `"lora"`: the adapter alone, as `model.save_pretrained` wrote it in notebook 4.
# - `"merged_4bit_forced"`: merged, then stored in 4-bit: smaller, but every later conversion starts from
#   already-rounded weights, which is why Unsloth wants the word *forced*. GPU only: on a CPU, Unsloth's
#   backend accepts only the first two.
#
# A merged model is as large as the base model (0.7 GB for the 0.3B model in 16-bit), and a save that runs out
# of disk halfway leaves a folder that looks complete but fails to load. So check the space first:

# %%
from course_lib.saving import atomic_folder, check_free_disk, merged_size_estimate

needed = merged_size_estimate(model, "bf16")  # 2 bytes per base weight; the LoRA matrices fold into them
print(check_free_disk(MERGED_DIR, int(1.1 * needed)))  # 10% more for the tokenizer and some headroom

# %% [markdown]
# Then save into a temporary folder beside `MERGED_DIR` that becomes `MERGED_DIR` only when the save has
# finished; a failure leaves an older `MERGED_DIR` as it was. As in notebook 4, `saving_format` makes the saved
# model stop at `<|end_of_sentence|>` and carry ERNIE's official chat template, and `save_vocabulary` keeps
# `tokenizer.model` (section 9 converts this folder to GGUF, which needs it).

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

# %% [markdown]
# A full model this time: `model.safetensors` holds every weight. Check the dtype it was stored in (read
# from the file itself), and compare the folder with the adapter's. (The offline tiny slice is stored in
# fp32, so on a GPU its merge comes out in fp32, twice the size.)

# %%
from course_lib.saving import stored_dtypes

print(describe_folder(MERGED_DIR))
adapter_bytes, merged_bytes = folder_size(ADAPTER_DIR), folder_size(MERGED_DIR)
print(f"parameters by stored dtype: {stored_dtypes(MERGED_DIR)}")
print(f"adapter {human_size(adapter_bytes)} = {100 * adapter_bytes / merged_bytes:.1f}% of the merged model's "
      f"{human_size(merged_bytes)}")

# %% [markdown]
# **Adapter or merged model?** Ship the *adapter* when its users already have the base model: it is small,
# several adapters can share one base (one per task, swapped at run time), and it can go on training. Ship
# the *merged model* when it must stand alone: a user needs no PEFT and no base download, inference is as
# fast as the base model's, and tools such as llama.cpp, Ollama or vLLM start from a full model.

# %% [markdown]
# ## 6 · Load the merged model as its users will
#
# A user of your model has no adapter and no Unsloth: plain `transformers`, the folder, and two calls.
# `device_map="auto"` puts it on the GPU when there is one.

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

# %% [markdown]
# Where does an answer end? ERNIE closes an assistant turn with `<|end_of_sentence|>` and a text with `</s>`;
# `generate` stops at the ids in `generation_config.json` unless it is given `eos_token_id`. Pass both ids, so
# that the answer ends with the turn whatever the saved config lists (ERNIE-4.5-0.3B-PT's lists only `</s>`).

# %%
from course_lib.evaluation import stop_token_ids

stops = stop_token_ids(merged_tokenizer)  # the ids of </s> and <|end_of_sentence|>
print(f"generation_config.json stops at {merged_model.generation_config.eos_token_id}; "
      f"generate gets eos_token_id={stops} = {merged_tokenizer.convert_ids_to_tokens(stops)}")

# %% [markdown]
# Ask it a question it never saw in training, from the held-out split. (On the tiny slice, expect an
# answer in the right shape with wrong numbers: the slice is far too small to do arithmetic.)

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

# %% [markdown]
# ## 7 · Proof that the merge is right
#
# One answer proves little. Check the merge where it happens, in the weights: recompute `W + s · B A` in fp32
# for every adapted matrix, from the adapter's files (`B`, `A`, and `s` from `adapter_config.json`) and the
# base model's, and compare with what `save_pretrained_merged` wrote. Only the rounding to the stored dtype
# may separate them. Every tensor no adapter touches (the norms, the embeddings, which ERNIE's output layer
# shares) must be the base's, cast to the same dtype, bit for bit.

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

# %% [markdown]
# **The bound.** Rounding to nearest moves a number by at most half a unit in its last place. fp16 keeps 11
# significant bits, so a stored `w` is within 2^-11·|w| (0.05%) of the exact value; bf16 keeps 8, so
# 2^-8·|w| (0.4%). Below the normal range (|w| < 2^-14 in fp16, 2^-126 in bf16) the spacing is fixed, and the
# move is at most half the smallest step: 2^-25 in fp16, 2^-134 in bf16. The recomputation may differ from
# the merge's own fp32 arithmetic by a few fp32 roundings (about (r + 2)·2^-24 of the sizes involved), which
# the bound adds. A ratio at or below 1 means every value is exactly the rounding of `W + s · B A`.
#
# What a learner sees of the merge are the logits, the scores of every possible next token. Run the adapter
# model (base + LoRA, unmerged) and the merged model on the same held-out conversations and compare them at
# every position. Right padding; the padding positions are left out.

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

# %% [markdown]
# The logits cannot agree exactly, for two reasons. The merged weights were rounded to 16 bits when saved:
# the weight check above measured by how much, and section 5 printed the dtype. That rounding, carried
# through every layer, is all the difference on a CPU, where both models compute in fp32. On a GPU both models
# also compute in 16 bits, each rounding its own way (the adapter model multiplies by `W` and by `B A`
# separately). Measured on an H200 with the slice: in fp16 that adds 0.2% of the largest |logit|; in bf16 it
# dominates, 1.8% (the merged model in bf16 against itself in fp32).
#
# So the tolerance follows the precision: **3% of the largest |logit| in fp32 and fp16, 8% in bf16**, room
# for the 18 layers of the real model where the slice has 2; and **97% top-1 agreement**: where two tokens are
# nearly tied, a rounding can swap them. Both models must compute in the same precision (exercise 2 measures
# what mixing them costs). The next cell prints how far inside the tolerance the merge is.

# %%
from course_lib.saving import check_agreement

tolerance = LOGIT_TOLERANCE[precision.name]
passed, why = check_agreement(result, tolerance, MIN_TOP1_AGREEMENT)
print(f"{precision.name}:", "PASS:" if passed else "FAIL:", why)
assert passed, "the merged model does not compute what base + adapter computed: do not ship it"

# %% [markdown]
# Is the logit test strict enough to catch a bad merge? Switch the adapter off (`disable_adapter`): the model
# is then the bare base, which is what a merge that lost the adapter would have saved. It must FAIL, and it
# catches other broken merges too (a wrong `alpha / r`, the wrong base model).

# %%
with model.disable_adapter():
    base_result = compare_logits(model, merged_model, batch["input_ids"], batch["attention_mask"])
base_passed, why = check_agreement(base_result, tolerance, MIN_TOP1_AGREEMENT)
print("base model vs merged model:", "PASS:" if base_passed else "FAIL:", why)
assert not base_passed, "the tolerance is too loose to tell the base model from the fine-tuned one"

# %% [markdown]
# A change as small as the rounding itself passes the logit test, though. Plant one: scale one merged matrix
# by 1 + 4·2^-p (p = 11 in fp16, 8 in bf16), four times the rounding bound, in a copy of the tensors and, for
# the logits, in the loaded merged model. (A merge kept in fp32, as a GPU keeps the offline stand-in's fp32
# files, gets fp16's p = 11: a few fp32 steps are within what the fp32 recomputation itself can be off by.)
# The weight check must FAIL on it; see what the logit test says.

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

# %% [markdown]
# ## 8 · Talk to it
#
# A chat model answers in turns. The chat template writes the conversation in ERNIE's format and, with
# `add_generation_prompt=True`, ends it with `Assistant: `, so that what the model writes next is its turn.
#
# ### 8.1 · One answer, streamed
#
# `TextStreamer` prints each piece of the answer as soon as it is generated, as a chat window shows it; the
# answer stops at the end of the turn (`eos_token_id=stops`, section 6) or at `MAX_NEW_TOKENS`.

# %%
from transformers import TextStreamer

messages = [{"role": "user", "content": heldout[1]["question"]}]
inputs = merged_tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                              return_tensors="pt").to(merged_model.device)
streamer = TextStreamer(merged_tokenizer, skip_prompt=True, skip_special_tokens=True)  # prints as it goes
output = merged_model.generate(**inputs, streamer=streamer, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                               eos_token_id=stops)

# %% [markdown]
# Where did it stop? The last token says: at a stop token (the model ended its answer), or at the length limit.

# %%
new_tokens = output[0, inputs["input_ids"].shape[1]:].tolist()
last = merged_tokenizer.convert_ids_to_tokens(new_tokens[-1])
print(f"{len(new_tokens)} new tokens; " + (f"stopped at {last}: the model ended its answer" if new_tokens[-1] in stops
                                          else f"cut at MAX_NEW_TOKENS = {MAX_NEW_TOKENS}"))

# %% [markdown]
# ### 8.2 · A chat box, for your own questions
#
# Type a question and press *Send*. The box keeps the conversation and gives all of it to `reply` each
# time: the model remembers nothing between calls, the history it is sent is its memory. (In a run without
# a person, such as CI, nobody presses *Send* and the box only waits.)

# %%
from course_lib.chat import chat_box


def reply(conversation):  # every turn so far, ending with the new question; returns the model's next turn
    inputs = merged_tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_dict=True,
                                                  return_tensors="pt").to(merged_model.device)
    output = merged_model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=stops)
    return merged_tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


chat_box(reply)

# %% [markdown]
# ## 9 · Serve it: an OpenAI-compatible API
#
# Programs reach a model over HTTP. `transformers serve` (transformers 5 with its `[serving]` extras, which
# the course installs) serves a model folder with the API of OpenAI's: any OpenAI client, and any tool built
# on one, can use your model by changing one address. In a terminal it is one line,
# `transformers serve /path/to/merged-16bit --port 8000`. It needs a full model: it has no adapter path.
#
# ### 9.1 · Start it
#
# In the background, listening on 127.0.0.1 only (no other machine can reach it), on a free port. The
# helper returns once `/health` answers, and says plainly why when the server cannot start. It serves in
# the precision this notebook's model runs in, so that the two can be compared exactly in 9.4.

# %%
from course_lib.serving import start_server

server = start_server(
    MERGED_DIR,  # a merged model folder
    device=str(merged_model.device),  # "cuda:0" on a GPU, "cpu" here
    dtype=merged_model.dtype,  # the precision of merged_model, for an exact comparison in 9.4
    port=SERVE_PORT,  # None: a free port
)
print(server)

# %% [markdown]
# ### 9.2 · Ask it with the `openai` client
#
# `base_url` points the official client at the local server (which checks no key); `model` must name what
# the server serves. `temperature=0` asks for greedy decoding: transformers serve then sets `do_sample=False`,
# and its log warns that the temperature value itself is ignored, which is the point. `stop=[END_OF_TURN]`
# ends the answer at ERNIE's end of turn even when `generation_config.json` lists only `</s>`.

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

# %% [markdown]
# ### 9.3 · Streamed
#
# With `stream=True` the answer arrives in chunks as it is generated: the first one long before the whole
# answer, which is what a chat window needs. The chunks put together are the same text.

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

# %% [markdown]
# ### 9.4 · The same answer as `generate`
#
# Is the server running the same model in the same way? Greedy decoding is deterministic, so for the same
# question, the same limit and the same precision, the server must write exactly what `reply` (section 8.2)
# writes in this notebook.

# %%
local = reply([{"role": "user", "content": question}])
print("in-process generate == server:", local == served)
assert local == served, f"the server answered differently:\n server: {served!r}\n generate: {local!r}"

# %% [markdown]
# ### 9.5 · When it does not start
#
# Two mistakes learners make, refused in a moment with the cause named: serving the adapter folder instead of
# the merged model, and a port another server already holds (here, our own server's).

# %%
from course_lib.serving import ServerError

for folder, port in [(ADAPTER_DIR, None), (MERGED_DIR, server.port)]:
    try:
        start_server(folder, port=port)
    except ServerError as error:
        print(f"refused: {error}\n")

# %% [markdown]
# ### 9.6 · Stop it
#
# The server holds a copy of the model in memory until it is stopped. `stop` sends SIGTERM to it (exit status
# -15 means it ended on that signal) and SIGKILL if it lingers. Had you forgotten, it would be stopped when
# this notebook's kernel exits.

# %%
print("exit code:", server.stop(), "| still running:", server.running())

# %% [markdown]
# ### 9.7 · On a GPU: vLLM
#
# For many users at once, vLLM serves the same folder with the same API, much faster (continuous batching,
# paged attention), and supports `Ernie4_5ForCausalLM`. It is shown here, not run: it is a CUDA-only
# package that brings its own PyTorch, so install it in a fresh runtime, not beside Unsloth. On a T4:
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
# `--dtype half` because a T4 (compute capability 7.5) has no bf16, which the model's config asks for;
# `--max-model-len 2048`, room for the course's longest conversations, because vLLM otherwise reserves
# KV-cache memory for ERNIE-4.5's full 131,072 tokens (about 2.4 GB for the 0.3B model), memory better spent
# on serving more requests at once; `--gpu-memory-utilization` is the share of the GPU it may take. The client code of 9.2 works with `base_url="http://127.0.0.1:8000/v1"` and `model="ernie-math"`, with
# one difference: vLLM matches `stop` strings in the decoded text, from which special tokens such as
# `<|end_of_sentence|>` are removed, so give it the ids instead, `extra_body={"stop_token_ids": stops}`
# (unless `generation_config.json` already lists both, which vLLM reads too).

# %% [markdown]
# ## 10 · Other formats: GGUF and the Hub
#
# ### 10.1 · GGUF, for llama.cpp and Ollama
#
# GGUF is llama.cpp's one-file format, which Ollama and LM Studio also run, on CPUs and laptops. The course
# converts with llama.cpp's own `convert_hf_to_gguf.py`, which knows ERNIE-4.5, from a pinned source:
# llama-cpp-python's source package on PyPI (hash-checked) ships it with its `gguf` library, and converting
# needs only Python. (Unsloth's `save_pretrained_gguf` installs system packages and clones llama.cpp from GitHub
# when it runs, so the course does not call it.) The first call downloads the package, 77 MB.

# %%
from course_lib.export import fetch_converter

converter = fetch_converter()
print(f"llama.cpp's converter: {converter / 'convert_hf_to_gguf.py'}")

# %% [markdown]
# Convert the merged folder twice: `f16` keeps every weight in 16 bits; `q8_0` stores blocks of 32 weights as
# 8-bit integers with one scale each, about half the size and nearly lossless. (`q4_k_m`, the usual size for a
# laptop, needs llama.cpp's compiled `llama-quantize`.) `convert_to_gguf` runs the converter, then llama.cpp's
# `gguf_new_metadata.py` marks `<|end_of_sentence|>` as the end of a turn, so llama.cpp stops there by itself
# (its docstring says what else it fixes in a folder that transformers 5 saved).

# %%
from course_lib.export import convert_to_gguf

GGUF_DIR = WORK_DIR / "gguf"
for outtype in ("f16", "q8_0"):
    converted = convert_to_gguf(MERGED_DIR, GGUF_DIR / f"ernie-{outtype}.gguf", outtype)
    print(f"{converted['path'].name}: {human_size(converted['bytes'])}, converted in {converted['seconds']:.0f} s")
print(f"merged model: {human_size(folder_size(MERGED_DIR))} in {MERGED_DIR}")

# %% [markdown]
# Did the converter write our weights? Read each file back with the converter's own `gguf` library and compare
# every tensor with the merged model's safetensors: in `f16` each weight must equal the saved weight rounded to
# 16 bits; in `q8_0` it may move by half its block's step plus the rounding of the block's scale, at most 0.44%
# of the block's largest weight. The norms stay in float32 and must be equal.

# %%
from course_lib.export import compare_tensors

for outtype in ("f16", "q8_0"):
    rows = compare_tensors(GGUF_DIR / f"ernie-{outtype}.gguf", MERGED_DIR)
    worst = max(rows, key=lambda row: row["max_abs_diff"])
    print(f"{outtype}: {len(rows)} tensors ({', '.join(sorted({row['type'] for row in rows}))}), largest difference "
          f"{worst['max_abs_diff']:.1e} in {worst['name']} (allowed {worst['bound']:.1e})")
    assert all(row["ok"] for row in rows), [row for row in rows if not row["ok"]]

# %% [markdown]
# Ollama reads a `Modelfile`: the GGUF to load, the chat template in Go's template language (ERNIE's official
# format, the same text as the saved tokenizer's template), a stop at each of ERNIE's end markers, and the
# sampling defaults of the model's `generation_config.json`.

# %%
from course_lib.export import write_modelfile

modelfile = write_modelfile(GGUF_DIR / "ernie-q8_0.gguf", MERGED_DIR)
print(modelfile.read_text())

# %% [markdown]
# On your own machine, with [Ollama](https://ollama.com) installed, in the folder with the GGUF and the
# `Modelfile` (shown, not run: there is no Ollama here):
#
# ```bash
# ollama create ernie-math -f Modelfile
# ollama run ernie-math "A book costs $12 and a pen $3. What do both cost together?"
# ```
#
# Or llama.cpp itself, through its Python bindings (`pip install llama-cpp-python` compiles llama.cpp: about
# 20 minutes on 2 cores), asked with the course's prompt, greedy:
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
# `make llama-cpp-check` runs exactly this on the stand-in, from both files: llama.cpp's greedy answers equal
# transformers' word for word, and stop by themselves (`bench/llama-cpp-check.log`). A chat front-end (Ollama,
# `llama-server`, `create_chat_completion`) renders the official template, which ends in `Assistant: `; the same
# log shows what that lone space does to a model fine-tuned as in notebook 4.

# %% [markdown]
# ### 10.2 · The Hugging Face Hub
#
# Push the merged model, the adapter alone, or both, to repositories of yours. The token needs *write* access. Keep it out of cells (a cell's text and output are saved
# in the notebook): put it in Colab's Secrets panel (the key icon, name `HF_TOKEN`, notebook access on) or in the
# `HF_TOKEN` environment variable. `hf_token` looks there, then asks with a hidden prompt; it never prints the
# token, and its repr shows only where it came from. Is one set here?

# %%
from course_lib.secrets import hf_token

token = hf_token(ask=False)  # None if no token is set; nothing in this notebook needs one
print(repr(token) if token else "no Hugging Face token set: only needed to push to the Hub")

# %% [markdown]
# To push, run this in a new cell (not run here: it needs a token and the internet). `model` is still base +
# adapter (section 4), so the same object can push either:
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
# Anyone can then load the merged model with `AutoModelForCausalLM.from_pretrained("your-name/ernie-4.5-0.3b-math")`,
# as section 6 did from the folder, or serve it with `transformers serve your-name/ernie-4.5-0.3b-math`. The
# adapter loads with `FastLanguageModel.from_pretrained("your-name/ernie-4.5-0.3b-math-lora")`, as section 4
# did, which fetches the base model it names.

# %% [markdown]
# ## Summary
#
# What this notebook and notebook 4 left in the work folder:

# %%
for folder, audience in [(ADAPTER_DIR, "users who have the base model (PEFT / Unsloth); more training"),
                         (MERGED_DIR, "anyone with transformers; the starting point for GGUF, vLLM, the Hub")]:
    print(f"{str(folder):<45} {human_size(folder_size(folder)):>9}  {audience}")

# %% [markdown]
# - An adapter is only `lora_A` and `lora_B` plus a config naming its base model: small, and useless
#   without that base.
# - `FastLanguageModel.from_pretrained(adapter_folder)` loads the base, then the adapter on top.
# - `save_pretrained_merged(..., save_method="merged_16bit")` writes `W + B A · alpha / r` as one
#   standalone 16-bit model that plain `transformers` loads.
# - Prove a merge before shipping it, where it happens: every merged matrix must be `W + s · B A` rounded once
#   to the stored dtype (within 2^-11·|w| in fp16, 2^-8·|w| in bf16), every other tensor the base's bit for
#   bit. The logits then agree within 3% of the largest logit (8% in bf16) and 97% same top-1 token, and the
#   bare base fails that; a rounding-sized fault passes the logits, and only the weight check catches it.
# - Chat in the model's own format: the chat template with `add_generation_prompt=True`, and `eos_token_id`
#   listing both `</s>` and `<|end_of_sentence|>` so that the answer ends with the turn.
# - `transformers serve` puts a merged folder behind an OpenAI-compatible API; the `openai` client calls it
#   with `temperature=0` for greedy answers, which equal `generate`'s in the same precision. vLLM serves the
#   same folder on a GPU (`--dtype half` on a T4).
# - GGUF (llama.cpp, Ollama) and the Hub start from the merged model; keep tokens out of cells.
#
# That is the course: you loaded ERNIE-4.5, added LoRA, formatted data, trained, merged, saved and served a model.
#
# ## Exercises
#
# 1. Save the adapter again with `model.save_pretrained_merged(str(WORK_DIR / "lora-again"), tokenizer,
#    save_method="lora")` and list the folder. Is it the same size as notebook 4's? Are the weights the same?
# 2. Load the merged model with `dtype="bfloat16"` in section 6 and rerun section 7. How much larger is
#    the difference, and does the proof still pass?
# 3. Break the merge on purpose: multiply one merged weight by 1.01
#    (`merged_model.model.layers[0].mlp.down_proj.weight.data *= 1.01`) and rerun section 7's comparison.
#    Does a 1% change in one matrix pass the tolerance? Reload the model and try 1.1.
# 4. Answer five more held-out questions with the merged model (change `heldout[0]` in section 6). How many
#    final answers are right?
# 5. Hold a two-turn conversation with `reply` (section 8.2): ask a question, then a follow-up with the first
#    answer in the history. Print what the chat template makes of the whole conversation: where do the
#    turns begin and end?
# 6. Sample instead of greedy: call `merged_model.generate` three times with `do_sample=True, temperature=0.8`
#    on the question of section 9. Do the answers differ? Why did 9.4 need `temperature=0` on the server?

# %% [markdown]
# ### Solutions — try first; each is folded: click to unfold it
#
# Run All skips them: each prints one line instead, until you set `SHOW_SOLUTIONS = True` in the cell below
# and run it. Then run the solution you want (its output is folded too: click to unfold it).

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 1: the adapter, saved again { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 2: the merged model run in bf16 { display-mode: "form" }
# %%solution
merged_bf16 = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype="bfloat16", device_map="auto")
bf16_result = compare_logits(model, merged_bf16, batch["input_ids"], batch["attention_mask"])
bf16_passed, why = check_agreement(bf16_result, tolerance, MIN_TOP1_AGREEMENT)
print(f"merged in {merged_model.dtype}: {result['max_abs_diff']:.4f}; in bf16: {bf16_result['max_abs_diff']:.4f} "
      f"({bf16_result['max_abs_diff'] / result['max_abs_diff']:.1f}x)")
print(f"bf16 against the {precision.name} tolerance:", "PASS:" if bf16_passed else "FAIL:", why)
# Both models must compute in the same precision for the proof to measure the merge and not the arithmetic.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 3: break the merge on purpose { display-mode: "form" }
# %%solution
for factor in (1.01, 1.1):
    # A fresh copy from disk each time, so `merged_model` stays the one that passed.
    broken = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype=precision.torch_dtype, device_map="auto")
    broken.model.layers[0].mlp.down_proj.weight.data *= factor
    broken_passed, why = check_agreement(compare_logits(model, broken, batch["input_ids"], batch["attention_mask"]),
                                         tolerance, MIN_TOP1_AGREEMENT)
    print(f"down_proj x {factor}:", "PASS:" if broken_passed else "FAIL:", why)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 4: five more held-out questions { display-mode: "form" }
# %%solution
from course_lib.evaluation import evaluate

five = evaluate(merged_model, merged_tokenizer, heldout.select(range(1, 6)), max_new_tokens=128, progress=False)
for question, reference, prediction, right in zip(five.questions, five.references, five.predictions, five.correct):
    print(f"[{'right' if right else 'wrong'}] {question[:60]}...\n   reference: {reference.splitlines()[-1]}   "
          f"merged: {prediction.splitlines()[-1][:60] if prediction else '(nothing)'}")
print("merged model on held-out questions 2-6:", five.summary())

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 5: a two-turn conversation { display-mode: "form" }
# %%solution
conversation = [{"role": "user", "content": heldout[2]["question"]}]
conversation.append({"role": "assistant", "content": reply(conversation)})
conversation.append({"role": "user", "content": "Explain the last step again, in one sentence."})
conversation.append({"role": "assistant", "content": reply(conversation)})
# Each user turn opens with "User: ", each assistant turn with "Assistant: " and ends with <|end_of_sentence|>.
print(merged_tokenizer.apply_chat_template(conversation, tokenize=False))

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 6: sampled answers { display-mode: "form" }
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
