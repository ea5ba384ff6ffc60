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
# # 3 · Data: from word problems to trained tokens
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ernie-course/ernie-lora-course/blob/main/notebooks/en/03_data_formatting.ipynb)
#
# **You will learn** to load the course's math word problems, turn each one into the conversation format
# TRL trains on, give ERNIE's chat template the markers TRL needs, see exactly which tokens the loss is
# computed on, measure how long the examples are, and measure what packing would save on this data.
# The result is saved for notebook 4.
#
# **You need** a Colab runtime (a GPU is not needed here: this notebook only tokenizes). Without the
# Hugging Face Hub, every cell still runs, on the course's bundled word problems and the tiny stand-in
# model's tokenizer, and says so.
#
# **Time on a T4:** about 3 minutes, most of it installing.

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
# Tokenizing runs on the CPU; the precision on the last line matters for notebook 4, which trains.

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
print(f"train in {precision.name}: {precision.reason}")

# %% [markdown]
# ## 2 · Settings
#
# `MAX_LENGTH` and `BATCH_SIZE` are the values notebook 4 gives TRL; here they decide how many examples
# get cut and how much padding a batch carries. `DATA_DIR` is where this notebook leaves the data.

# %% tags=["parameters"]
MODEL_NAME = "baidu/ERNIE-4.5-0.3B-PT"  # its tokenizer decides the token counts below
MAX_LENGTH = 1024  # tokens; TRL's SFTConfig max_length: longer examples are cut to it
BATCH_SIZE = 8  # examples per step in notebook 4; a padded batch is as long as its longest example
WORK_DIR = work_dir()  # shared by all five notebooks; /content/ernie-course on Colab
DATA_DIR = WORK_DIR / "data"  # this notebook writes train/ and heldout/ here, notebook 4 reads them

# %% [markdown]
# Whose tokenizer? Offline, the course falls back to the tiny ERNIE-4.5 slice, and the banner says so. Its
# tokenizer has ERNIE's special tokens and chat format, but a small vocabulary, so its token counts are
# higher than ERNIE's for the same text.

# %%
from course_lib.models import resolve_model

model_choice = resolve_model(MODEL_NAME)
print(model_choice.banner())

# %% [markdown]
# This notebook needs only the tokenizer, so it loads that alone, in a second; notebook 4 loads the model
# and this same tokenizer together with `FastLanguageModel.from_pretrained`.

# %%
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(model_choice.name_or_path)
print(f"{type(tokenizer).__name__}: {len(tokenizer):,} tokens in the vocabulary")

# %% [markdown]
# ## 3 · The raw data
#
# With the Hub, the course trains on 2,000 problems of Microsoft's orca-math and holds out 200 more for
# evaluation; without it, on the same number of word problems generated by `course_lib.data`. The banner
# says which one you have. Each row is a `question` and a worked `answer`.

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

# %% [markdown]
# ## 4 · Conversations: the format TRL reads
#
# TRL's `SFTTrainer` recognises a `messages` column of `{"role", "content"}` turns and renders each one with
# the tokenizer's chat template. `to_messages` makes one user turn (the question) and one assistant turn
# (the answer). `map` adds the column and keeps `question` and `answer`: TRL reads only `messages` and
# leaves the rest out of its batches, and notebook 4's evaluation needs the plain question and answer.

# %%
from course_lib.data import to_messages

train_dataset = train_dataset.map(to_messages)
heldout_dataset = heldout_dataset.map(to_messages)
example = train_dataset[0]
print(train_dataset.column_names)
print(example["messages"])

# %% [markdown]
# ## 5 · A chat template that marks the answer
#
# With `assistant_only_loss=True` TRL trains only the assistant's tokens. It finds them through
# `{% generation %}...{% endgeneration %}` markers in the chat template. ERNIE's official template has none,
# and TRL then stops with "The chat template is not training-compatible". First render the example with the
# template the tokenizer came with, and ask TRL's own check whether it has the markers.

# %%
from trl.chat_template_utils import has_generation_markers

original_text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
print("original template has generation markers:", has_generation_markers(tokenizer.chat_template))

# %% [markdown]
# The course's template writes ERNIE's format exactly and adds the markers around each answer and its end
# marker. (The tiny slice was built with this template, so offline the line above already says True; with
# the Hub model it says False.) Find `{% generation %}` in the printout.

# %%
from course_lib.ernie import TRAINING_CHAT_TEMPLATE

tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
print(tokenizer.chat_template)

# %% [markdown]
# The markers change what is trained, never the text the model reads: the example renders to the same
# string as before.

# %%
course_text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
print("generation markers now:", has_generation_markers(tokenizer.chat_template))
print("same text as the original template:", course_text == original_text)

# %% [markdown]
# ## 6 · Text, token ids, tokens
#
# This is the string the model reads: `<|begin_of_sentence|>`, `User: `, the question, a newline,
# `Assistant: `, the answer, and `<|end_of_sentence|>`, which the model must learn to write when it is done.

# %%
print(course_text)

# %% [markdown]
# The tokenizer turns that string into ids. Rendering and tokenizing in one call, as TRL does, adds no
# other special tokens. (ERNIE's tokenizer, and the tiny slice's built the same way, is SentencePiece: a space
# is the `▁` at the start of the word after it, and a character it never learned is spelled as its bytes,
# such as `<0xE4>`.)

# %%
input_ids = tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"]
print(len(input_ids), "token ids:", input_ids)
print(tokenizer.convert_ids_to_tokens(input_ids))

# %% [markdown]
# ## 7 · Which tokens are trained
#
# This is the call TRL makes for `assistant_only_loss=True`. `assistant_masks` is 1 for every token inside
# the generation markers. TRL turns it into `labels`: the token id where the mask is 1, and -100 elsewhere,
# which the loss skips. So the question is read, never learned.

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

# %% [markdown]
# The same mask as text: everything in `[masked: ...]` gets no loss, everything else is trained.

# %%
from course_lib.formatting import show_trained_tokens

print(show_trained_tokens(tokenizer, input_ids, mask))

# %%
n_trained = sum(mask)
print(f"{len(input_ids)} tokens, {n_trained} trained ({n_trained / len(input_ids):.0%}), "
      f"{len(input_ids) - n_trained} masked")

# %% [markdown]
# Decode only the trained labels: they must be exactly the answer plus the end marker, nothing of the
# question and nothing of `Assistant:`. The space after the colon comes along: ERNIE's tokenizer joins a
# space to the word after it, so the answer's first token is `▁` plus its first word.

# %%
from course_lib.ernie import END_OF_TURN

trained_text = tokenizer.decode([token for token in labels if token != -100])
print(repr(trained_text))
print("exactly the answer + end marker:", trained_text.removeprefix(" ") == example["answer"] + END_OF_TURN)

# %% [markdown]
# ### Where the answer starts: training and asking must agree
#
# That joined space matters when the model is asked. TRL tokenizes the whole conversation, so the model learns
# to write `▁First` (or `▁If`...) after the colon. The template's generation prompt ends in `Assistant: `,
# space included, which tokenizes alone as `▁`: asked that way, the model continues from a token it never
# learned to continue, and starts its answer off its training (the stand-in skips its first words). The course
# asks with `generation_prompt`: the same text without the last space, so the model writes `▁First` itself.
# Compare the last tokens, and whether each prompt is exactly the start of what was trained:

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

# %% [markdown]
# ## 8 · How long are the examples?
#
# Tokenize every training conversation as TRL will, then count. The red line is `MAX_LENGTH`.

# %%
from course_lib.plots import plot_lengths

encoded_train = [tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True)
                 for messages in train_dataset["messages"]]
lengths = [len(encoded["input_ids"]) for encoded in encoded_train]
figure = plot_lengths(lengths, MAX_LENGTH)

# %% [markdown]
# An example longer than `MAX_LENGTH` is cut by TRL to its first `MAX_LENGTH` tokens, so the end of its
# answer and its end marker are never trained (an example cut before its answer starts is dropped). If many
# are cut, raise `MAX_LENGTH` or filter them out.

# %%
import statistics

n_cut = sum(n > MAX_LENGTH for n in lengths)
print(f"tokens per example: min {min(lengths)}, median {statistics.median(lengths):.0f}, max {max(lengths)}")
print(f"{n_cut} of {len(lengths):,} examples exceed MAX_LENGTH = {MAX_LENGTH} and would be cut")

# %% [markdown]
# The check of section 7, on every training example: does each one train exactly its answer and end marker?

# %%
n_exact = sum(
    tokenizer.decode([t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep]).removeprefix(" ")
    == row["answer"] + END_OF_TURN
    for encoded, row in zip(encoded_train, train_dataset)
)
print(f"{n_exact:,} of {len(encoded_train):,} examples train exactly their answer + end marker")

# %% [markdown]
# Before training on any data, check every row at once: `validate` reports empty or non-text questions and
# answers, exact duplicates, and examples longer than `MAX_LENGTH` tokens, each by row number. The course's
# data should pass.

# %%
from course_lib.validation import validate

report = validate(train_dataset, tokenizer, max_length=MAX_LENGTH)
print(report)

# %% [markdown]
# ## 9 · Padding or packing?
#
# A batch is a rectangle: every example is padded to the longest one in its batch, and the padding is
# computed but never learned. Packing instead fills rows of `MAX_LENGTH` tokens with several whole examples
# (TRL's default `packing_strategy="bfd"`, best fit decreasing). `padding_stats` counts both on this data.
# The padded side takes batches in dataset order; the rows come in no particular order, so that is what
# a shuffling loader sees on average.

# %%
from course_lib.formatting import padding_stats

stats = padding_stats(lengths, BATCH_SIZE, MAX_LENGTH)
print(f"padded: {stats['padded_batches']} batches of {BATCH_SIZE}, {stats['padded_slots']:,} token slots for "
      f"{stats['real_tokens']:,} real tokens -> {stats['padded_fraction']:.1%} padding")
print(f"packed: {stats['packed_rows']} rows of {MAX_LENGTH} ({stats['examples_per_row']:.1f} examples each), "
      f"{stats['packed_slots']:,} slots -> {stats['packed_fraction']:.1%} left empty")
print(f"packing computes {1 - stats['packed_slots'] / stats['padded_slots']:.0%} fewer slots; an epoch is "
      f"{stats['packed_batches']} steps instead of {stats['padded_batches']}")

# %% [markdown]
# Is that what TRL itself would build? Give TRL's `pack_dataset` the same token ids and count its rows.

# %%
from datasets import Dataset
from trl import pack_dataset

token_ids = Dataset.from_dict({"input_ids": [encoded["input_ids"] for encoded in encoded_train]})
packed = pack_dataset(token_ids, seq_length=MAX_LENGTH)  # strategy="bfd", TRL's default
row_lengths = [len(row) for row in packed["input_ids"]]
print(f"TRL: {len(packed)} rows, {sum(row_lengths):,} tokens, longest row {max(row_lengths)}; "
      f"first row holds examples of {packed[0]['seq_lengths']} tokens")

# %% [markdown]
# With TRL's padding-free batches even the empty end of a packed row is not computed. The saving grows with
# the spread of lengths: problems of similar size, as here, leave less to save. Packing has costs too:
#
# - The examples in a row must not see each other. TRL passes each example's boundaries along with the row
#   (`seq_lengths` above) and switches to *padding-free* batches, which only an attention that reads those
#   boundaries respects: FlashAttention, or Unsloth's kernels on a GPU. TRL warns when it is missing.
# - Unsloth's CPU backend turns packing off, and says so.
# - A step of `BATCH_SIZE` packed rows holds many more examples, so `MAX_STEPS` covers more data and the
#   losses of packed and padded runs are not comparable step for step.
# - On a GPU, Unsloth can also drop padding without packing: when `padding_free` is left unset, it decides
#   between padded and padding-free batches by itself (padding-free in every run of the course's benchmark).
#
# Fewer slots are the smaller part of the gain. A batch of 8 short examples is too little work to keep a GPU
# busy, so a step takes about as long whether it holds 8 examples or 8 full rows. That is why the course
# packs by default on a GPU. Measured on an H200 (`bench/RESULTS.md`: the 0.3B shape, Unsloth, bf16, batch 8,
# these word problems): 7,241 real tokens/s padded, 47,362 packed, 0.16 s a step both ways.

# %% [markdown]
# **Do the examples in a packed row really stay apart?** Measure it instead of taking it on trust.
# `check_packing` builds one packed row as TRL's padding-free collator does (token ids end to end, positions
# restarting at 0 at each example, no attention mask), runs the model on it, and runs each example alone:
# kept apart, every example gets the same logits both ways, up to rounding. Then it runs the same row with
# positions 0..N-1 straight through, as a collator that lost the boundaries would send it. TRL's warning
# names only FlashAttention, but transformers 5 reads the boundaries from the restarting positions in its
# own sdpa and eager attention too, as long as no attention mask and no cache are passed (TRL passes
# neither). The check runs in fp32, on this notebook's model (loaded here for it, on the GPU if there is one).

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

# %% [markdown]
# Look for a first difference that is rounding (under 1e-4 of the largest logit) and a second about as large
# as the logits themselves: that second one is what each example would absorb from its neighbours.

# %% [markdown]
# ## 10 · Your own data: check it before it trains
#
# Your own file will not be this tidy. This one is in the Alpaca shape (`instruction`, `input`, `output`) and has
# the usual accidents: an empty answer, a number where text belongs, a row pasted twice, and a line with a
# missing comma. `load_rows` reads JSON Lines, JSON, CSV, a list of dicts or a `Dataset`, and keeps every line it
# cannot read for the report. `to_question_answer` maps each row's columns to `question` and `answer` (it also reads
# prompt/response, ShareGPT `conversations` and OpenAI `messages`, several turns included).

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

# %% [markdown]
# `validate` reports everything in one pass: the line it could not read, then each bad row, by number. Row numbers
# count from 0, as in `rows[i]`; file lines from 1, as in an editor.

# %%
my_report = validate(my_rows, tokenizer, max_length=MAX_LENGTH)
print(my_report)

# %% [markdown]
# Fix them in your file, or leave them out: `drop_bad` keeps the good rows, in the course's `messages` shape,
# and says what it dropped, the unreadable line too. (`my_report.raise_if_bad()` stops the notebook instead, with
# the same list.)

# %%
clean, message = my_report.drop_bad()
print(message)
print(clean[-1]["messages"])

# %% [markdown]
# ## 11 · Save for notebook 4
#
# Both splits keep `question` and `answer` and add `messages`. Notebook 4 trains on `train` and evaluates
# on `heldout`; it reads them from `DATA_DIR`, so it works in a fresh session.

# %%
from datasets import load_from_disk

train_dataset.save_to_disk(DATA_DIR / "train")
heldout_dataset.save_to_disk(DATA_DIR / "heldout")
for split in ("train", "heldout"):
    saved = load_from_disk(DATA_DIR / split)
    size = sum(f.stat().st_size for f in (DATA_DIR / split).rglob("*") if f.is_file())
    print(f"{DATA_DIR / split}: {saved.num_rows:,} rows, {saved.column_names}, {size / 2**20:.1f} MiB")

# %% [markdown]
# ## Summary
#
# - The data is 2,000 training and 200 held-out word problems (orca-math, or the bundled set offline), each
#   a `question` and an `answer`; `to_messages` makes it a `messages` conversation, the format TRL reads.
# - TRL's `assistant_only_loss=True` needs `{% generation %}` markers in the chat template. The course's
#   `TRAINING_CHAT_TEMPLATE` adds them and renders the same text as ERNIE's own; notebook 4 sets it too.
# - `apply_chat_template(..., return_assistant_tokens_mask=True)` shows what is trained: the answer and
#   `<|end_of_sentence|>`, never the question. Labels are -100 everywhere else.
# - Count tokens before choosing `MAX_LENGTH`: longer examples are cut and lose the end of their answer.
# - Packing fills rows of `MAX_LENGTH` with whole examples: less padding, many more examples a step (6.5x the
#   tokens/s on an H200). It needs padding-free attention on a GPU, and changes what a step means.
#
# Next: [notebook 4](04_training.ipynb) loads these splits and trains the LoRA adapter on them.
#
# ## Exercises
#
# 1. Write three question/answer pairs of your own, turn them into `messages` with `to_messages`, and print
#    `show_trained_tokens` for each. Is every answer trained up to and including `<|end_of_sentence|>`?
# 2. Set `MAX_LENGTH = 128` and rerun from section 8. How many examples are cut, and what happens to their
#    trained tokens? (Cut one with `encoded["input_ids"][:MAX_LENGTH]` and look.)
# 3. Change `BATCH_SIZE` to 1, 8 and 32. How does the padding fraction change, and why does packing not care?
# 4. Render a two-turn conversation (user, assistant, user, assistant) and show its trained tokens. How many
#    `[masked: ...]` spans are there?

# %% [markdown]
# ### Solutions — try first; each is folded: click to unfold it
#
# Run All skips them: each prints one line instead, until you set `SHOW_SOLUTIONS = True` in the cell below
# and run it. Then run the solution you want (its output is folded too: click to unfold it).

# %%
# %load_ext course_lib.solutions
SHOW_SOLUTIONS = False  # True: the solution cells below run (Run All skips them while this is False)

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 1: your own question/answer pairs { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 2: MAX_LENGTH = 128 { display-mode: "form" }
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

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 3: padding against the batch size { display-mode: "form" }
# %%solution
for batch_size in (1, 8, 32):
    s = padding_stats(lengths, batch_size, MAX_LENGTH)
    print(f"batch {batch_size:>2}: padded {s['padded_fraction']:5.1%} padding, packed {s['packed_fraction']:.1%} "
          f"left empty in {s['packed_rows']} rows")
# A padded batch is as long as its longest example, and more examples make a longer longest one (one example
# alone needs no padding). Packed rows are filled before they are batched: the batch size only decides how
# many rows a step takes.

# %% jupyter={"outputs_hidden": true, "source_hidden": true} tags=["solution"]
# @title Solution 4: a two-turn conversation { display-mode: "form" }
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
