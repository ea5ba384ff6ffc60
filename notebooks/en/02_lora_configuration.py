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
# # 2 · LoRA: what gets trained, and how much
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/en/02_lora_configuration.ipynb)
#
# **You will learn** what full fine-tuning would cost, how LoRA replaces it with two small matrices per
# layer, how to count their parameters by hand (and check the count against PEFT's), what the rank `r`,
# `lora_alpha` and rsLoRA do to the update's scale, which layers get adapters, and why a fresh adapter
# changes nothing until it is trained.
#
# **You need** a Colab runtime with a GPU: *Runtime → Change runtime type → T4 GPU*. Without a GPU, or
# without the Hugging Face Hub, every cell still runs, on a tiny stand-in model, and says so.
#
# **Time on a T4:** about 4 minutes, most of it installing.

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
# The report's last line is the precision the model will be loaded in.

# %%
import unsloth  # noqa: F401  (first, before transformers / peft / trl)
from unsloth import FastLanguageModel

import course_lib.environment as env
from course_lib.language import set_language
from course_lib.progress import readable_progress_bars

set_language("en")  # the language course_lib prints in; the Chinese edition's notebooks say "zh" here
readable_progress_bars()  # a saved copy shows where each progress bar ended, not 0%

# %%
print(env.format_report(env.environment_report()))

# %%
card = env.gpu()
precision = env.choose_precision(card.capability if card else None)
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown]
# ## 2 · Settings
#
# The LoRA settings are the ones this notebook is about: the rank `LORA_R`, its scale `LORA_ALPHA`, the
# layers it adapts, and rsLoRA. Notebook 4 uses the same values; change them here, then rerun from the top.

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

# %% [markdown]
# Which model will load? Offline, the course falls back to a tiny ERNIE-4.5 slice and the banner says so.
# Its counts below are the slice's; the real model's are given in the text for comparison.

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

# %% [markdown]
# ## 3 · Full fine-tuning: every parameter, and its memory bill
#
# Full fine-tuning would update every parameter. Which ones are *marked* trainable (`requires_grad`) right
# after loading depends on the path: Unsloth's CPU backend leaves all of them trainable; on a GPU, Unsloth
# freezes them all at once, expecting LoRA (its load message says "Switching to 16bit LoRA"), unless
# `from_pretrained` was given `full_finetuning=True`.

# %%
n_parameters = sum(p.numel() for p in model.parameters())
n_requires_grad = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"{n_parameters:,} parameters: full fine-tuning would train all of them")
print(f"marked trainable right after loading: {n_requires_grad:,}")

# %% [markdown]
# Training a parameter with AdamW costs far more than storing it: the optimizer keeps a gradient and two
# running averages (moments) beside each weight, all in fp32 (16 bytes). A frozen weight costs only itself,
# in the dtype it was loaded in. Activations come on top of both and are left out here. (For the 21B
# ERNIE model, 16 bytes a parameter would be 336 GB.)

# %%
BYTES_PER_TRAINED = {"weight (fp32)": 4, "gradient (fp32)": 4, "AdamW 1st moment": 4, "AdamW 2nd moment": 4}
bytes_per_trained = sum(BYTES_PER_TRAINED.values())
bytes_per_frozen = next(model.parameters()).element_size()  # 2 in fp16/bf16, 4 in fp32
full_bill = n_parameters * bytes_per_trained
print(" + ".join(f"{name} {size} B" for name, size in BYTES_PER_TRAINED.items()), f"= {bytes_per_trained} B")
print(f"full fine-tuning: {n_parameters:,} x {bytes_per_trained} B = {full_bill / 2**20:,.1f} MiB + activations")

# %% [markdown]
# ## 4 · LoRA: W x + (B A) x · alpha / r
#
# LoRA freezes each weight matrix `W` (out × in) and learns a low-rank update beside it: `A` (r × in) and
# `B` (out × r). The layer computes `W x + (B A) x · alpha / r`. Take one real layer, the first block's
# `q_proj`, and work out the sizes by hand.

# %%
W = model.model.layers[0].self_attn.q_proj.weight
fan_out, fan_in = W.shape
print(f"W: {fan_out} x {fan_in} = {W.numel():,} parameters")
print(f"A: {LORA_R} x {fan_in} = {LORA_R * fan_in:,}   B: {fan_out} x {LORA_R} = {fan_out * LORA_R:,}")
adapter = LORA_R * (fan_in + fan_out)
print(f"A + B = r x (in + out) = {adapter:,} parameters, {100 * adapter / W.numel():.1f}% of W's")

# %% [markdown]
# `B A` has W's shape, so it can be added to W, but it can only change W along `r` directions: its rank is
# at most `r`. Random A and B of the right shapes show it.

# %%
import torch

A = torch.randn(LORA_R, fan_in)
B = torch.randn(fan_out, LORA_R)
print(f"B A: {tuple((B @ A).shape)}, the same shape as W; rank {torch.linalg.matrix_rank(B @ A)} "
      f"(W's rank: {torch.linalg.matrix_rank(W.float())})")

# %% [markdown]
# ## 5 · Choose the rank
#
# Move the slider over the ranks worth trying, 8 to 64. Under it: the `lora_alpha` the next cell will use at that
# rank; what LoRA would train on the model loaded here, over every layer named in `TARGET_MODULES` (offline, the
# tiny stand-in); and what notebook 4's training of the model `MODEL_NAME` names would need on a T4 at that rank
# (peak GPU memory and time, from measurements on an H200 scaled to a T4: an estimate, not a T4 measurement).
# (Run headless, the slider keeps its default, `LORA_R`.)

# %%
from course_lib.widgets import linear_shapes, rank_slider

t4_run = dict(model=MODEL_NAME, load_in_4bit=LOAD_IN_4BIT)  # else notebook 4's defaults: 8 x 1,024 packed, 60 steps
r_slider = rank_slider(linear_shapes(model, TARGET_MODULES), n_parameters, value=LORA_R, lora_alpha=LORA_ALPHA,
                       loaded=model_choice, t4_run=t4_run, current=card)
r_slider

# %% [markdown]
# The next cell reads the slider. `lora_alpha` follows `r`, keeping the ratio of your settings
# (`LORA_ALPHA / LORA_R`, 2 by default): the course's rule is `lora_alpha = 2 * r`.

# %%
r = r_slider.value
lora_alpha = LORA_ALPHA * r // LORA_R  # 2 * r with the default settings
print(f"r = {r}, lora_alpha = {lora_alpha}")

# %% [markdown]
# ## 6 · r, lora_alpha and rsLoRA: the update's scale
#
# PEFT multiplies `B A x` by `alpha / r`; rsLoRA (rank-stabilized LoRA) by `alpha / sqrt(r)`. Compare both,
# with `alpha = 2r` and with alpha fixed at `LORA_ALPHA`.

# %%
print(f"{'r':>5} | alpha = 2r:  alpha/r  alpha/sqrt(r) | alpha = {LORA_ALPHA}:  alpha/r  alpha/sqrt(r)")
for rank in (4, 8, 16, 32, 64, 128):
    print(f"{rank:>5} | {2 * rank:>10}  {2 * rank / rank:>7.3f}  {2 * rank / rank ** 0.5:>13.3f} "
          f"| {LORA_ALPHA:>10}  {LORA_ALPHA / rank:>7.3f}  {LORA_ALPHA / rank ** 0.5:>13.3f}")

# %% [markdown]
# With alpha fixed, the standard scale `alpha / r` shrinks as the rank grows: a rank-128 adapter's update
# is scaled 32 times less than a rank-4 one's, so large ranks learn slowly and bring little. rsLoRA divides
# by `sqrt(r)`, the scale that keeps the update's size steady across ranks, so larger ranks keep learning.
# The course's `alpha = 2r` avoids the shrinking another way (the scale stays 2); with rsLoRA on, keep alpha
# fixed instead, or the scale grows as `2 sqrt(r)`.

# %%
scaling = lora_alpha / r ** 0.5 if USE_RSLORA else lora_alpha / r
print(f"this run: r = {r}, lora_alpha = {lora_alpha}, use_rslora = {USE_RSLORA} -> scale {scaling:.3f}")

# %% [markdown]
# ## 7 · Count the adapters by hand, then add them
#
# Every Linear layer whose name ends in one of `TARGET_MODULES` gets its own A and B, so LoRA adds
# `r × (in + out)` parameters per layer. Sum them before asking PEFT. (On the real ERNIE-4.5-0.3B, r = 16 on
# all seven projections of its 18 blocks gives 6,045,696 parameters, 1.7% of the model; the tiny slice is
# only 128 wide, so the same r is a far larger share of it.)

# %%
# PEFT's rule: every Linear layer whose name ends in one of TARGET_MODULES gets an adapter.
shapes = [(name, module.in_features, module.out_features) for name, module in model.named_modules()
          if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in TARGET_MODULES]
hand_count = sum(r * (fan_in + fan_out) for _, fan_in, fan_out in shapes)
print(f"{len(shapes)} layers match; first: {shapes[0]}")
print(f"by hand: {hand_count:,} LoRA parameters at r = {r}, "
      f"{100 * hand_count / n_parameters:.2f}% of the model's {n_parameters:,}")

# %% [markdown]
# Section 9 will check that a fresh adapter changes nothing. Keep the model's output (its logits) on one
# prompt now, before LoRA is added.

# %%
question = [{"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"}]
prompt = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
with torch.no_grad():
    logits_before = model(**inputs).logits
print(f"logits before LoRA: {tuple(logits_before.shape)} (batch, tokens, vocabulary)")

# %% [markdown]
# Now the call itself. On a GPU it is Unsloth's fast LoRA path; on a CPU, Unsloth hands it to PEFT. The
# keywords are the same on both.

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

# %% [markdown]
# PEFT counts the trainable parameters too. The two counts must agree (on a mixture of experts they do not:
# section 11 shows why).

# %%
trainable, total = model.get_nb_trainable_parameters()
print(f"by hand: {hand_count:,}   PEFT: {trainable:,}   equal: {hand_count == trainable}")
print(f"PEFT's total {total:,} = the model's {n_parameters:,} + the adapters {trainable:,}")
assert trainable == hand_count or model.config.model_type == "ernie4_5_moe"

# %% [markdown]
# Back to the memory bill of section 3: with LoRA, only the adapters pay the 16 bytes of training; the
# frozen model pays only for its weights.

# %%
lora_bill = n_parameters * bytes_per_frozen + trainable * bytes_per_trained
print(f"LoRA: {n_parameters:,} frozen x {bytes_per_frozen} B + {trainable:,} trained x {bytes_per_trained} B "
      f"= {lora_bill / 2**20:,.1f} MiB")
print(f"full fine-tuning: {full_bill / 2**20:,.1f} MiB, {full_bill / lora_bill:.1f} times LoRA's")

# %% [markdown]
# ## 8 · Which layers got adapters
#
# PEFT swapped each targeted Linear layer for a LoRA layer holding `lora_A` and `lora_B`. List them, grouped
# by kind: each block contributes one of each.

# %%
from collections import Counter

wrapped = [name for name, module in model.named_modules() if hasattr(module, "lora_A")]
print(f"{len(wrapped)} layers have adapters, first: {wrapped[0]}")
for kind, count in Counter(name.split(".")[-1] for name in wrapped).items():
    print(f"  {kind:<10} {count}")

# %% [markdown]
# Everything else (embeddings, norms, the frozen `W`s inside the wrapped layers) no longer trains: only the
# `lora_A` and `lora_B` tensors do.

# %%
trainable_names = [name for name, p in model.named_parameters() if p.requires_grad]
print(f"{len(trainable_names)} trainable tensors, all LoRA: {all('lora_' in name for name in trainable_names)}")
print("for example:", trainable_names[:2])

# %% [markdown]
# One wrapped layer up close: `base_layer` is the frozen W, `lora_A` maps `in` features down to `r`, and
# `lora_B` maps them back up to `out`. PEFT stores the scale it will apply; compare it with section 6.

# %%
q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
print(q_proj)
print(f"PEFT's scaling: {q_proj.scaling['default']:.3f}   expected: {scaling:.3f}")

# %% [markdown]
# ## 9 · A fresh adapter changes nothing
#
# PEFT starts `B` at zero (and `A` random), so `B A x` is zero and the model computes exactly what it did
# before. Training then moves `B` away from zero; the random `A` is what lets its gradient be non-zero.

# %%
lora_B = [module.weight for name, module in model.named_modules() if name.endswith("lora_B.default")]
lora_A = [module.weight for name, module in model.named_modules() if name.endswith("lora_A.default")]
print(f"{len(lora_B)} lora_B matrices, all zero: {all(bool((w == 0).all()) for w in lora_B)}")
print(f"{len(lora_A)} lora_A matrices, mean |value|: {torch.cat([w.flatten() for w in lora_A]).abs().mean():.4f}")

# %% [markdown]
# The same prompt as before LoRA was added: the largest difference between the logits should be 0.

# %%
with torch.no_grad():
    logits_after = model(**inputs).logits
print(f"max |logits after - logits before| = {(logits_after - logits_before).abs().max().item():.2e}")

# %% [markdown]
# ## 10 · The original tutorial's claims, measured
#
# The tutorial this course grew from makes six promises. Here is each against what was measured, and where.
# The three about parameters are computed live below, on ERNIE-4.5-0.3B's published shape (built on PyTorch's
# `meta` device: the shapes without the weights, so it costs no memory and works offline too).
#
# | the tutorial says | measured | where |
# |---|---|---|
# | Unsloth trains "2x faster" | 2.55x plain transformers + PEFT in 16-bit (7,241 vs 2,843 tokens/s), 1.67x in 4-bit (6,728 vs 4,026) | `bench/RESULTS.md`, one H200, 0.3B shape, batch 8 |
# | "60% less memory" | not at 0.3B: 1.33 GiB with Unsloth vs 1.11 without (16-bit); the saving is reported on 1-34B models with long inputs, where activations dominate (HF's Unsloth benchmark: 23-66% on an A100) | `bench/RESULTS.md`; huggingface.co/blog/unsloth-trl |
# | LoRA trains "0.1% of the parameters" | the share at r = 16 on all seven projections: below | live |
# | 4-bit "quarters the model" | less: the embeddings (shared with the output head) stay 16-bit: below | live |
# | "a 24 GB card runs 70B in 4-bit" | 70B x 0.5 bytes is 35 GB of weights alone: below | arithmetic |
# | packing is "2-5x faster" | 6.5x at batch 8 (7,241 -> 47,362 tokens/s); the tutorial's own packed setting: 26,782 | `bench/RESULTS.md`, one H200 |

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

# %% [markdown]
# ## 11 · LoRA on a mixture of experts
#
# ERNIE-4.5-21B-A3B, the model the original tutorial trains, is a mixture of experts (MoE): after a dense layer 0,
# each layer's MLP is 64 *routed* experts, of which a router picks 6 per token, plus 2 *shared* experts that
# every token goes through. Which of its parts do the seven names adapt? First its parts, on the `meta` device:

# %%
import copy

from transformers import Ernie4_5_MoeForCausalLM

from course_lib.tiny_ernie_moe import EXPERT_PARAMETERS, make_tiny_ernie_moe, moe_config, parameter_parts, part_of

with torch.device("meta"):  # shapes only, as in section 10
    ernie_21b = Ernie4_5_MoeForCausalLM(moe_config("21b-a3b"))
parts_21b = parameter_parts(ernie_21b)
for part, count in parts_21b.items():
    print(f"{part:<15} {count:>15,} {100 * count / sum(parts_21b.values()):6.2f}%")

# %% [markdown]
# 93% of it is routed experts. The same architecture at toy size, built here in memory on this notebook's
# tokenizer (3 layers, 8 routed experts, top-2, 2 shared): in transformers 5 a layer's routed experts are two
# fused 3-D tensors, `(experts, out, in)`, not Linear layers.

# %%
moe_model = make_tiny_ernie_moe(vocab_size=len(tokenizer))
moe_parts = parameter_parts(moe_model)
print(moe_model.model.layers[1].mlp)
print({name: tuple(p.shape) for name, p in moe_model.model.layers[1].mlp.experts.named_parameters()})

# %% [markdown]
# Section 7's rule, every Linear layer whose name ends in one of `TARGET_MODULES`, finds attention, the dense MLP
# and the shared experts, and none of the routed experts:

# %%
linear_matches = Counter(part_of(name + ".weight") for name, module in moe_model.named_modules()
                         if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in TARGET_MODULES)
print(f"Linear layers the seven names match, per part: {dict(linear_matches)}")

# %% [markdown]
# PEFT 0.21 does not follow that rule here. On ERNIE-MoE (as on Qwen2-MoE and Mixtral) it reads `gate_proj`,
# `up_proj`, `down_proj` as the experts' names from transformers 4, and moves them to `target_parameters`: the
# routed experts' fused tensors, `gate_up_proj` at rank 2r. The shared experts and the dense MLP, which carry the
# same names, are left out. Plain PEFT is what Unsloth hands LoRA to on a CPU:

# %%
from peft import LoraConfig, get_peft_model

plain = get_peft_model(copy.deepcopy(moe_model), LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=TARGET_MODULES))
rewritten = plain.peft_config["default"]
print(f"target_modules {sorted(rewritten.target_modules)}, target_parameters {sorted(rewritten.target_parameters)}, "
      f"rank_pattern {rewritten.rank_pattern}")
print("trained per part:", {part: n for part, n in parameter_parts(plain, trainable_only=True).items() if n})

# %% [markdown]
# On a GPU, Unsloth's own `get_peft_model` gives the same seven names every part, the routed experts at rank r
# (measured on an H200 with this stand-in; it prints "Detected MoE model ... Enabling LoRA on MoE parameters").
# To get that everywhere, name every part so no library rewrites it: attention by module, the MLP weights and
# the fused experts by parameter.

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

# %% [markdown]
# The same names on the real 21B (on `meta` again): what r trains there, against section 10's 0.3B share.

# %%
lora_21b = get_peft_model(ernie_21b, copy.deepcopy(moe_lora.peft_config["default"]), low_cpu_mem_usage=True)
trained_21b = parameter_parts(lora_21b, trainable_only=True)
print(f"r = {r}: {sum(trained_21b.values()):,} LoRA parameters, "
      f"{100 * sum(trained_21b.values()) / sum(parts_21b.values()):.2f}% of ERNIE-4.5-21B-A3B; "
      f"{trained_21b['routed experts']:,} of them on the routed experts")

# %% [markdown]
# A few training steps on eight word problems (a plain PyTorch loop: notebook 4 is about `SFTTrainer`). The
# routed experts' `lora_B` starts at zero like every other; training must move it.

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

# %% [markdown]
# Merge, and check the merge by recomputing one layer's fused `gate_up_proj` by hand: `W_e + (alpha / r) B_e A_e`
# for every expert e. PEFT keeps an expert tensor's adapter as one `A` of `r × experts` rows and one `B` of as many
# columns; reshaped, they give each expert its own rank-r pair.

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

# %% [markdown]
# Last, 4-bit. bitsandbytes quantizes `nn.Linear` weights; fused expert tensors stay 16-bit unless something
# quantizes them. Load the stand-in with `load_in_4bit=True` and see which tensors of one MoE layer are 4-bit here:
# on a GPU (measured on an H200) Unsloth's loader stores the routed experts in 4-bit too; on a CPU they stay as
# they were, which for the 21B would be 20.4B parameters in 16-bit, 38 GiB.

# %%
import tempfile

moe_folder = tempfile.mkdtemp(prefix="tiny-ernie-moe-")
merged_moe.save_pretrained(moe_folder)
tokenizer.save_pretrained(moe_folder)
moe_4bit, _ = FastLanguageModel.from_pretrained(model_name=moe_folder, max_seq_length=MAX_SEQ_LENGTH,
                                                dtype=precision.torch_dtype, load_in_4bit=True)
for name, p in moe_4bit.model.layers[1].named_parameters():
    print(f"{name:<42} {'4-bit' if type(p).__name__ == 'Params4bit' else str(p.dtype)}")

# %% [markdown]
# ## Summary
#
# - Full fine-tuning trains every parameter at about 16 bytes each with AdamW; LoRA trains only small
#   adapters and leaves the model frozen at 2 bytes (16-bit) a parameter.
# - Each adapted Linear layer gets `A` (r × in) and `B` (out × r): `r × (in + out)` parameters, and an
#   update `B A x · alpha / r` of rank at most `r`.
# - Count the adapters by hand before `FastLanguageModel.get_peft_model`; PEFT's count must match.
# - `alpha / r` shrinks with the rank when alpha is fixed; the course keeps `alpha = 2r`, and rsLoRA
#   (`alpha / sqrt(r)`) is the other fix.
# - `B` starts at zero, so the model's output is unchanged until training moves it.
#
# Next: [notebook 3](03_data_formatting.ipynb) turns word problems into ERNIE's chat format, ready to train on.
#
# ## Exercises
#
# 1. Set `TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]` (attention only) and rerun. How many
#    trainable parameters are left, and which kinds disappear from section 8's list?
# 2. Set `USE_RSLORA = True` and rerun. Does PEFT's stored scaling follow section 6's `alpha / sqrt(r)`?
# 3. Set `LORA_R = 64` and `LORA_ALPHA = 128`. By how much do the trainable parameters and LoRA's memory
#    bill grow? Is the logits difference in section 9 still 0?

# %% [markdown]
# ### Solutions — try first; each is folded: click to unfold it
#
# Run All skips them: each prints one line instead, until you set `SHOW_SOLUTIONS = True` in the cell below
# and run it. Then run the solution you want (its output is folded too: click to unfold it).
#
# Each solution loads a fresh copy of the base model and adds its own adapters, so the notebook's `model`
# keeps the ones section 7 added.

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 1: attention only { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 2: rsLoRA's scaling { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 3: rank 64 { display-mode: "form" }
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
