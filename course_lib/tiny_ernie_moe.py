"""The tiny ERNIE-4.5 mixture-of-experts stand-in: ERNIE-4.5-21B-A3B's architecture at toy size.

A native `Ernie4_5_MoeForCausalLM` shaped like the real config (transformers' `Ernie4_5_MoeConfig` defaults are
ERNIE-4.5-21B-A3B's): layer 0 has a dense MLP, every later layer a mixture-of-experts block, where a router
sends each token to its top-k routed experts and two shared experts see every token. Its attention, tokenizer,
chat template and generation settings are the dense stand-in's (`course_lib.tiny_ernie`), so every notebook
runs on it unchanged.

In transformers 5 a layer's routed experts are two fused 3-D parameters, `mlp.experts.gate_up_proj`
(experts x 2*intermediate x hidden) and `mlp.experts.down_proj` (experts x hidden x intermediate), not
`nn.Linear` layers; the shared experts and the dense MLP are ordinary Linear layers named gate/up/down_proj.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from course_lib.language import tr

# Layer 0 dense, layers 1-2 MoE; 8 routed experts (the real model: 64), top-2 routing (real: top-6), two shared
# experts as in the real model. 96-wide experts keep the routed experts the largest part, as they are in the 21B.
TINY_MOE_SHAPE = dict(num_hidden_layers=3, moe_num_experts=8, moe_k=2, moe_num_shared_experts=2,
                      moe_intermediate_size=96, moe_layer_start_index=1)
# Config fields the MoE stand-in takes from the dense one, so both share attention, vocabulary and special ids.
DENSE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "head_dim", "initializer_range", "max_position_embeddings", "rope_parameters", "rms_norm_eps",
                "tie_word_embeddings", "use_bias", "pad_token_id", "bos_token_id", "eos_token_id")
PRETRAIN_STEPS = 60  # of 16 plain-text problems, as the dense stand-in's pre-training: loss 7.5 -> ~1.4
MOE_VERSION = 1  # bump when anything above changes, so cached stand-ins are rebuilt
# The parts of an ERNIE-4.5-MoE model, in the order the notebooks print them.
PARTS = ("embeddings", "attention", "dense MLP", "shared experts", "routed experts", "router", "norms")
# The routed experts' fused parameters, as PEFT's `target_parameters` names them.
EXPERT_PARAMETERS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


def moe_config(shape: str = "tiny", vocab_size: int | None = None):
    """`shape` is "tiny" (the dense stand-in's attention and vocabulary, TINY_MOE_SHAPE's experts) or "21b-a3b"
    (ERNIE-4.5-21B-A3B as published: transformers' defaults, 21.8B parameters)."""
    from transformers import Ernie4_5_MoeConfig

    from course_lib.tiny_ernie import ernie_config

    if shape == "21b-a3b":
        return Ernie4_5_MoeConfig()
    if shape != "tiny":
        raise ValueError(tr(f"unknown MoE shape {shape!r}: use 'tiny' or '21b-a3b'",
                            f"未知的 MoE 形状 {shape!r}：请用 'tiny' 或 '21b-a3b'"))
    if vocab_size is None:
        raise ValueError(tr("the tiny MoE needs vocab_size (the tokenizer's length)",
                            "微型 MoE 需要 vocab_size（分词器的长度）"))
    dense = ernie_config("tiny", vocab_size=vocab_size)
    return Ernie4_5_MoeConfig(**{name: getattr(dense, name) for name in DENSE_FIELDS}, **TINY_MOE_SHAPE)


def make_tiny_ernie_moe(vocab_size: int, seed: int = 0):
    """The MoE stand-in in memory with random weights drawn from `seed` (no tokenizer: pass its length)."""
    import torch
    from transformers import Ernie4_5_MoeForCausalLM

    torch.manual_seed(seed)
    model = Ernie4_5_MoeForCausalLM(moe_config("tiny", vocab_size))
    # transformers starts routers at zero, so every token would pick the same first k experts; a trained
    # router spreads tokens over experts, and so does a random one.
    with torch.no_grad():
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.weight.normal_(0.0, model.config.initializer_range)
    return model


def part_of(name: str) -> str:
    """Which of PARTS a parameter belongs to, from its name (also inside a PEFT model: lora_A/B count with the
    part they adapt)."""
    if "mlp.experts." in name:
        return "routed experts"
    if "shared_experts." in name:
        return "shared experts"
    if "mlp.gate." in name:  # the router (and its score-correction bias); mlp.gate_proj is the dense MLP
        return "router"
    if "self_attn." in name:
        return "attention"
    if "embed_tokens" in name or "lm_head" in name:
        return "embeddings"
    if ".mlp." in name:
        return "dense MLP"
    if "norm" in name:
        return "norms"
    raise ValueError(tr(f"parameter {name!r} is in none of {PARTS}", f"参数 {name!r} 不属于 {PARTS} 中的任何一部分"))


def parameter_parts(model, trainable_only: bool = False) -> dict[str, int]:
    """Parameters per part of an ERNIE-4.5 model (dense or MoE, on any device, `meta` too), in PARTS order.
    A tied lm_head is counted once, with the embeddings."""
    counts = dict.fromkeys(PARTS, 0)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad or not trainable_only:
            counts[part_of(name)] += parameter.numel()
    return counts


def build_tiny_ernie_moe(folder: Path, seed: int = 0, pretrain_steps: int = PRETRAIN_STEPS) -> Path:
    """Save the MoE stand-in into `folder`, with the dense stand-in's tokenizer files and generation config,
    pre-trained for `pretrain_steps`. Atomic: a half-written folder is never left behind."""
    from transformers import AutoTokenizer, GenerationConfig

    from course_lib.saving import atomic_folder
    from course_lib.tiny_ernie import ensure_tiny_ernie, pretrain

    dense = ensure_tiny_ernie("tiny")
    with atomic_folder(folder, required=["config.json", "model.safetensors"]) as staging:
        weights = {"config.json", "generation_config.json"}
        for file in dense.iterdir():  # tokenizer.json / tokenizer.model / chat template, whichever it has
            if file.is_file() and file.name not in weights and not file.name.endswith(".safetensors"):
                shutil.copy2(file, staging / file.name)
        tokenizer = AutoTokenizer.from_pretrained(staging)
        model = make_tiny_ernie_moe(len(tokenizer), seed)
        model.generation_config = GenerationConfig.from_pretrained(dense)
        if pretrain_steps:
            pretrain(model, tokenizer, steps=pretrain_steps)
        model.save_pretrained(staging)
    return Path(folder)


def ensure_tiny_ernie_moe() -> Path:
    """The cached, pre-trained MoE stand-in in the work folder, built on first use (after the dense stand-in,
    whose tokenizer it shares)."""
    from course_lib.paths import work_dir
    from course_lib.tiny_ernie import SLICE_VERSION

    # The dense stand-in's version is in the name: a new dense tokenizer means a new MoE stand-in.
    folder = work_dir() / "models" / f"tiny-ernie-4.5-moe-v{MOE_VERSION}.{SLICE_VERSION}"
    if not (folder / "config.json").exists():
        build_tiny_ernie_moe(folder)
    return folder
