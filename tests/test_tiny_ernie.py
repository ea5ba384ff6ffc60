import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib import tiny_ernie
from course_lib.chat_format import generation_prompt
from course_lib.data import bundled_rows, to_messages
from course_lib.ernie import BEGIN, END_OF_TURN, OFFICIAL_CHAT_TEMPLATE, TRAINING_CHAT_TEMPLATE
from course_lib.evaluation import stop_token_ids
from finetuned_standin import memorised_model

ONE_TURN = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
TWO_TURNS = ONE_TURN + [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]


@pytest.fixture(scope="module")
def slice_in_memory():
    return tiny_ernie.make_tiny_ernie("tiny", seed=0)


@pytest.fixture(scope="module")
def tokenizer(slice_in_memory):
    return slice_in_memory[1]


@pytest.fixture(scope="module")
def standin():
    """The cached stand-in the notebooks load: pre-trained, then chat-trained."""
    folder = tiny_ernie.ensure_tiny_ernie("tiny")
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


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


def test_tokenizer_is_wrapped_as_transformers_wraps_ernies(tokenizer):
    assert type(tokenizer).__name__ == "LlamaTokenizer" and tokenizer.legacy and not tokenizer.add_prefix_space
    assert (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 0, 1, 2)
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.mask_token) == (BEGIN, END_OF_TURN, "<mask:1>")
    assert tokenizer("Q")["input_ids"] == tokenizer("Q", add_special_tokens=False)["input_ids"]  # no BOS added
    for token in [BEGIN, END_OF_TURN] + [f"<mask:{i}>" for i in range(8)]:
        assert token in tokenizer.all_special_tokens or token in tokenizer.get_added_vocab(), token
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1  # one token, never split
    assert tokenizer.convert_tokens_to_ids([BEGIN, END_OF_TURN]) == [3, 4]


def test_space_joins_the_next_word_as_in_ernies_tokenizer(tokenizer):
    """What hid behind the old byte-level stand-in: SentencePiece puts a space at the start of the next piece."""
    assert tokenizer.tokenize("Assistant: If") == ["Assistant", ":", "▁If"]
    assert tokenizer.tokenize("Assistant: ") == ["Assistant", ":", "▁"]


def test_tokenizer_encodes_any_text(tokenizer):
    text = "Lin 买了 3 个苹果, café ≥ 2½ 🍎!"  # é, ≥, ½ and the emoji are in no training text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert any(token.startswith("<0x") for token in tokenizer.convert_ids_to_tokens(ids))  # byte fallback
    assert tokenizer.decode(ids) == text


def test_tokenizer_covers_the_chinese_set(tokenizer):
    """ERNIE-4.5 reads Chinese; so does its stand-in: every character of the Chinese word problems, held-out
    rows included, is a piece of its own (bytes would cost 3 tokens a character), and pieces join common pairs."""
    from course_lib.data_zh import bundled_chinese_rows

    texts = [f"{row['question']}\n{row['answer']}" for row in bundled_chinese_rows("heldout")]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    pieces = [piece for row in ids for piece in tokenizer.convert_ids_to_tokens(row)]
    assert not [piece for piece in pieces if piece.startswith("<0x")]  # no byte fallback
    per_character = sum(map(len, ids)) / sum(map(len, texts))
    assert per_character < 0.8, per_character  # measured 0.73 (2.09 when the tokenizer had seen no Chinese)
    assert [tokenizer.decode(row) for row in ids] == texts
    assert len(tokenizer("答案是", add_special_tokens=False)["input_ids"]) <= 2


def test_assistant_mask_covers_exactly_answers_and_end_token(tokenizer):
    out = tokenizer.apply_chat_template(TWO_TURNS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    runs = [ids[i:j] for i, j in _runs_of_ones(mask)]
    # each trained run is one answer with the space the tokenizer joined to it ('▁A'), closed by the end token
    assert [tokenizer.decode(run) for run in runs] == [f" A{END_OF_TURN}", f" A2{END_OF_TURN}"]
    assert [tokenizer.convert_ids_to_tokens(run)[0] for run in runs] == ["▁A", "▁A"]
    untrained = tokenizer.decode([i for i, m in zip(ids, mask) if not m])
    assert untrained == "<|begin_of_sentence|>User: Q\nAssistant:User: Q2\nAssistant:"


def _runs_of_ones(mask):
    starts = [i for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1])]
    ends = [i + 1 for i, m in enumerate(mask) if m and (i + 1 == len(mask) or not mask[i + 1])]
    return list(zip(starts, ends))


def test_generation_prompt_is_the_trained_prefix_of_every_training_conversation(tokenizer):
    """The tokens the model is asked with are exactly the tokens it was trained to continue, on all 2,000 rows;
    the template's own prompt (ending in "Assistant: ") never is: it ends in a lone '▁'."""
    fixed = template = 0
    for row in bundled_rows("train"):
        messages = to_messages(row)["messages"]
        trained = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        first_trained = trained["assistant_masks"].index(1)
        prompt = tokenizer(generation_prompt(tokenizer, messages[:1]), add_special_tokens=False)["input_ids"]
        fixed += prompt == trained["input_ids"][:first_trained]
        raw = tokenizer.apply_chat_template(messages[:1], tokenize=True, return_dict=True,
                                            add_generation_prompt=True)["input_ids"]
        template += raw == trained["input_ids"][:len(raw)]
    assert (fixed, template) == (2000, 0)


def test_greedy_generation_reproduces_a_memorised_answer(tmp_path_factory):
    """Trained by TRL on whole conversations, asked with generation_prompt: the model writes its answer back."""
    finetuned = memorised_model(tmp_path_factory.getbasetemp() / "memorised")
    model = AutoModelForCausalLM.from_pretrained(finetuned.merged, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(finetuned.merged)
    for row in finetuned.rows:
        prompt = generation_prompt(tokenizer, [{"role": "user", "content": row["question"]}])
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, max_new_tokens=120, do_sample=False, eos_token_id=stop_token_ids(tokenizer))
        assert tokenizer.decode(output[0, inputs["input_ids"].shape[1]:]) == f" {row['answer']}{END_OF_TURN}"


def test_generation_config_is_the_published_one(slice_in_memory):
    config = slice_in_memory[0].generation_config
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)  # stops only at </s>
    assert (config.do_sample, config.top_p, config.temperature) == (True, 0.8, 0.8)


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


def test_slice_is_deterministic(slice_in_memory, tmp_path):
    again, _ = tiny_ernie.make_tiny_ernie("tiny", seed=0, tokenizer_folder=tmp_path / "a")
    other, _ = tiny_ernie.make_tiny_ernie("tiny", seed=1, tokenizer_folder=tmp_path / "b")
    first = slice_in_memory[0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(first["model.embed_tokens.weight"], other.state_dict()["model.embed_tokens.weight"])
    assert (tmp_path / "a" / "tokenizer.model").read_bytes() == (tmp_path / "b" / "tokenizer.model").read_bytes()


def test_round_trip_from_disk_keeps_logits_and_tokenizer_model(slice_in_memory, tmp_path):
    model, tokenizer = slice_in_memory
    folder = tiny_ernie.build_tiny_ernie(tmp_path / "slice", seed=0)
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(ONE_TURN, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert reloaded_tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].equal(ids)
    assert reloaded_tokenizer.chat_template == TRAINING_CHAT_TEMPLATE
    assert reloaded_tokenizer.vocab_file == str(folder / "tokenizer.model")  # what GGUF conversion reads
    with torch.no_grad():
        before, after = model.eval()(ids).logits, reloaded.eval()(ids).logits
    assert torch.equal(before, after)
    assert [p.name for p in tmp_path.iterdir()] == ["slice"]  # no staging folder left behind


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


def test_chat_post_training_sees_none_of_the_course_questions():
    rows = tiny_ernie.chat_rows(2000, tiny_ernie.CHAT_SEED)
    assert not {row["question"] for row in rows} & tiny_ernie.course_questions()
    assert all(row["answer"][0].isalpha() for row in rows)  # so the space joins the answer's first word


def test_standin_is_a_chat_model_before_fine_tuning(standin):
    """Asked a question of the chat post-training's kind, it answers in that style and ends its turn itself."""
    model, tokenizer = standin
    prompt = generation_prompt(tokenizer, [{"role": "user", "content": "What is 41 plus 17?"}])
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=40, do_sample=False, eos_token_id=stop_token_ids(tokenizer))
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])
    assert answer.startswith(" The sum of ") and answer.endswith(END_OF_TURN), answer


def test_standin_folder_keeps_its_tokenizer_model_and_published_generation_config():
    import sentencepiece

    folder = tiny_ernie.ensure_tiny_ernie("tiny")
    model = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))  # what GGUF reads
    assert model.get_piece_size() == tiny_ernie.TOKENIZER_VOCAB and model.id_to_piece(4) == END_OF_TURN
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["do_sample"] is True


def test_offline_banner_names_the_model_the_standin_stands_for():
    from course_lib.ernie import DEFAULT_MODEL
    from course_lib.models import resolve_model

    assert f"stand-in for the chat model {DEFAULT_MODEL}" in resolve_model(mode="tiny").banner()
