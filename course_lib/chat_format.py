"""ERNIE's chat format at both ends of fine-tuning: the prompt a model is asked with, and the format a saved
model carries so that it stops by itself and other programs render conversations as ERNIE's tokenizer does."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from course_lib.ernie import END_OF_TURN, OFFICIAL_CHAT_TEMPLATE
from course_lib.evaluation import stop_token_ids
from course_lib.language import tr


def generation_prompt(tokenizer, messages: list[dict]) -> str:
    """The text to give `generate`: `messages` in ERNIE's chat format, ending at "Assistant:".

    ERNIE's template ends a generation prompt with "Assistant: ", space included. Its SentencePiece tokenizer
    joins a space to the word after it: a whole conversation, tokenized as TRL tokenizes it for training,
    reads ':', '▁If', while the prompt alone ends in ':', '▁', a token the model was never trained to
    continue. Without the space, the prompt's tokens are exactly the trained conversation's tokens before
    the answer, and the model writes '▁If' itself.
    """
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt.removesuffix(" ")


@contextmanager
def saving_format(model, tokenizer):
    """Wrap the saves of a fine-tuned ERNIE (adapter or merged model) so that what is saved works elsewhere:

    - `model.generation_config.eos_token_id` is [</s>, <|end_of_sentence|>]. ERNIE's published
      generation_config stops only at </s>, but the course trains every answer to end with
      <|end_of_sentence|>: without this, `generate()` in plain transformers runs on to max_new_tokens.
    - the tokenizer's chat template is ERNIE's official one: the course's {% generation %} tags are for TRL's
      training only, and llama.cpp, Ollama and servers refuse them. Both render the same text.

    Both are put back when the block ends, so the model can go on training. Yields what it set, as one line.
    Raises FileNotFoundError when the tokenizer has no SentencePiece tokenizer.model on disk: transformers 5
    saves only tokenizer.json, and llama.cpp's GGUF converter needs tokenizer.model, so every saved folder
    keeps a copy (`tokenizer.save_vocabulary(folder)` writes it).
    """
    vocab_file = getattr(tokenizer, "vocab_file", None)
    if not vocab_file or not Path(vocab_file).is_file():
        raise FileNotFoundError(tr(
            f"this tokenizer ({tokenizer.name_or_path}) was loaded without its SentencePiece tokenizer.model, which "
            "GGUF conversion needs. Load it from a folder that has one (the Hub model, the course's stand-in, or a "
            "folder saved by the course, which copies it with tokenizer.save_vocabulary(folder)).",
            f"这个分词器（{tokenizer.name_or_path}）加载时没有带上它的 SentencePiece tokenizer.model，而 GGUF 转换需要它。"
            "请从有这个文件的文件夹加载（Hub 上的模型、课程的离线替身模型，或课程保存的文件夹：课程会用 "
            "tokenizer.save_vocabulary(folder) 复制它）。"))
    stops = stop_token_ids(tokenizer)
    if len(stops) != 2:
        raise ValueError(tr(f"the tokenizer has no {END_OF_TURN} token to stop at: is it ERNIE-4.5's?",
                            f"分词器没有可以停下的 {END_OF_TURN} token：它是 ERNIE-4.5 的分词器吗？"))
    before = model.generation_config.eos_token_id, tokenizer.chat_template
    model.generation_config.eos_token_id, tokenizer.chat_template = stops, OFFICIAL_CHAT_TEMPLATE
    try:
        tokens = ', '.join(tokenizer.convert_ids_to_tokens(stops))
        yield tr(f"saving format: generate() stops at ids {stops} ({tokens}); "
                 f"chat template: ERNIE's official one; tokenizer.model from {vocab_file}",
                 f"保存格式：generate() 在 id {stops}（{tokens}）处停下；对话模板：ERNIE 的官方模板；"
                 f"tokenizer.model 来自 {vocab_file}")
    finally:
        model.generation_config.eos_token_id, tokenizer.chat_template = before
