"""The T4 budget estimator: it must reproduce the GPU runs its constants came from (bench/RESULTS.md), move the
right way when a slider moves, and warn when a run will not fit. Arithmetic, except the 21B's counts, which are
taken from the real config on PyTorch's meta device (shapes without weights)."""

import json
import re
from pathlib import Path

import pytest
import torch

from course_lib import budget
from course_lib.environment import Gpu

ROOT = Path(__file__).resolve().parent.parent
MEMORY_TOLERANCE = 0.25  # the two unpacked runs disagree with each other; the formula splits them at +-20%
TIME_TOLERANCE = 0.15


def run_estimate(run, **overrides):
    label, four_bit, packed, batch, max_length, accumulation, tokens, _, _ = run
    settings = dict(r=16, batch=batch, max_length=max_length, packing=packed, steps=30, precision="bf16",
                    load_in_4bit=four_bit, gpu="H200", accumulation=accumulation, example_tokens=tokens / batch)
    return budget.estimate(**{**settings, **overrides})


def test_measured_runs_are_the_ones_in_the_raw_results_file():
    """MEASURED_RUNS is copied from the benchmark's own output: check every number against it."""
    raw = [json.loads(line) for line in (ROOT / "bench/h200-2026-11-28/results.jsonl").read_text().splitlines()]
    unsloth = [r for r in raw if r["config"]["backend"] == "unsloth"]
    assert len(unsloth) == len(budget.MEASURED_RUNS) == 6
    for (label, four_bit, packed, batch, max_length, accumulation, tokens, gib, seconds), r in zip(
            budget.MEASURED_RUNS, unsloth):
        config = r["config"]
        assert (config["bits"] == 4, config["packing"], config["batch"], config["max_length"],
                config["accumulation"]) == (four_bit, packed, batch, max_length, accumulation), label
        assert tokens == pytest.approx(r["tokens_per_step"] / accumulation, rel=1e-3), label
        assert gib == pytest.approx(r["peak_reserved_gib"], abs=0.001), label
        assert seconds == pytest.approx(r["seconds_per_step"], abs=0.001), label


@pytest.mark.parametrize("run", budget.MEASURED_RUNS, ids=lambda run: run[0])
def test_formula_reproduces_each_measured_run(run):
    est = run_estimate(run)
    measured_gib, measured_step = run[7], run[8]
    assert est.reserved_gib == pytest.approx(measured_gib, rel=MEMORY_TOLERANCE)
    step = (est.seconds - budget.WARMUP_S) / est.steps
    assert step == pytest.approx(measured_step, rel=TIME_TOLERANCE)


def test_the_course_default_is_reproduced_closely():
    """The packed runs fix the formula's slope and intercept, so the course default must come out almost exact."""
    est = budget.estimate(precision="bf16", gpu="H200", steps=60)
    assert est.reserved_gib == pytest.approx(2.795, rel=0.02)
    assert est.peak_gib == pytest.approx(est.reserved_gib + budget.CUDA_CONTEXT_GIB)
    assert est.tokens_per_micro_batch == pytest.approx(7785, rel=0.01)
    assert est.seconds == pytest.approx(budget.WARMUP_S + 60 * 0.164, rel=0.02)


@pytest.mark.parametrize("packing", [True, False])
def test_memory_grows_with_batch_and_rank(packing):
    by_batch = [budget.estimate(batch=b, packing=packing).peak_gib for b in (1, 2, 4, 8, 16, 32)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == len(by_batch)
    by_rank = [budget.estimate(r=r, packing=packing).peak_gib for r in (4, 8, 16, 32, 64, 128)]
    assert by_rank == sorted(by_rank) and len(set(by_rank)) == len(by_rank)


def test_memory_grows_with_max_length():
    packed = [budget.estimate(max_length=n).peak_gib for n in (256, 512, 1024, 2048, 4096)]
    assert packed == sorted(packed) and len(set(packed)) == len(packed)
    # unpacked, an example is as long as it is: max_length only matters once it cuts the examples
    unpacked = [budget.estimate(max_length=n, packing=False).peak_gib for n in (64, 128, 256, 1024, 4096)]
    assert unpacked == sorted(unpacked)
    assert unpacked[0] < unpacked[2] and unpacked[2] == unpacked[-1]


def test_time_grows_with_steps_and_tokens_and_a_t4_is_slower():
    assert budget.estimate(steps=120).seconds > budget.estimate(steps=60).seconds
    assert budget.estimate(batch=16).seconds > budget.estimate(batch=8).seconds
    t4, h200 = budget.estimate(gpu="T4"), budget.estimate(gpu="H200")
    # 65 / 989 TFLOPS: a step takes ~15x longer on a T4; the one-off compilation is the same
    assert t4.seconds - budget.WARMUP_S > 10 * (h200.seconds - budget.WARMUP_S)
    assert any("not measured" in note for note in t4.notes)


def test_four_bit_is_smaller_than_16_bit_at_0_3b():
    sixteen, four = budget.estimate(load_in_4bit=False), budget.estimate(load_in_4bit=True)
    assert four.weights_gib < sixteen.weights_gib / 2
    assert four.reserved_gib < sixteen.reserved_gib
    assert four.seconds > sixteen.seconds  # dequantizing costs time (measured 5% on the H200)


LARGE = "baidu/ERNIE-4.5-21B-A3B-PT"


def test_21b_counts_are_the_real_configs():
    """SHAPES["21b-a3b"] against ERNIE-4.5-21B-A3B built from transformers' config on the meta device, and the LoRA
    count against PEFT with every part named (what Unsloth's GPU get_peft_model made of the seven names)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Ernie4_5_MoeForCausalLM

    from course_lib.tiny_ernie_moe import EXPERT_PARAMETERS, moe_config, parameter_parts

    config = moe_config("21b-a3b")
    with torch.device("meta"):
        model = Ernie4_5_MoeForCausalLM(config)
    parts = parameter_parts(model)
    shape = budget.SHAPES["21b-a3b"]
    assert sum(parts.values()) == shape.params == 21_825_437_888
    assert parts["embeddings"] == shape.embedding_params and parts["routed experts"] == shape.expert_params
    idle = parts["routed experts"] * (1 - config.moe_k / config.moe_num_experts)
    assert shape.active_params == pytest.approx(shape.params - idle, rel=0.001)
    lora = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            target_parameters=EXPERT_PARAMETERS + ["gate_proj.weight", "up_proj.weight",
                                                                                   "down_proj.weight"]),
                          low_cpu_mem_usage=True)
    assert lora.get_nb_trainable_parameters()[0] == 16 * shape.lora_params_per_rank


def test_the_21b_model_does_not_fit_a_t4_in_16_bit():
    est = budget.estimate(model=LARGE, precision="fp16")
    assert est.weights_gib > 40 and not est.fits(budget.T4_GIB)
    assert "weights alone" in budget.warning(est) and "4-bit" in budget.warning(est)


def test_the_21b_model_in_4_bit_at_the_course_default_does_not_fit_either():
    est = budget.estimate(model=LARGE, load_in_4bit=True)
    assert 10 < est.weights_gib < 12  # 21.8B parameters at ~0.52 byte, the embeddings in 16-bit
    assert est.lora_gib > 2.5  # r=16 on every part, the routed experts included: 284M parameters
    assert not est.fits(budget.T4_GIB)
    assert "will NOT fit" in budget.warning(est)
    assert any("never measured" in note for note in est.notes)
    assert "never measured" in budget.budget_readout(model=LARGE, load_in_4bit=True)


@pytest.mark.parametrize("gpu, fits", [("T4", False), ("L4", True), ("A100", True), ("A100-80GB", True)])
def test_21b_verdicts_with_4_bit_experts(gpu, fits):
    """QLoRA as Unsloth runs it on a GPU (experts in 4-bit), the seven names, one packed row of 1,024 tokens."""
    assert budget.estimate(model=LARGE, load_in_4bit=True, batch=1, gpu=gpu).fits() is fits


def test_21b_on_a_t4_only_with_attention_only_lora():
    """Without the routed experts' 269M LoRA parameters the 4-bit 21B leaves a T4 some room."""
    est = budget.estimate(model=LARGE, load_in_4bit=True, batch=1, trainable_params=16 * 458_752)
    assert est.fits(headroom=budget.HEADROOM) and 12 < est.peak_gib < 14


@pytest.mark.parametrize("gpu, fits", [("T4", False), ("L4", False), ("A100", False), ("A100-80GB", True)])
def test_21b_verdicts_with_16_bit_experts(gpu, fits):
    """4-bit loading that skips the fused experts (plain transformers + bitsandbytes) keeps 20.4B weights in 16-bit."""
    est = budget.estimate(model=LARGE, load_in_4bit=True, experts_4bit=False, batch=1, gpu=gpu, precision="bf16")
    assert est.weights_gib > 38 and est.fits() is fits
    assert "16-bit experts" in est.settings and any("16-bit, as plain" in note for note in est.notes)


def test_warning_says_nothing_when_the_run_fits_comfortably():
    est = budget.estimate()
    assert est.fits() and est.fits(headroom=budget.HEADROOM)
    assert budget.warning(est) == ""


def test_warning_when_the_run_will_not_fit_or_leaves_under_10_percent():
    too_big = budget.estimate(batch=64)
    assert not too_big.fits() and "will NOT fit" in budget.warning(too_big)
    tight = budget.estimate(batch=56)
    assert tight.fits() and not tight.fits(headroom=0.10)
    assert budget.warning(tight).startswith("tight")


def test_warning_about_bf16_on_a_t4():
    assert "no bf16" in budget.warning(budget.estimate(precision="bf16"), precision="bf16")
    assert budget.warning(budget.estimate(gpu="H200", precision="bf16"), precision="bf16") == ""


def test_fits_takes_any_gpu_size():
    est = budget.estimate()
    assert est.fits(est.peak_gib + 0.01) and not est.fits(est.peak_gib - 0.01)


def test_one_line_summary_names_model_settings_gpu_and_that_it_is_an_estimate():
    text = str(budget.estimate())
    assert "\n" not in text
    for word in ("ERNIE-4.5-0.3B", "r=16", "8 x 1024 packed", "fp16", "Tesla T4", "60 steps", "estimate"):
        assert word in text


def test_the_current_gpu_is_used_when_known():
    card = Gpu("NVIDIA A100-SXM4-40GB", (8, 0), 39.4)
    est = budget.estimate(gpu=card, precision="bf16")
    assert est.gpu == card.name and est.gpu_gib == 39.4 and est.seconds is not None
    unknown = budget.estimate(gpu=Gpu("Some Future GPU", (12, 0), 200.0))
    assert unknown.seconds is None and "time unknown" in str(unknown)


def test_readout_for_a_slider():
    line = budget.budget_readout(r=16, batch=8, max_length=1024, packing=True, steps=60)
    assert "T4" in line and "not measured on a T4" in line and "Warning" not in line
    alarm = budget.budget_readout(batch=64)
    assert "<span" in alarm and "will NOT fit" in alarm
    plain = budget.budget_readout(as_html=False, batch=64)
    assert "<" not in plain and "WARNING: will NOT fit" in plain
    here = budget.budget_readout(current=Gpu("NVIDIA H200", (9, 0), 139.8))
    assert "this NVIDIA H200" in here
    assert "this" not in budget.budget_readout(current=Gpu("Tesla T4", (7, 5), 14.7))


def test_bad_settings_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="0.3b, 21b-a3b"):
        budget.estimate(model="meta-llama/Llama-3-8B")
    with pytest.raises(ValueError, match="batch = 0"):
        budget.estimate(batch=0)
    with pytest.raises(ValueError, match="T4"):
        budget.estimate(gpu="V100")
    with pytest.raises(ValueError, match="fp8"):
        budget.estimate(precision="fp8")


def test_in_chinese_the_warnings_name_the_same_numbers_and_fixes(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    too_big, tight = budget.estimate(batch=64), budget.estimate(batch=56)
    english = budget.warning(too_big), budget.warning(tight)
    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    assert budget.warning(too_big).startswith("放不下：约需 ") and "显存" in budget.warning(too_big)
    assert budget.warning(tight).startswith("很紧：")
    for en, zh in zip(english, (budget.warning(too_big), budget.warning(tight))):
        numbers = r"\d+(?:\.\d+)?%?"
        assert re.findall(numbers, en) == re.findall(numbers, zh)  # the same values, in the same order
        assert "max_length" in zh
    assert "不支持 bf16" in budget.warning(budget.estimate(precision="bf16"), precision="bf16")
    assert str(budget.estimate()).endswith("（估算）")
