"""The tiny ERNIE-4.5 slice: the real architecture at toy size, for machines without the Hub or a GPU.

A native `Ernie4_5ForCausalLM` (grouped-query attention, tied embeddings, rope theta 500000, special-token
ids 0/1/2 as in ERNIE-4.5-0.3B-PT) with a byte-level BPE tokenizer trained here on the bundled word
problems, and ERNIE's chat format. It loads by path through AutoModelForCausalLM, AutoTokenizer and
Unsloth's FastLanguageModel, exactly like the Hub model.

Like ERNIE-4.5-0.3B-PT it is a base model: `ensure_tiny_ernie` pre-trains it for ~20 s on plain text of
word problems that are in neither course split, so it has seen the domain but never ERNIE's chat format.
Fine-tuning then teaches it to answer after "Assistant: " and to stop, as it does for the real model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from course_lib.ernie import BEGIN, END_OF_TURN, IGNORE_INDEX, SPECIAL_TOKENS, TRAINING_CHAT_TEMPLATE

TINY_SHAPE = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, initializer_range=0.1)
# ERNIE-4.5-0.3B-PT as published (transformers' Ernie4_5Config defaults): about 361M parameters.
FULL_SHAPE = dict(vocab_size=103424, hidden_size=1024, intermediate_size=3072, num_hidden_layers=18,
                  num_attention_heads=16, num_key_value_heads=2, head_dim=128, initializer_range=0.02)
TOKENIZER_VOCAB = 1024
PRETRAIN_STEPS = 200  # of 16 plain-text problems each: about 20 s on 2 CPU cores, loss 7.6 -> ~0.4
PRETRAIN_SEED = 99
SLICE_VERSION = 2  # bump when anything above changes, so cached slices are rebuilt


def build_tokenizer(texts: list[str], vocab_size: int = TOKENIZER_VOCAB):
    """A byte-level BPE tokenizer (any text encodes; nothing is <unk>) with ERNIE's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    # Spaces are tokens of their own, so "Assistant: " ends in the same token at training and at generation
    # time, and the trained (answer) tokens never start with the prompt's space. Digits are split one by
    # one, as in most LLM tokenizers, so numbers share their pieces.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", pad_token="<unk>", bos_token="<s>", eos_token="</s>",
        cls_token=BEGIN, sep_token=END_OF_TURN, chat_template=TRAINING_CHAT_TEMPLATE,
        model_max_length=4096,
    )


def ernie_config(shape: str, vocab_size: int):
    """`shape` is "tiny" (the CPU slice) or "0.3b" (the full ERNIE-4.5-0.3B shape)."""
    from transformers import Ernie4_5Config

    sizes = {"tiny": dict(TINY_SHAPE, vocab_size=vocab_size), "0.3b": FULL_SHAPE}[shape]
    # head_dim must be explicit: left out it stays 128 and a 128-wide slice gets 4x too-wide projections.
    return Ernie4_5Config(**sizes, max_position_embeddings=131072 if shape == "0.3b" else 4096,
                          rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, use_bias=False,
                          pad_token_id=0, bos_token_id=1, eos_token_id=2)


def make_tiny_ernie(shape: str = "tiny", seed: int = 0):
    """(model, tokenizer) in memory, the same for the same seed: the tokenizer is trained on the bundled
    training split, the weights are drawn from `seed`."""
    import torch
    from transformers import Ernie4_5ForCausalLM

    from course_lib.data import TRAIN_SEED, TRAIN_SIZE, make_word_problems

    rows = make_word_problems(TRAIN_SIZE, seed=TRAIN_SEED)
    tokenizer = build_tokenizer([f"User: {row['question']}\nAssistant: {row['answer']}" for row in rows])
    torch.manual_seed(seed)
    model = Ernie4_5ForCausalLM(ernie_config(shape, vocab_size=len(tokenizer)))
    # Stop generating at the end of an assistant turn as well as at </s>.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def pretrain(model, tokenizer, steps: int = PRETRAIN_STEPS, batch_size: int = 16, lr: float = 3e-3) -> list[float]:
    """Full-parameter next-token training on plain "question\nanswer" text (no chat format), from a fixed seed.

    The problems come from their own seed and exclude every question of the course's train and held-out
    splits, so nothing the course evaluates on was seen here. Returns the loss of each step.
    """
    import torch

    from course_lib.data import bundled_rows, make_word_problems

    taken = {row["question"] for split in ("train", "heldout") for row in bundled_rows(split)}
    rows = [row for row in make_word_problems(4000, PRETRAIN_SEED) if row["question"] not in taken]
    texts = [tokenizer(f"{row['question']}\n{row['answer']}", add_special_tokens=False)["input_ids"]
             + [tokenizer.eos_token_id] for row in rows]
    generator = torch.Generator().manual_seed(PRETRAIN_SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / warmup) * (1 - s / steps))
    losses = []
    model.train()
    for _ in range(steps):
        batch = [texts[i] for i in torch.randint(len(texts), (batch_size,), generator=generator).tolist()]
        width = max(map(len, batch))
        labels = torch.tensor([ids + [IGNORE_INDEX] * (width - len(ids)) for ids in batch])
        input_ids = labels.clamp(min=0)  # padding positions hold id 0 (<unk>, ERNIE's pad) and are masked
        loss = model(input_ids=input_ids, attention_mask=(labels != IGNORE_INDEX).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def build_tiny_ernie(folder: Path, shape: str = "tiny", seed: int = 0, pretrain_steps: int = 0) -> Path:
    """Save `make_tiny_ernie` (pre-trained for `pretrain_steps`) into `folder`, atomically: a half-written
    folder is never left behind."""
    model, tokenizer = make_tiny_ernie(shape, seed)
    if pretrain_steps:
        pretrain(model, tokenizer, steps=pretrain_steps)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_tiny_ernie(shape: str = "tiny") -> Path:
    """The cached model in the work folder, built on first use: "tiny" is pre-trained (~20 s), "0.3b" keeps
    its random weights (only its shape, speed and memory are real)."""
    from course_lib.paths import work_dir

    name = {"tiny": "tiny-ernie-4.5", "0.3b": "random-ernie-4.5-0.3b"}[shape]
    folder = work_dir() / "models" / f"{name}-v{SLICE_VERSION}"
    if not (folder / "config.json").exists():
        build_tiny_ernie(folder, shape=shape, pretrain_steps=PRETRAIN_STEPS if shape == "tiny" else 0)
    return folder
