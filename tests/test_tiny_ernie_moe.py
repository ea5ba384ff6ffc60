"""The MoE stand-in: ERNIE-4.5-21B-A3B's architecture at toy size, and what the pinned PEFT, Unsloth (CPU backend)
and bitsandbytes do with its fused experts. These tests pin library behaviour the course teaches: when an
upgrade changes it, they fail and notebook 2's section 11 must be re-read."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib import models, tiny_ernie_moe
from course_lib.ernie import LORA_TARGETS
from course_lib.tiny_ernie import ensure_tiny_ernie
from course_lib.tiny_ernie_moe import EXPERT_PARAMETERS, PARTS, parameter_parts

ATTENTION = LORA_TARGETS[:4]
R = 4


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ensure_tiny_ernie("tiny"))


@pytest.fixture(scope="module")
def moe(tokenizer):
    return tiny_ernie_moe.make_tiny_ernie_moe(len(tokenizer), seed=0).eval()


@pytest.fixture(scope="module")
def batch(tokenizer):
    messages = [{"role": "user", "content": "Maya buys 3 pens at $2 each. How much does she pay?"},
                {"role": "assistant", "content": "3 x 2 = 6. She pays $6."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def test_layout_is_ernie_4_5_moe(moe):
    config = moe.config
    assert type(moe).__name__ == "Ernie4_5_MoeForCausalLM" and config.model_type == "ernie4_5_moe"
    dense, *sparse = moe.model.layers
    assert type(dense.mlp).__name__ == "Ernie4_5_MoeMLP"  # layer 0 dense, as moe_layer_start_index=1 in the 21B
    for layer in sparse:
        experts = layer.mlp.experts
        assert experts.gate_up_proj.shape == (8, 2 * 96, config.hidden_size)  # fused 3-D tensors, not nn.Linear
        assert experts.down_proj.shape == (8, config.hidden_size, 96)
        assert not any(isinstance(m, torch.nn.Linear) for m in experts.modules())
        assert layer.mlp.shared_experts.gate_proj.out_features == 2 * 96  # two shared experts, fused
        assert layer.mlp.gate.weight.abs().sum() > 0  # a random router, not transformers' all-zero start
    assert (config.moe_k, config.num_key_value_heads) == (2, 2)
    assert moe.lm_head.weight.data_ptr() == moe.model.embed_tokens.weight.data_ptr()  # tied, as in the 21B


def test_router_sends_tokens_to_different_experts(moe, batch):
    with torch.no_grad():
        hidden = moe.model.embed_tokens(batch)[0]
        _, _, chosen = moe.model.layers[1].mlp.gate(hidden)
    assert chosen.shape == (batch.shape[1], 2) and len(chosen.unique()) > 2


def test_parts_cover_every_parameter(moe):
    parts = parameter_parts(moe)
    assert list(parts) == list(PARTS) and all(parts[name] > 0 for name in PARTS)
    assert sum(parts.values()) == sum(p.numel() for p in moe.parameters())
    assert max(parts, key=parts.get) == "routed experts"  # as in the 21B, where they are 93% of it
    with pytest.raises(ValueError, match="lonely"):
        tiny_ernie_moe.part_of("lonely.weight")


def test_seven_names_under_peft_0_21_adapt_routed_experts_and_skip_shared_ones(moe):
    """PEFT 0.21 reads gate/up/down_proj on ERNIE-MoE as the routed experts' transformers-4 names: it moves them
    to target_parameters (gate_up_proj at rank 2r) and so no Linear gate/up/down_proj layer is adapted."""
    peft_model = get_peft_model(copy.deepcopy(moe), LoraConfig(r=R, lora_alpha=2 * R, target_modules=LORA_TARGETS))
    config = peft_model.peft_config["default"]
    assert set(config.target_modules) == set(ATTENTION)
    assert set(config.target_parameters) == {"gate_up_proj", "down_proj"}
    assert config.rank_pattern == {r".*\.gate_up_proj": 2 * R}
    trained = parameter_parts(peft_model, trainable_only=True)
    assert trained["shared experts"] == trained["dense MLP"] == 0
    hidden, inter, experts, layers = moe.config.hidden_size, 96, 8, 2
    routed = layers * experts * (2 * R * (hidden + 2 * inter) + R * (inter + hidden))
    assert trained["routed experts"] == routed


def explicit_peft(model):
    """Every part the seven names mean, named so that PEFT 0.21 rewrites none of them."""
    config = LoraConfig(r=R, lora_alpha=2 * R, target_modules=ATTENTION,
                        target_parameters=EXPERT_PARAMETERS + ["gate_proj.weight", "up_proj.weight", "down_proj.weight"])
    return get_peft_model(model, config)


def test_explicit_names_adapt_every_part_at_rank_r(moe):
    trained = parameter_parts(explicit_peft(copy.deepcopy(moe)), trainable_only=True)
    linear = {name: sum(R * (m.in_features + m.out_features) for n, m in moe.named_modules()
                        if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in LORA_TARGETS
                        and tiny_ernie_moe.part_of(n + ".weight") == name)
              for name in ("attention", "dense MLP", "shared experts")}
    assert {name: trained[name] for name in linear} == linear
    assert trained["routed experts"] == 2 * 8 * (R * (128 + 192) + R * (96 + 128))
    assert trained["router"] == trained["embeddings"] == trained["norms"] == 0


def test_trained_expert_adapters_merge_into_the_fused_tensors(moe, batch):
    model = explicit_peft(copy.deepcopy(moe))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(3):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    wrapper = model.base_model.model.model.layers[1].mlp.experts  # down_proj's wrapper around gate_up_proj's
    gate_up = wrapper.base_layer
    before = gate_up.get_base_layer().gate_up_proj.detach().clone()
    experts, out, inputs = before.shape
    a = gate_up.lora_A["default"].weight.reshape(experts, -1, inputs)  # PEFT stores r x experts rows
    b = gate_up.lora_B["default"].weight.reshape(out, -1, experts)
    assert b.abs().sum() > 0  # training moved B off its zero start
    by_hand = before + gate_up.scaling["default"] * torch.einsum("ore,eri->eoi", b, a)
    with torch.no_grad():
        adapted = model(input_ids=batch).logits
        merged = copy.deepcopy(model).merge_and_unload()
        merged_logits = merged(input_ids=batch).logits
    assert torch.allclose(merged.model.layers[1].mlp.experts.gate_up_proj, by_hand, atol=1e-6)
    assert not torch.allclose(by_hand, before, atol=1e-4)
    assert (adapted - merged_logits).abs().max() < 1e-4


def test_unsloth_cpu_4bit_leaves_the_fused_experts_unquantized(tmp_path):
    """bitsandbytes 4-bit through Unsloth's CPU backend quantizes nn.Linear weights only (on a GPU, Unsloth's
    loader also quantizes the experts: seen on an H200, see notebook 2)."""
    from unsloth import FastLanguageModel

    folder = tiny_ernie_moe.build_tiny_ernie_moe(tmp_path / "moe", pretrain_steps=0)
    model, _ = FastLanguageModel.from_pretrained(str(folder), max_seq_length=256, dtype=torch.float32,
                                                 load_in_4bit=True)
    kinds = {name: type(p).__name__ for name, p in model.named_parameters()}
    assert kinds["model.layers.1.self_attn.q_proj.weight"] == "Params4bit"
    assert kinds["model.layers.1.mlp.shared_experts.down_proj.weight"] == "Params4bit"
    assert kinds["model.layers.0.mlp.down_proj.weight"] == "Params4bit"
    for name in ("mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"):
        assert kinds[f"model.layers.1.{name}"] == "Parameter", name
    assert model.model.layers[1].mlp.experts.gate_up_proj.dtype == torch.float32


def test_built_folder_reloads_with_the_same_logits_and_the_dense_tokenizer(tmp_path, tokenizer, batch):
    folder = tiny_ernie_moe.build_tiny_ernie_moe(tmp_path / "moe", seed=0, pretrain_steps=0)
    assert [p.name for p in tmp_path.iterdir()] == ["moe"]  # the staging folder is gone
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    again = tiny_ernie_moe.make_tiny_ernie_moe(len(tokenizer), seed=0).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(batch).logits, again(batch).logits)
    copied = AutoTokenizer.from_pretrained(folder)
    assert copied.get_vocab() == tokenizer.get_vocab() and copied.chat_template == tokenizer.chat_template
    assert reloaded.generation_config.eos_token_id == AutoModelForCausalLM.from_pretrained(
        ensure_tiny_ernie("tiny")).generation_config.eos_token_id


def test_environment_choice_builds_a_pretrained_stand_in_once(monkeypatch, tokenizer, batch):
    monkeypatch.setenv(models.MODEL_ENV, "tiny-moe")
    choice = models.resolve_model()
    assert choice.source == "tiny-moe" and "MIXTURE-OF-EXPERTS" in choice.banner()
    stamp = (tiny_ernie_moe.ensure_tiny_ernie_moe() / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model().name_or_path == choice.name_or_path
    assert (tiny_ernie_moe.ensure_tiny_ernie_moe() / "model.safetensors").stat().st_mtime_ns == stamp
    trained = AutoModelForCausalLM.from_pretrained(choice.name_or_path, dtype=torch.float32).eval()
    untrained = tiny_ernie_moe.make_tiny_ernie_moe(len(tokenizer), seed=0).eval()
    with torch.no_grad():
        assert trained(batch, labels=batch).loss < untrained(batch, labels=batch).loss - 2  # it learned
