import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib import tiny_ernie
from course_lib.ernie import END_OF_TURN, OFFICIAL_CHAT_TEMPLATE, TRAINING_CHAT_TEMPLATE

ONE_TURN = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
TWO_TURNS = ONE_TURN + [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]


@pytest.fixture(scope="module")
def slice_in_memory():
    return tiny_ernie.make_tiny_ernie("tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(slice_in_memory):
    return slice_in_memory[1]


def test_chat_template_one_turn(tokenizer):
    text = tokenizer.apply_chat_template(ONE_TURN, tokenize=False)
    assert text == "<|begin_of_sentence|>User: Q\nAssistant: A<|end_of_sentence|>"


def test_chat_template_several_turns(tokenizer):
    text = tokenizer.apply_chat_template(TWO_TURNS, tokenize=False)
    assert text == ("<|begin_of_sentence|>User: Q\nAssistant: A<|end_of_sentence|>"
                    "User: Q2\nAssistant: A2<|end_of_sentence|>")


def test_generation_prompt_ends_with_assistant(tokenizer):
    text = tokenizer.apply_chat_template(ONE_TURN[:1], tokenize=False, add_generation_prompt=True)
    assert text == "<|begin_of_sentence|>User: Q\nAssistant: "


@pytest.mark.parametrize("messages", [ONE_TURN, TWO_TURNS, [{"role": "system", "content": "Be brief."}] + TWO_TURNS])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_template_renders_like_the_official_one(tokenizer, messages, add_generation_prompt):
    ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    official = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                             chat_template=OFFICIAL_CHAT_TEMPLATE)
    assert ours == official


def test_assistant_mask_covers_exactly_answers_and_end_token(tokenizer):
    out = tokenizer.apply_chat_template(TWO_TURNS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    # the trained tokens are the two answers, each closed by the end-of-turn token, and nothing else
    assert tokenizer.decode(trained) == f"A{END_OF_TURN}A2{END_OF_TURN}"
    untrained = tokenizer.decode([i for i, m in zip(ids, mask) if not m])
    assert untrained == "<|begin_of_sentence|>User: Q\nAssistant: User: Q2\nAssistant: "


def test_special_token_ids_match_ernie(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    for token in ("<|begin_of_sentence|>", END_OF_TURN):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1  # one token, never split


def test_tokenizer_encodes_any_text(tokenizer):
    text = "Lin 买了 3 个苹果, café ≥ 2½!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_architecture_is_ernie_family(slice_in_memory):
    model, _ = slice_in_memory
    config = model.config
    assert type(model).__name__ == "Ernie4_5ForCausalLM" and config.model_type == "ernie4_5"
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied embeddings
    assert config.rope_parameters["rope_theta"] == 500000.0
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.out_features == config.num_attention_heads * config.head_dim
    assert attention.k_proj.out_features == config.num_key_value_heads * config.head_dim


def test_slice_is_deterministic(slice_in_memory):
    again, _ = tiny_ernie.make_tiny_ernie("tiny", seed=0)
    other, _ = tiny_ernie.make_tiny_ernie("tiny", seed=1)
    first = slice_in_memory[0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(first["model.embed_tokens.weight"], other.state_dict()["model.embed_tokens.weight"])


def test_round_trip_from_disk_keeps_logits(slice_in_memory, tmp_path):
    model, tokenizer = slice_in_memory
    folder = tiny_ernie.build_tiny_ernie(tmp_path / "slice", seed=0)
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(ONE_TURN, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert reloaded_tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].equal(ids)
    assert reloaded_tokenizer.chat_template == TRAINING_CHAT_TEMPLATE
    with torch.no_grad():
        before, after = model.eval()(ids).logits, reloaded.eval()(ids).logits
    assert torch.equal(before, after)
    assert not list(tmp_path.glob(".slice-*"))  # no staging folder left behind


def test_unsloth_loads_the_slice_by_path(tmp_path):
    from unsloth import FastLanguageModel

    folder = tiny_ernie.build_tiny_ernie(tmp_path / "slice", seed=0)
    model, tokenizer = FastLanguageModel.from_pretrained(str(folder), max_seq_length=256, dtype=torch.float32,
                                                         load_in_4bit=False)
    assert type(model).__name__ == "Ernie4_5ForCausalLM"
    assert tokenizer.apply_chat_template(ONE_TURN, tokenize=False).startswith("<|begin_of_sentence|>User: Q")


def test_full_shape_matches_ernie_0_3b():
    from transformers import Ernie4_5ForCausalLM

    config = tiny_ernie.ernie_config("0.3b", vocab_size=0)  # the full shape keeps the real 103424 vocab
    with torch.device("meta"):
        model = Ernie4_5ForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    assert 355e6 < parameters < 365e6, parameters  # ERNIE-4.5-0.3B-PT: about 361M
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (103424, 1024, 18)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (16, 2, 128)


def test_pretraining_is_deterministic_and_lowers_the_loss():
    runs = []
    for _ in range(2):
        model, tokenizer = tiny_ernie.make_tiny_ernie("tiny", seed=0)
        runs.append(tiny_ernie.pretrain(model, tokenizer, steps=12))
    assert runs[0] == runs[1]
    assert runs[0][-1] < runs[0][0] - 1.0, runs[0]
