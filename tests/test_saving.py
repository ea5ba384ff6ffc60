"""course_lib.saving, and the merge it measures: Unsloth's save_pretrained_merged on the tiny slice must be
W + s·B·A rounded once to the stored dtype, and reproduce base + adapter's logits within the tolerance notebook 5
states; wrong merges must fail, and a rounding-sized fault must fail the weight check that the logits let through."""

import ast
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from course_lib.data import bundled_rows, to_messages
from course_lib.saving import (adapter_deltas, check_agreement, check_merged_weights, compare_logits,
                               describe_folder, folder_size, human_size, lora_scaling, read_safetensors,
                               rounding_bound, stored_dtypes)
from course_lib.tiny_ernie import ensure_tiny_ernie, make_tiny_ernie

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "en" / "05_merge_and_save.py"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def notebook_setting(name: str):
    """A constant of notebook 5's settings, read from its source: the tests hold the notebook to its word."""
    for node in ast.walk(ast.parse(NOTEBOOK.read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


LOGIT_TOLERANCE = notebook_setting("LOGIT_TOLERANCE")["fp32"]  # the tests run on the CPU, in fp32
MIN_TOP1_AGREEMENT = notebook_setting("MIN_TOP1_AGREEMENT")


def test_folder_size_counts_every_file_recursively(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.txt").write_bytes(b"y" * 234)
    (tmp_path / "sub" / "deeper" / "c").write_bytes(b"z" * 10)
    assert folder_size(tmp_path) == 1244
    assert folder_size(tmp_path / "sub" / "b.txt") == 234
    assert folder_size(tmp_path / "missing") == 0


def test_human_size_uses_powers_of_1024():
    assert [human_size(n) for n in (0, 617, 1536, 5 * 2**20, 3 * 2**30, 2**50)] == [
        "0 B", "617 B", "1.5 KB", "5.0 MB", "3.0 GB", "1048576.0 GB"]


def test_describe_folder_lists_files_largest_first_and_the_total(tmp_path):
    (tmp_path / "small.json").write_bytes(b"{}")
    (tmp_path / "weights.safetensors").write_bytes(b"w" * 3072)
    lines = describe_folder(tmp_path).splitlines()
    assert lines[0].split() == ["weights.safetensors", "3.0", "KB"]
    assert lines[1].split() == ["small.json", "2", "B"]
    assert lines[2] == f"2 files, 3.0 KB in {tmp_path}"


def test_stored_dtypes_reads_the_safetensors_headers(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.zeros(5, dtype=torch.float32)},
              tmp_path / "model-00001.safetensors", metadata={"format": "pt"})
    save_file({"c": torch.zeros(2, 2, dtype=torch.bfloat16)}, tmp_path / "model-00002.safetensors")
    assert stored_dtypes(tmp_path) == {"BF16": 16, "F32": 5}
    assert stored_dtypes(tmp_path / "missing") == {}


@pytest.fixture(scope="module")
def tiny():
    """A random-weight slice in memory (no pre-training: these tests need its shapes, not its skill)."""
    model, tokenizer = make_tiny_ernie("tiny", seed=0)
    return model.eval(), tokenizer


def conversations_batch(tokenizer, n: int = 8):
    texts = [tokenizer.apply_chat_template(to_messages(row)["messages"], tokenize=False)
             for row in bundled_rows("heldout")[:n]]
    return tokenizer(texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)


def test_a_model_agrees_with_itself_exactly(tiny):
    model, tokenizer = tiny
    batch = conversations_batch(tokenizer)
    assert (batch["attention_mask"] == 0).any(), "the batch should contain padding to leave out"
    result = compare_logits(model, model, batch["input_ids"], batch["attention_mask"])
    assert result["max_abs_diff"] == 0 and result["mean_abs_diff"] == 0
    assert result["top1_agreement"] == 100.0
    assert result["positions"] == int(batch["attention_mask"].sum())
    assert result["max_abs_logit"] > 0


def test_doubling_the_final_norm_doubles_every_logit(tiny):
    """lm_head is linear, so a final RMSNorm weight x2 gives logits x2: |a - 2a| = |a| everywhere, the same
    largest value as the scale, and the same top-1 token at every position."""
    import copy

    model, tokenizer = tiny
    doubled = copy.deepcopy(model)
    doubled.model.norm.weight.data *= 2
    batch = conversations_batch(tokenizer)
    result = compare_logits(model, doubled, batch["input_ids"], batch["attention_mask"])
    assert result["max_abs_diff"] == pytest.approx(result["max_abs_logit"], rel=1e-5)
    assert result["top1_agreement"] == 100.0


def test_a_perturbed_copy_differs_and_the_difference_is_measured(tiny):
    import copy

    model, tokenizer = tiny
    perturbed = copy.deepcopy(model)
    torch.manual_seed(0)
    weight = perturbed.model.layers[0].mlp.down_proj.weight
    weight.data += 0.5 * weight.std() * torch.randn_like(weight)
    batch = conversations_batch(tokenizer)
    result = compare_logits(model, perturbed, batch["input_ids"], batch["attention_mask"])
    assert 0 < result["mean_abs_diff"] < result["max_abs_diff"] < result["max_abs_logit"]
    assert result["top1_agreement"] < 100.0


def test_padding_positions_are_left_out(tiny):
    """Change only the ids under padding: nothing compared may change."""
    model, tokenizer = tiny
    batch = conversations_batch(tokenizer)
    noisy = batch["input_ids"].clone()
    noisy[batch["attention_mask"] == 0] = 7
    result = compare_logits(model, model, noisy, batch["attention_mask"])
    assert result["max_abs_diff"] == 0


def test_check_agreement_needs_both_conditions():
    close = {"max_abs_diff": 0.1, "mean_abs_diff": 0.01, "max_abs_logit": 10.0, "top1_agreement": 99.5,
             "positions": 1000}
    assert check_agreement(close, 0.03, 98.0)[0]
    assert not check_agreement({**close, "max_abs_diff": 0.31}, 0.03, 98.0)[0]
    assert not check_agreement({**close, "top1_agreement": 97.9}, 0.03, 98.0)[0]
    assert "1.00% of the largest |logit|" in check_agreement(close, 0.03, 98.0)[1]


# The merge itself, through Unsloth's CPU backend, on the pre-trained slice the notebooks use.

@pytest.fixture(scope="module")
def lora_model():
    """The pre-trained slice in fp32 with LoRA at the course's settings, and B set to random values: a fresh
    adapter has B = 0 and would make every merge look right."""
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(model_name=str(ensure_tiny_ernie("tiny")),
                                                         max_seq_length=1024, dtype=torch.float32, load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, lora_dropout=0.0,
                                             target_modules=TARGET_MODULES, random_state=3407)
    generator = torch.Generator().manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data = 0.05 * torch.randn(parameter.shape, generator=generator)
    FastLanguageModel.for_inference(model)
    return model, tokenizer


def test_merged_16bit_reloads_within_the_notebooks_tolerance(lora_model, tmp_path):
    model, tokenizer = lora_model
    model.save_pretrained_merged(str(tmp_path / "merged"), tokenizer, save_method="merged_16bit")
    on_disk = stored_dtypes(tmp_path / "merged")
    n_base = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
    assert set(on_disk) <= {"BF16", "F16"}, f"merged_16bit stored {on_disk}"
    assert sum(on_disk.values()) == n_base  # every base weight, once (the tied lm_head is not stored twice)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert not any("lora_" in name for name, _ in merged.named_modules())
    batch = conversations_batch(tokenizer)
    result = compare_logits(model, merged, batch["input_ids"], batch["attention_mask"])
    passed, why = check_agreement(result, LOGIT_TOLERANCE, MIN_TOP1_AGREEMENT)
    assert passed, why
    assert result["max_abs_diff"] > 0, "16-bit storage should round something; was the merge saved in fp32?"

    # The random B matters: the same merged model against the bare base is far outside the tolerance.
    with model.disable_adapter():
        without = compare_logits(model, merged, batch["input_ids"], batch["attention_mask"])
    assert not check_agreement(without, LOGIT_TOLERANCE, MIN_TOP1_AGREEMENT)[0]


def test_reloading_the_base_model_instead_fails_the_tolerance(lora_model):
    """The classic wrong merge: shipping the base weights. The proof must catch it."""
    model, tokenizer = lora_model
    base = AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny"), dtype=torch.float32)
    batch = conversations_batch(tokenizer)
    result = compare_logits(model, base, batch["input_ids"], batch["attention_mask"])
    passed, why = check_agreement(result, LOGIT_TOLERANCE, MIN_TOP1_AGREEMENT)
    assert not passed, why


def test_a_merge_with_the_wrong_scale_fails_the_tolerance(lora_model, saved_merge, tmp_path):
    """B A merged at alpha / r halved (a classic bug: alpha / r forgotten or applied twice) must fail both
    the logit and the weight check."""
    model, tokenizer = lora_model
    layers = [module for module in model.modules() if isinstance(getattr(module, "scaling", None), dict)]
    assert len(layers) == 14  # 7 projections x 2 blocks
    for layer in layers:
        layer.scaling["default"] /= 2
    try:
        model.save_pretrained_merged(str(tmp_path / "half"), tokenizer, save_method="merged_16bit")
    finally:
        for layer in layers:
            layer.scaling["default"] *= 2
    half = AutoModelForCausalLM.from_pretrained(tmp_path / "half", dtype=torch.float32)
    batch = conversations_batch(tokenizer)
    passed, why = check_agreement(compare_logits(model, half, batch["input_ids"], batch["attention_mask"]),
                                  LOGIT_TOLERANCE, MIN_TOP1_AGREEMENT)
    assert not passed, why
    check = check_merged_weights(read_safetensors(tmp_path / "half"), saved_merge[0], ensure_tiny_ernie("tiny"))
    assert not check.passed and len(check.problems) == 14 and check.untouched_equal == 6


def test_an_adapter_folder_loads_back_as_base_plus_adapter(lora_model, tmp_path):
    """What notebook 5 does first: FastLanguageModel.from_pretrained(adapter folder) loads the base named in
    adapter_config.json, then the adapter; the result computes exactly what the saved model computed."""
    from unsloth import FastLanguageModel

    model, tokenizer = lora_model
    model.save_pretrained(tmp_path / "lora-adapter")
    tokenizer.save_pretrained(tmp_path / "lora-adapter")
    assert folder_size(tmp_path / "lora-adapter") < folder_size(ensure_tiny_ernie("tiny"))
    loaded, _ = FastLanguageModel.from_pretrained(model_name=str(tmp_path / "lora-adapter"), max_seq_length=1024,
                                                  dtype=torch.float32, load_in_4bit=False)
    FastLanguageModel.for_inference(loaded)
    assert type(loaded).__name__ == "PeftModelForCausalLM"
    batch = conversations_batch(tokenizer)
    result = compare_logits(model, loaded, batch["input_ids"], batch["attention_mask"])
    assert result["max_abs_diff"] == 0 and result["top1_agreement"] == 100.0


# The weight check: the bound first, then the merge Unsloth wrote, then faults planted in it.

@pytest.mark.parametrize("dtype, bits, subnormal_half_step", [(torch.float16, 11, 2.0 ** -25),
                                                              (torch.bfloat16, 8, 2.0 ** -134)])
def test_rounding_bound_holds_and_is_tight(dtype, bits, subnormal_half_step):
    """Round fp32 values to nearest in `dtype` (normal, subnormal and zero): never farther than the bound, and
    some as far as 99% of it, so no smaller bound would do. Half of it is too small."""
    generator = torch.Generator().manual_seed(0)
    info = torch.finfo(dtype)
    exact = torch.cat([torch.randn(200_000, generator=generator) * 10.0 ** torch.randint(-3, 3, (200_000,), generator=generator),
                       torch.rand(20_000, generator=generator) * info.smallest_normal * 2, torch.zeros(10)])
    error = (exact.to(dtype).float() - exact).abs()
    bound = rounding_bound(exact, dtype)
    assert (error <= bound).all()
    assert (error / bound).max() > 0.99
    unit = 2.0 ** -bits
    assert rounding_bound(torch.tensor([0.0, 1.0], dtype=torch.float64), dtype).tolist() == [
        subnormal_half_step, unit + subnormal_half_step]
    assert not (error <= unit / 2 * exact.abs() + subnormal_half_step).all()


def test_lora_scaling_and_what_the_check_refuses():
    config = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "use_rslora": False, "rank_pattern": {},
              "alpha_pattern": {}, "use_dora": False, "fan_in_fan_out": False}
    assert lora_scaling(config) == 2.0
    assert lora_scaling({**config, "use_rslora": True}) == 8.0  # 32 / sqrt(16)
    with pytest.raises(ValueError, match="use_dora"):
        lora_scaling({**config, "use_dora": True})
    with pytest.raises(ValueError, match="rank_pattern"):
        lora_scaling({**config, "rank_pattern": {"q_proj": 8}})
    a, b = torch.zeros(4, 8), torch.zeros(8, 4)
    name = "base_model.model.model.layers.0.mlp.up_proj"
    assert adapter_deltas({f"{name}.lora_A.weight": a, f"{name}.lora_B.weight": b}).keys() == {
        "model.layers.0.mlp.up_proj.weight"}
    with pytest.raises(ValueError, match="only one of lora_A / lora_B"):
        adapter_deltas({f"{name}.lora_A.weight": a})
    with pytest.raises(ValueError, match="not a LoRA A or B matrix"):
        adapter_deltas({"base_model.model.lm_head.weight": a})


@pytest.fixture(scope="module")
def saved_merge(lora_model, tmp_path_factory):
    """(adapter folder, merged folder) as notebooks 4 and 5 write them, with Unsloth's own calls."""
    model, tokenizer = lora_model
    folder = tmp_path_factory.mktemp("merge")
    model.save_pretrained(folder / "adapter")
    model.save_pretrained_merged(str(folder / "merged"), tokenizer, save_method="merged_16bit")
    return folder / "adapter", folder / "merged"


def test_unsloths_merge_is_w_plus_s_ba_rounded_once(saved_merge):
    adapter, merged = saved_merge
    tensors = read_safetensors(merged)
    check = check_merged_weights(tensors, adapter, ensure_tiny_ernie("tiny"))
    assert check.passed, check.summary()
    assert len(check.adapted) == 14 and check.untouched_equal == len(tensors) - 14  # 7 projections x 2 blocks
    assert 0.5 < check.worst[2] <= 1  # the rounding reaches far into its bound: a real 16-bit save, not fp32


def nudge(tensor, bounds: float):
    """`tensor` scaled by 1 + bounds·2^-p in its own dtype: `bounds` times the rounding bound, relatively."""
    return (tensor.float() * (1 + bounds * torch.finfo(tensor.dtype).eps / 2)).to(tensor.dtype)


NUDGED = "model.layers.0.mlp.down_proj.weight"


def test_a_rounding_sized_fault_fails_the_weights_and_passes_the_logits(lora_model, saved_merge):
    """One merged matrix made 4 rounding bounds larger: the weight check must fail, while the logit check of
    notebook 5 lets it through. Both are measured on the same planted fault."""
    model, tokenizer = lora_model
    adapter, merged = saved_merge
    tensors = read_safetensors(merged)
    nudged = nudge(tensors[NUDGED], 4)
    check = check_merged_weights({**tensors, NUDGED: nudged}, adapter, ensure_tiny_ernie("tiny"))
    assert not check.passed and check.worst[0] == NUDGED and check.worst[2] > 3
    assert [problem.split(":")[0] for problem in check.problems] == [NUDGED]
    reloaded = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    with torch.no_grad():
        reloaded.get_parameter(NUDGED).copy_(nudged)
    batch = conversations_batch(tokenizer)
    passed, why = check_agreement(compare_logits(model, reloaded, batch["input_ids"], batch["attention_mask"]),
                                  LOGIT_TOLERANCE, MIN_TOP1_AGREEMENT)
    assert passed, why


def test_an_untouched_tensor_must_be_the_bases_bit_for_bit(saved_merge):
    adapter, merged = saved_merge
    tensors = read_safetensors(merged)
    name = "model.layers.1.post_attention_layernorm.weight"
    check = check_merged_weights({**tensors, name: nudge(tensors[name], 1.5)}, adapter, ensure_tiny_ernie("tiny"))
    assert not check.passed and check.problems[0].startswith(f"{name}: no adapter touches it")
    del tensors[name]
    check = check_merged_weights(tensors, adapter, ensure_tiny_ernie("tiny"))
    assert check.problems == [f"{name} is in the base model but not in the merged model"]


def test_a_tied_output_layer_may_be_stored_once_or_twice_but_must_be_the_embeddings(saved_merge):
    adapter, merged = saved_merge
    tensors = read_safetensors(merged)
    embeddings = tensors["model.embed_tokens.weight"]
    assert check_merged_weights({**tensors, "lm_head.weight": embeddings.clone()}, adapter,
                                ensure_tiny_ernie("tiny")).passed
    check = check_merged_weights({**tensors, "lm_head.weight": nudge(embeddings, 1.5)}, adapter, ensure_tiny_ernie("tiny"))
    assert check.problems == ["the merged model ties lm_head to the embeddings, yet stores two different matrices"]


@pytest.mark.parametrize("dtype, other", [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16)])
def test_peft_merge_rounded_once_passes_and_rounded_twice_fails(lora_model, tmp_path, dtype, other):
    """PEFT's merge_and_unload in fp32, cast to fp16 or bf16 (what Unsloth's CPU backend does, whichever the CPU
    supports): within the bound. Cast through the other 16-bit type first, the values are rounded twice, and
    the check says so, untouched tensors included."""
    import copy

    model, _ = lora_model
    merged = copy.deepcopy(model).merge_and_unload()
    once = {name: tensor.to(dtype) for name, tensor in merged.state_dict().items() if name != "lm_head.weight"}
    twice = {name: merged.state_dict()[name].to(other).to(dtype) for name in once}
    model.save_pretrained(tmp_path / "adapter")
    check = check_merged_weights(once, tmp_path / "adapter", ensure_tiny_ernie("tiny"))
    assert check.passed and check.worst[2] > 0.9  # some value uses 90% of its bound: no looser one would do
    check = check_merged_weights(twice, tmp_path / "adapter", ensure_tiny_ernie("tiny"))
    assert not check.passed and any("no adapter touches it" in problem for problem in check.problems)


def test_a_merge_from_bf16_weights_loaded_as_fp16_passes(lora_model, tmp_path):
    """A T4 loads ERNIE's bf16 weights as fp16 and may merge from those: a cast that is exact for normal numbers
    and rounds the subnormal ones, so some values are rounded twice there. The check allows exactly that, and
    nothing more: the same merge nudged by 4 bounds still fails."""
    from safetensors.torch import save_file

    model, _ = lora_model
    AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny"), dtype=torch.bfloat16).save_pretrained(tmp_path / "base")
    model.save_pretrained(tmp_path / "adapter")
    # A small update, as a short run trains: where W is subnormal in fp16, W + s·B·A often is too
    adapter = {name: tensor * 1e-4 if "lora_B" in name else tensor
               for name, tensor in read_safetensors(tmp_path / "adapter").items()}
    save_file(adapter, tmp_path / "adapter" / "adapter_model.safetensors", metadata={"format": "pt"})
    base, deltas = read_safetensors(tmp_path / "base"), adapter_deltas(adapter)
    exact = {name: base[name].float() + 2.0 * (b.float() @ a.float()) for name, (a, b) in deltas.items()}  # s = 32 / 16
    merged = {name: weight.to(torch.float16) for name, weight in base.items()}
    merged.update({name: (base[name].to(torch.float16).float() + 2.0 * (b.float() @ a.float())).to(torch.float16)
                   for name, (a, b) in deltas.items()})
    half_step = torch.finfo(torch.float16).smallest_normal * torch.finfo(torch.float16).eps / 2
    beyond_one_rounding = sum(int(((merged[name].float() - x).abs() > 2.0 ** -11 * x.abs() + half_step).sum())
                              for name, x in exact.items())
    assert beyond_one_rounding > 0, "no value of the slice is where fp16 rounds bf16: the test would show nothing"
    check = check_merged_weights(merged, tmp_path / "adapter", tmp_path / "base")
    assert check.passed, check.summary()
    assert not check_merged_weights({**merged, NUDGED: nudge(merged[NUDGED], 4)}, tmp_path / "adapter",
                                    tmp_path / "base").passed
