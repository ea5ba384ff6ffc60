"""The tiny ERNIE-4.5 stand-in: the real architecture and tokenizer design at toy size, for machines without
the Hub or a GPU.

A native `Ernie4_5ForCausalLM` (grouped-query attention, tied embeddings, rope theta 500000, special-token
ids 0/1/2 as in ERNIE-4.5-0.3B-PT) with a SentencePiece tokenizer trained here on the bundled word problems,
English and Chinese (ERNIE-4.5 is a Chinese-English model, so its stand-in reads both: every character of the
Chinese set is a piece of its own, not UTF-8 bytes), and wrapped exactly as transformers wraps ERNIE's (`convert_ernie4_5_tokenizer.py`: `LlamaTokenizer`,
`legacy=True`, no BOS, no prefix space, `<unk>` as padding, `<mask:N>` tokens). Like ERNIE's, it joins a
space to the word after it ("Assistant: If" -> ':', '▁If'), and its folder keeps `tokenizer.model`, which
llama.cpp's GGUF converter reads. It loads by path through AutoModelForCausalLM, AutoTokenizer and Unsloth's
FastLanguageModel, exactly like the Hub model.

Like the course's default, baidu/ERNIE-4.5-0.3B-PT (the post-trained chat model; the base model is
-Base-PT), it is a chat model: `ensure_tiny_ernie` pre-trains it on plain text of word problems (about
one in five of them Chinese), then
post-trains it briefly on ERNIE's chat format with short questions of other kinds, so before fine-tuning
it already answers after "Assistant:" and ends its turn with <|end_of_sentence|>, but knows nothing of
the course's worked solutions. None of the course's train or held-out questions, English or Chinese, is seen. Its
generation_config is the published one: it stops only at </s> and samples (top_p 0.8, temperature 0.8).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from course_lib.ernie import BEGIN, END_OF_TURN, IGNORE_INDEX, SPECIAL_TOKENS, TRAINING_CHAT_TEMPLATE
from course_lib.language import tr

TINY_SHAPE = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, initializer_range=0.1)
# ERNIE-4.5-0.3B-PT as published (transformers' Ernie4_5Config defaults): about 361M parameters.
FULL_SHAPE = dict(vocab_size=103424, hidden_size=1024, intermediate_size=3072, num_hidden_layers=18,
                  num_attention_heads=16, num_key_value_heads=2, head_dim=128, initializer_range=0.02)
# SentencePiece pieces, 256 of them the byte fallback. 1536 rather than 1024 since the ~300 Chinese characters
# took their place: English rows then cost about what they cost before Chinese was added (98.6 tokens a row
# against 100.7 at 1024 pieces of English alone), and Chinese 0.73 tokens a character (2.09 in bytes).
TOKENIZER_VOCAB = 1536
# ERNIE's tokenizer.model holds <mask:0>..<mask:3>; transformers' converter adds <mask:4>..<mask:7> on top.
MASKS_IN_MODEL = [f"<mask:{i}>" for i in range(4)]
MASKS_ADDED = [f"<mask:{i}>" for i in range(4, 8)]
# ERNIE-4.5-0.3B-PT's published generation_config.json: it stops only at </s> (id 2) and samples.
PUBLISHED_GENERATION = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, do_sample=True, top_p=0.8,
                            temperature=0.8)
PRETRAIN_STEPS = 200  # of 16 plain-text problems each
CHAT_STEPS = 100  # of 16 chat turns each (see chat_rows)
PRETRAIN_SEED = 99
PRETRAIN_CHINESE_ROWS = 1000  # Chinese problems beside 4,000 English ones in the pre-training pool
CHAT_SEED = 98
SLICE_VERSION = 4  # bump when anything above changes, so cached slices are rebuilt


def train_sentencepiece(texts: list[str], vocab_size: int = TOKENIZER_VOCAB) -> bytes:
    """A SentencePiece BPE model (the bytes of a tokenizer.model) trained on `texts`, the same bytes every time.

    Byte fallback: a character it never saw (an emoji, a Chinese character not in `texts`) becomes its UTF-8
    bytes, never <unk>. Digits are
    split one by one. No normalization and no dummy prefix, so the text is kept exactly as written, as
    transformers' ERNIE tokenizer (add_prefix_space=False) and llama.cpp read it.
    """
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, character_coverage=1.0, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False, max_sentence_length=1 << 16,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=SPECIAL_TOKENS[3:] + MASKS_IN_MODEL,
        num_threads=1, minloglevel=2)
    return model.getvalue()


def wrap_sentencepiece(folder: Path, chat_template: str = TRAINING_CHAT_TEMPLATE, model_max_length: int = 4096):
    """The tokenizer.model in `folder`, loaded as transformers' convert_ernie4_5_tokenizer.py loads ERNIE's."""
    from transformers import LlamaTokenizer

    tokenizer = LlamaTokenizer.from_pretrained(
        folder, pad_token="<unk>", cls_token=BEGIN, sep_token=END_OF_TURN, mask_token="<mask:1>",
        add_bos_token=False, add_prefix_space=False, legacy=True, chat_template=chat_template)
    tokenizer.add_tokens(MASKS_ADDED, special_tokens=True)
    tokenizer.model_max_length = model_max_length
    return tokenizer


def build_tokenizer(texts: list[str], vocab_size: int = TOKENIZER_VOCAB, folder: Path | None = None):
    """ERNIE's kind of tokenizer, trained on `texts`. Its tokenizer.model is written into `folder` (kept there,
    so that `tokenizer.save_vocabulary` can copy it on), or into a temporary folder when none is given."""
    model = train_sentencepiece(texts, vocab_size)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "tokenizer.model").write_bytes(model)
        return wrap_sentencepiece(Path(folder))
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "tokenizer.model").write_bytes(model)
        return wrap_sentencepiece(Path(scratch))


def ernie_config(shape: str, vocab_size: int):
    """`shape` is "tiny" (the CPU slice) or "0.3b" (the full ERNIE-4.5-0.3B shape)."""
    from transformers import Ernie4_5Config

    check_shape(shape)
    sizes = {"tiny": dict(TINY_SHAPE, vocab_size=vocab_size), "0.3b": FULL_SHAPE}[shape]
    # head_dim must be explicit: left out it stays 128 and a 128-wide slice gets 4x too-wide projections.
    return Ernie4_5Config(**sizes, max_position_embeddings=131072 if shape == "0.3b" else 4096,
                          rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, use_bias=False,
                          pad_token_id=0, bos_token_id=1, eos_token_id=2)


def check_shape(shape: str) -> None:
    if shape not in ("tiny", "0.3b"):
        raise ValueError(tr(f"unknown stand-in shape {shape!r}: use 'tiny' or '0.3b'",
                            f"未知的离线替身模型形状 {shape!r}：请用 'tiny' 或 '0.3b'"))


def tokenizer_texts() -> list[str]:
    """What the stand-in's tokenizer is trained on: the bundled English and Chinese training rows, chat-formatted."""
    from course_lib.data import TRAIN_SEED, TRAIN_SIZE, make_word_problems
    from course_lib.data_zh import ZH_TRAIN_SEED, ZH_TRAIN_SIZE, make_chinese_word_problems

    rows = make_word_problems(TRAIN_SIZE, TRAIN_SEED) + make_chinese_word_problems(ZH_TRAIN_SIZE, ZH_TRAIN_SEED)
    return [f"User: {row['question']}\nAssistant: {row['answer']}" for row in rows]


def make_tiny_ernie(shape: str = "tiny", seed: int = 0, tokenizer_folder: Path | None = None):
    """(model, tokenizer) in memory, the same for the same seed: the tokenizer is trained on the bundled
    training splits, English and Chinese (its tokenizer.model written to `tokenizer_folder` if given), the
    weights drawn from `seed`."""
    import torch
    from transformers import Ernie4_5ForCausalLM, GenerationConfig

    check_shape(shape)
    tokenizer = build_tokenizer(tokenizer_texts(), folder=tokenizer_folder)
    torch.manual_seed(seed)
    model = Ernie4_5ForCausalLM(ernie_config(shape, vocab_size=len(tokenizer)))
    model.generation_config = GenerationConfig(**PUBLISHED_GENERATION)
    return model, tokenizer


def chat_rows(n: int, seed: int) -> list[dict]:
    """`n` one-line questions and answers of kinds the course's data never asks (sums, products, minutes in
    hours, comparisons): what the stand-in's chat post-training teaches. Every answer starts with a word."""
    rng = random.Random(seed)
    kinds = [
        lambda a, b: (f"What is {a} plus {b}?", f"The sum of {a} and {b} is {a + b}."),
        lambda a, b: (f"What is {a} times {b}?", f"That is {a} × {b} = {a * b}."),
        lambda a, b: (f"How many minutes are there in {a} hours?", f"There are {a} × 60 = {a * 60} minutes."),
        lambda a, b: (f"Which number is larger, {a} or {a + b}?", f"The larger number is {a + b}."),
        lambda a, b: (f"What is {a + b} minus {b}?", f"Taking {b} from {a + b} leaves {a}."),
    ]
    return [dict(zip(("question", "answer"), rng.choice(kinds)(rng.randint(2, 99), rng.randint(1, 99))))
            for _ in range(n)]


def train_full(model, examples: list[tuple[list[int], list[int]]], steps: int, seed: int, batch_size: int = 16,
               lr: float = 3e-3) -> list[float]:
    """Full-parameter next-token training on (input_ids, labels) pairs, batches drawn from `seed`. Returns
    the loss of each step."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / warmup) * (1 - s / steps))
    losses = []
    model.train()
    for _ in range(steps):
        batch = [examples[i] for i in torch.randint(len(examples), (batch_size,), generator=generator).tolist()]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch])  # 0 = <unk>, ERNIE's pad
        labels = torch.tensor([labels + [IGNORE_INDEX] * (width - len(labels)) for _, labels in batch])
        attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def course_questions() -> set[str]:
    """The questions of the course's train and held-out splits, English and Chinese."""
    from course_lib.data import bundled_rows
    from course_lib.data_zh import bundled_chinese_rows

    return {row["question"] for split in ("train", "heldout") for load in (bundled_rows, bundled_chinese_rows)
            for row in load(split)}


def pretrain(model, tokenizer, steps: int = PRETRAIN_STEPS) -> list[float]:
    """Plain "question\\nanswer</s>" text (no chat format) of word problems from their own seed, English and
    Chinese, none of them a question of the course's train or held-out splits. Returns the loss of each step."""
    from course_lib.data import make_word_problems
    from course_lib.data_zh import make_chinese_word_problems

    taken = course_questions()
    pool = make_word_problems(4000, PRETRAIN_SEED) + make_chinese_word_problems(PRETRAIN_CHINESE_ROWS, PRETRAIN_SEED)
    rows = [row for row in pool if row["question"] not in taken]
    texts = [tokenizer(f"{row['question']}\n{row['answer']}", add_special_tokens=False)["input_ids"]
             + [tokenizer.eos_token_id] for row in rows]
    return train_full(model, [(ids, ids) for ids in texts], steps, seed=PRETRAIN_SEED)


def chat_post_train(model, tokenizer, steps: int = CHAT_STEPS) -> list[float]:
    """ERNIE's chat format on `chat_rows`, trained as TRL trains it (the chat template's assistant mask: the
    answer and <|end_of_sentence|>, nothing else). Returns the loss of each step."""
    examples = []
    for row in chat_rows(2000, CHAT_SEED):
        messages = [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True, chat_template=TRAINING_CHAT_TEMPLATE)
        ids = encoded["input_ids"]
        examples.append((ids, [t if keep else IGNORE_INDEX for t, keep in zip(ids, encoded["assistant_masks"])]))
    return train_full(model, examples, steps, seed=CHAT_SEED)


def build_tiny_ernie(folder: Path, shape: str = "tiny", seed: int = 0, pretrain_steps: int = 0,
                     chat_steps: int = 0) -> Path:
    """Save `make_tiny_ernie` (pre-trained for `pretrain_steps`, then chat-trained for `chat_steps`) into
    `folder`, atomically: a half-written folder is never left behind."""
    from course_lib.saving import atomic_folder

    with atomic_folder(folder, required=["config.json", "model.safetensors"]) as staging:
        model, tokenizer = make_tiny_ernie(shape, seed, tokenizer_folder=staging)
        if pretrain_steps:
            pretrain(model, tokenizer, steps=pretrain_steps)
        if chat_steps:
            chat_post_train(model, tokenizer, steps=chat_steps)
        tokenizer.save_pretrained(staging)  # tokenizer.json and its config; tokenizer.model is already there
        model.save_pretrained(staging)
    return Path(folder)


def ensure_tiny_ernie(shape: str = "tiny") -> Path:
    """The cached model in the work folder, built on first use: "tiny" is pre-trained and chat-trained
    (~30 s on 2 idle cores), "0.3b" keeps its random weights (only its shape, speed and memory are real)."""
    from course_lib.paths import work_dir

    check_shape(shape)
    name = {"tiny": "tiny-ernie-4.5", "0.3b": "random-ernie-4.5-0.3b"}[shape]
    folder = work_dir() / "models" / f"{name}-v{SLICE_VERSION}"
    if not (folder / "config.json").exists():
        trained = shape == "tiny"
        build_tiny_ernie(folder, shape=shape, pretrain_steps=PRETRAIN_STEPS if trained else 0,
                         chat_steps=CHAT_STEPS if trained else 0)
    return folder
