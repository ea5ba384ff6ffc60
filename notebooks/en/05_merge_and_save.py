# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · Merge and save: adapter, merged model, and proof they agree
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/en/05_merge_and_save.ipynb)
#
# **You will learn** what notebook 4's LoRA adapter is on disk and why it is small, how to load it back on
# top of its base model, how to merge it into the base weights and save one standalone 16-bit model, how a
# user loads that model with plain `transformers`, and how to prove, by comparing logits, that the merged
# model computes what base + adapter computed. Last, the other ways to ship: GGUF and the Hub.
#
# **You need** a Colab runtime with a GPU: *Runtime → Change runtime type → T4 GPU*. Notebook 4's adapter
# is read from the work folder; opened alone, this notebook trains a stand-in adapter first and says so.
# Without a GPU, or without the Hugging Face Hub, every cell still runs, on a tiny stand-in model.
#
# **Time on a T4:** about 5 minutes, most of it installing.

# %% [markdown]
# ## 0 · Install (Colab only)
#
# On Colab this clones the course and installs its pinned packages (about 2 minutes). Unsloth goes in with
# `--no-deps` so that it cannot replace Colab's own CUDA build of PyTorch. Elsewhere the cell does nothing:
# `make setup` already installed the same versions into `.venv`.

# %%
import sys

if "google.colab" in sys.modules:
    COURSE_DIR = "/content/ernie-lora-course"
    # !git clone --quiet --depth 1 https://github.com/ernie-course/ernie-lora-course {COURSE_DIR}
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
# notebook writes the merged model to `MERGED_DIR`. The last two settings are the tolerance of the proof in
# section 7, explained there.

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
output = merged_model.generate(**inputs, max_new_tokens=128, do_sample=False)
answer = merged_tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
print(f"question:  {row['question']}\nreference: {row['answer']}\nmerged:    {answer}")
print("final answer right:", answers_match(answer, row["answer"]))

# %% [markdown]
# ## 7 · Proof that the merge is right
#
# One answer proves little. Compare the two models directly: run the adapter model (base + LoRA, unmerged)
# and the merged model on the same held-out conversations, and compare their logits, the scores of every
# possible next token, at every position. Right padding; the padding positions are left out.

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
# The two cannot agree exactly, for two reasons. The merged weights `W + B A · alpha / r` were rounded to
# 16 bits when saved: bf16 keeps 8 significant bits (about 3 decimal digits), fp16 11. Measured on the
# course's CPU (bf16 storage, both models computing in fp32), that alone made the largest logit difference
# 0.8-1.3% of the largest |logit| and flipped the top-1 token at 0.1-0.5% of positions, where two tokens
# were nearly tied. And on a GPU both models compute in 16 bits, each rounding its own way (the adapter
# model multiplies by `W` and by `B A` separately). Measured on an H200 with the slice: in fp16 that adds
# 0.2%; in bf16 it dominates, 1.8% (the merged model in bf16 against itself in fp32).
#
# So the tolerance follows the precision: **3% of the largest |logit| in fp32 and fp16, 8% in bf16**, two
# to five times what the 2-layer slice showed, for the 18 layers of the real model; and **97% top-1
# agreement**. A merge that lost its adapter misses both by far (next cell). Both models must compute in
# the same precision: on the CPU, the merged model run in bf16 against the fp32 adapter model moved 1.4%.

# %%
from course_lib.saving import check_agreement

tolerance = LOGIT_TOLERANCE[precision.name]
passed, why = check_agreement(result, tolerance, MIN_TOP1_AGREEMENT)
print(f"{precision.name}:", "PASS:" if passed else "FAIL:", why)
assert passed, "the merged model does not compute what base + adapter computed: do not ship it"

# %% [markdown]
# Is the test strict enough to catch a bad merge? Switch the adapter off (`disable_adapter`): the model is
# then the bare base, which is what a merge that lost the adapter would have saved. It must FAIL. (The test
# catches broken merges, such as a lost adapter, a wrong `alpha / r` or the wrong base model; a change as
# small as the rounding itself passes: exercise 3 finds the limit.)

# %%
with model.disable_adapter():
    base_result = compare_logits(model, merged_model, batch["input_ids"], batch["attention_mask"])
base_passed, why = check_agreement(base_result, tolerance, MIN_TOP1_AGREEMENT)
print("base model vs merged model:", "PASS:" if base_passed else "FAIL:", why)
assert not base_passed, "the tolerance is too loose to tell the base model from the fine-tuned one"

# %% [markdown]
# ## 8 · Other formats
#
# **GGUF, for llama.cpp and Ollama.** GGUF is llama.cpp's single-file format, quantized for CPUs and
# laptops (`q4_k_m` is a common size-quality balance; `q8_0` is nearly lossless; `f16` is not quantized).
# Unsloth merges, then converts with llama.cpp's own converter, which knows ERNIE-4.5:
#
# ```python
# model.save_pretrained_gguf(
#     str(WORK_DIR / "gguf"),  # the .gguf file(s) are written here
#     tokenizer,
#     quantization_method="q4_k_m",  # or "q8_0", "f16", or a list of several
# )
# ```
#
# It is shown here, not run: the first call installs system packages with `apt-get` and fetches llama.cpp
# from GitHub, building it where no prebuilt binary fits (minutes, and it changes the machine). Never run
# it in tests or CI. On your own
# machine, `ollama create my-ernie -f Modelfile` with a `Modelfile` of one line, `FROM ./gguf/<file>.gguf`,
# then serves it.
#
# **The Hugging Face Hub.** Push the merged model (or, with `save_method="lora"`, only the adapter) to a
# repository of yours. The token needs *write* access. Keep it out of cells (a cell's text and output are saved
# in the notebook): put it in Colab's Secrets panel (the key icon, name `HF_TOKEN`, notebook access on) or in the
# `HF_TOKEN` environment variable. `hf_token` looks there, then asks with a hidden prompt; it never prints the
# token, and its repr shows only where it came from. Is one set here?

# %%
from course_lib.secrets import hf_token

token = hf_token(ask=False)  # None if no token is set; nothing in this notebook needs one
print(repr(token) if token else "no Hugging Face token set: only needed to push to the Hub")

# %% [markdown]
# To push, run this in a new cell (not run here: it needs a token and the internet):
#
# ```python
# token = hf_token(required=True)  # Colab secret, else $HF_TOKEN, else a hidden prompt; a clear error if none
# model.push_to_hub_merged(
#     "your-name/ernie-4.5-0.3b-math",  # the repository, created if it does not exist
#     tokenizer,
#     save_method="merged_16bit",  # or "lora" for the adapter alone
#     token=token,
# )
# ```
#
# Anyone can then load it with `AutoModelForCausalLM.from_pretrained("your-name/ernie-4.5-0.3b-math")`, as
# section 6 did from the folder.

# %% [markdown]
# ## 9 · GGUF for llama.cpp and Ollama
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
# - Prove a merge before shipping it: the merged model's logits must match base + adapter's within the
#   rounding of 16-bit numbers (3% of the largest logit in fp32 and fp16, 8% in bf16; 97% same top-1
#   token), and the bare base must fail.
# - GGUF (llama.cpp, Ollama) and the Hub start from the merged model; keep tokens out of cells.
#
# That is the course: you loaded ERNIE-4.5, added LoRA, formatted data, trained, and shipped a model.
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

# %% [markdown]
# ### Solutions — try first; each is folded: click to unfold it

# %% jupyter={"source_hidden": true} tags=["solution"]
# @title Solution 1: the adapter, saved again { display-mode: "form" }
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

# %% jupyter={"source_hidden": true} tags=["solution"]
# @title Solution 2: the merged model run in bf16 { display-mode: "form" }
merged_bf16 = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype="bfloat16", device_map="auto")
bf16_result = compare_logits(model, merged_bf16, batch["input_ids"], batch["attention_mask"])
bf16_passed, why = check_agreement(bf16_result, tolerance, MIN_TOP1_AGREEMENT)
print(f"merged in {merged_model.dtype}: {result['max_abs_diff']:.4f}; in bf16: {bf16_result['max_abs_diff']:.4f} "
      f"({bf16_result['max_abs_diff'] / result['max_abs_diff']:.1f}x)")
print(f"bf16 against the {precision.name} tolerance:", "PASS:" if bf16_passed else "FAIL:", why)
# Both models must compute in the same precision for the proof to measure the merge and not the arithmetic.

# %% jupyter={"source_hidden": true} tags=["solution"]
# @title Solution 3: break the merge on purpose { display-mode: "form" }
for factor in (1.01, 1.1):
    # A fresh copy from disk each time, so `merged_model` stays the one that passed.
    broken = AutoModelForCausalLM.from_pretrained(MERGED_DIR, dtype=precision.torch_dtype, device_map="auto")
    broken.model.layers[0].mlp.down_proj.weight.data *= factor
    broken_passed, why = check_agreement(compare_logits(model, broken, batch["input_ids"], batch["attention_mask"]),
                                         tolerance, MIN_TOP1_AGREEMENT)
    print(f"down_proj x {factor}:", "PASS:" if broken_passed else "FAIL:", why)

# %% jupyter={"source_hidden": true} tags=["solution"]
# @title Solution 4: five more held-out questions { display-mode: "form" }
from course_lib.evaluation import evaluate

five = evaluate(merged_model, merged_tokenizer, heldout.select(range(1, 6)), max_new_tokens=128, progress=False)
for question, reference, prediction, right in zip(five.questions, five.references, five.predictions, five.correct):
    print(f"[{'right' if right else 'wrong'}] {question[:60]}...\n   reference: {reference.splitlines()[-1]}   "
          f"merged: {prediction.splitlines()[-1][:60] if prediction else '(nothing)'}")
print("merged model on held-out questions 2-6:", five.summary())
