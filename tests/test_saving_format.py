"""What a saved fine-tuned ERNIE carries: it stops by itself, renders ERNIE's official template, keeps
tokenizer.model. The folders come from examples/finetune_ernie.py, the course pipeline in one file."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib import ernie
from course_lib.chat_format import generation_prompt, saving_format
from course_lib.tiny_ernie import ensure_tiny_ernie, make_tiny_ernie
from finetuned_standin import load_script, memorised_model

SYSTEM = [{"role": "system", "content": "Answer briefly."}]
ONE_TURN = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "The answer is 5."}]
SEVERAL = ONE_TURN + [{"role": "user", "content": "And 2 + 4?"}, {"role": "assistant", "content": "It is 6."}]
CONVERSATIONS = {"one turn": ONE_TURN, "system": SYSTEM + ONE_TURN, "several turns": SEVERAL,
                 "generation prompt": SEVERAL + [{"role": "user", "content": "And 2 + 5?"}]}


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    return memorised_model(tmp_path_factory.getbasetemp() / "memorised")


@pytest.fixture(scope="module", params=["adapter", "merged"])
def saved_folder(request, finetuned):
    return getattr(finetuned, request.param)


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_saved_template_renders_as_the_official_one(saved_folder, name):
    tokenizer = AutoTokenizer.from_pretrained(saved_folder)
    messages = CONVERSATIONS[name]
    prompt = name == "generation prompt"
    saved = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    official = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                             chat_template=ernie.OFFICIAL_CHAT_TEMPLATE)
    assert saved == official
    assert "{% generation" not in tokenizer.chat_template  # llama.cpp and servers refuse TRL's tags


def test_saved_generation_config_stops_at_both_ends(saved_folder):
    generation = json.loads((saved_folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [2, 4]  # </s>, <|end_of_sentence|>
    assert (generation["do_sample"], generation["top_p"], generation["temperature"]) == (True, 0.8, 0.8)


def test_saved_folder_keeps_the_tokenizer_model(saved_folder):
    assert (saved_folder / "tokenizer.model").read_bytes() == (ensure_tiny_ernie("tiny") / "tokenizer.model").read_bytes()
    assert AutoTokenizer.from_pretrained(saved_folder).vocab_file == str(saved_folder / "tokenizer.model")


def test_merged_model_stops_by_itself_in_plain_transformers(finetuned):
    """generate() with nothing but a length limit: the saved generation_config (sampling, top_p 0.8) decides."""
    model = AutoModelForCausalLM.from_pretrained(finetuned.merged)
    tokenizer = AutoTokenizer.from_pretrained(finetuned.merged)
    torch.manual_seed(0)
    for row in finetuned.rows:
        inputs = tokenizer(generation_prompt(tokenizer, [{"role": "user", "content": row["question"]}]),
                           return_tensors="pt", add_special_tokens=False)
        new = model.generate(**inputs, max_new_tokens=200)[0, inputs["input_ids"].shape[1]:].tolist()
        assert new[-1] == tokenizer.convert_tokens_to_ids(ernie.END_OF_TURN) and len(new) < 200, \
            tokenizer.decode(new)


def test_saving_format_refuses_a_tokenizer_without_its_sentencepiece_file():
    model, tokenizer = make_tiny_ernie("tiny", seed=0)  # its tokenizer.model was in a folder now deleted
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        with saving_format(model, tokenizer):
            pass
    assert model.generation_config.eos_token_id == 2  # nothing was changed


def test_saving_format_holds_for_the_saves_inside_it_only(tmp_path):
    model, tokenizer = make_tiny_ernie("tiny", seed=0, tokenizer_folder=tmp_path)
    with saving_format(model, tokenizer) as what:
        assert model.generation_config.eos_token_id == [2, 4]
        assert tokenizer.chat_template == ernie.OFFICIAL_CHAT_TEMPLATE
    assert "[2, 4] (</s>, <|end_of_sentence|>)" in what
    # afterwards the model trains as before: TRL's assistant_only_loss needs the {% generation %} markers
    assert model.generation_config.eos_token_id == 2 and tokenizer.chat_template == ernie.TRAINING_CHAT_TEMPLATE


def test_copy_out_script_carries_the_official_template():
    assert load_script().OFFICIAL_CHAT_TEMPLATE == ernie.OFFICIAL_CHAT_TEMPLATE


def test_a_tokenizer_without_its_sentencepiece_file_is_refused_in_chinese(monkeypatch):
    from types import SimpleNamespace

    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    with pytest.raises(FileNotFoundError, match=r"这个分词器（somewhere）.*tokenizer.model.*GGUF"):
        with saving_format(None, SimpleNamespace(name_or_path="somewhere", vocab_file=None)):
            pass
