"""The doctor: each check on its own, with the values a learner's run would give it, then `doctor` on a real
TRL trainer built on the tiny ERNIE slice, and the import-order check in a fresh Python that gets it wrong."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import doctor as dr
from course_lib.ernie import OFFICIAL_CHAT_TEMPLATE, TRAINING_CHAT_TEMPLATE

ROOT = Path(__file__).resolve().parent.parent


# ---- one check at a time, on plain values ------------------------------------------------------------------------

def test_no_gpu_runtime_on_colab_says_how_to_select_one():
    (problem,) = dr.check_gpu_runtime(in_colab=True, cuda_available=False)
    assert "Runtime → Change runtime type → T4 GPU" in problem.fix
    assert dr.check_gpu_runtime(in_colab=True, cuda_available=True) == []
    assert dr.check_gpu_runtime(in_colab=False, cuda_available=False) == []  # a CPU machine is a supported path


@pytest.mark.parametrize("capability, bf16, fp16, words", [
    ((7, 5), True, False, "compute capability 7.5"),  # a T4 asked for bf16
    (None, True, False, "no GPU"),
    (None, False, True, "no GPU"),
    ((8, 0), True, True, "together"),
])
def test_precision_the_machine_cannot_run(capability, bf16, fp16, words):
    (problem,) = dr.check_precision(capability, bf16, fp16)
    assert words in problem.what and "fp16" in problem.fix


@pytest.mark.parametrize("capability, bf16, fp16", [((7, 5), False, True), ((8, 0), True, False), ((9, 0), False, True),
                                                    (None, False, False)])
def test_precision_the_machine_can_run(capability, bf16, fp16):
    assert dr.check_precision(capability, bf16, fp16) == []


def test_precision_must_match_the_dtype_the_model_was_loaded_in():
    (problem,) = dr.check_precision((8, 0), bf16=True, fp16=False, model_dtype="torch.float16")
    assert "loaded in float16" in problem.what
    (problem,) = dr.check_precision((8, 0), bf16=False, fp16=True, model_dtype="bfloat16")
    assert "loaded in bfloat16" in problem.what
    assert dr.check_precision((7, 5), bf16=False, fp16=True, model_dtype="float16") == []


def test_old_trainer_arguments_are_named_with_their_new_place():
    problems = dr.check_trainer_kwargs({"model": 1, "tokenizer": 2, "max_seq_length": 512, "packing": True,
                                        "dataset_text_field": "text", "args": 3})
    fixes = " ".join(p.fix for p in problems)
    assert len(problems) == 4
    assert "processing_class=tokenizer" in fixes and "SFTConfig as max_length" in fixes
    assert "SFTConfig as packing" in fixes and "SFTConfig as dataset_text_field" in fixes
    assert dr.check_trainer_kwargs(["model", "args", "train_dataset", "processing_class"]) == []


def test_old_config_arguments_are_renamed():
    problems = dr.check_config_kwargs(["max_seq_length", "evaluation_strategy", "max_length", "packing"])
    assert [p.fix for p in problems] == ["SFTConfig(max_length=...)", "SFTConfig(eval_strategy=...)"]


def test_out_of_memory_advice_comes_in_order():
    steps = dr.oom_advice(batch=8, accumulation=1, max_length=1024, r=16, load_in_4bit=False,
                          gradient_checkpointing=False)
    assert steps[0].startswith("per_device_train_batch_size 8 -> 4 and gradient_accumulation_steps 1 -> 2")
    assert "effective batch stays 8" in steps[0]
    assert steps[1].startswith("max_length 1024 -> 512")
    assert steps[2].startswith("LoRA r 16 -> 8")
    assert steps[3].startswith("load_in_4bit=True")
    assert "gradient_checkpointing" in steps[4] and "Restart session" in steps[5]


def test_out_of_memory_advice_skips_what_is_already_low():
    steps = dr.oom_advice(batch=1, accumulation=8, max_length=128, r=4, load_in_4bit=True, gradient_checkpointing=True)
    assert len(steps) == 1 and "Restart session" in steps[0]
    assert dr.oom_advice()[0].startswith("halve per_device_train_batch_size")  # nothing known: still batch first


def test_a_real_torch_out_of_memory_error_is_recognised():
    import torch

    error = torch.OutOfMemoryError("Tried to allocate 2.00 GiB")  # the type alone must be enough
    assert dr.is_out_of_memory(error)
    (problem,) = dr.check_error(error, {"batch": 16, "accumulation": 1, "max_length": 1024, "r": 16})
    assert "(1) per_device_train_batch_size 16 -> 8" in problem.fix and "(2) max_length 1024 -> 512" in problem.fix
    assert dr.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not dr.is_out_of_memory(ValueError("something else"))


def test_a_real_sft_config_error_gets_its_fix(tmp_path):
    from trl import SFTConfig

    with pytest.raises(TypeError) as raised:
        SFTConfig(output_dir=str(tmp_path), evaluation_strategy="steps", use_cpu=True)
    (problem,) = dr.check_error(raised.value)
    assert problem.fix == "SFTConfig(eval_strategy=...)"


def test_error_messages_the_doctor_knows():
    trainer_error = TypeError("SFTTrainer.__init__() got an unexpected keyword argument 'max_seq_length'")
    assert "SFTConfig as max_length" in dr.check_error(trainer_error)[0].fix
    template_error = ValueError("The chat template is not training-compatible (missing prefix-preservation or "
                                "{% generation %} markers) and patching is not supported for this template.")
    assert "TRAINING_CHAT_TEMPLATE" in dr.check_error(template_error)[0].fix
    assert dr.check_error(ValueError("Your setup doesn't support bf16/gpu."))[0].check == "precision"
    assert dr.check_error(KeyError("messages")) == []


def test_todays_trl_has_the_names_the_fixes_point_to():
    """Guards the tables against TRL drifting: every fix names a real SFTConfig field or SFTTrainer parameter,
    and no old name is one. (Unsloth subclasses TRL's classes with `*args, **kwargs` signatures; the TRL classes
    are read from their MRO.)"""
    import dataclasses
    import inspect

    from trl import SFTConfig, SFTTrainer

    trl_config = next(c for c in SFTConfig.__mro__ if c.__name__ == "SFTConfig" and c.__module__.startswith("trl."))
    fields = {f.name for f in dataclasses.fields(trl_config)}
    trainer_parameters = next(set(parameters) for klass in SFTTrainer.__mro__ if "__init__" in vars(klass)
                              for parameters in [inspect.signature(klass.__init__).parameters]
                              if not any(p.kind is p.VAR_POSITIONAL for p in parameters.values()))
    assert set(dr.TRAINER_TO_CONFIG.values()) | set(dr.CONFIG_RENAMED.values()) <= fields
    assert set(dr.TRAINER_RENAMED.values()) <= trainer_parameters
    assert not set(dr.CONFIG_RENAMED) & fields
    assert not (set(dr.TRAINER_RENAMED) | set(dr.TRAINER_TO_CONFIG)) & trainer_parameters


def test_import_order_from_a_list_of_module_names():
    assert dr.check_import_order(["sys", "unsloth", "unsloth_zoo", "transformers", "trl", "peft"]) == []
    (problem,) = dr.check_import_order(["sys", "transformers", "peft", "unsloth", "trl"])
    assert "transformers, peft imported before unsloth" in problem.what and "Restart session" in problem.fix
    (problem,) = dr.check_import_order(["sys", "trl"])
    assert "never imported" in problem.what
    assert dr.check_import_order(["sys", "json"]) == []


def test_import_order_of_this_process_is_right():
    """conftest.py imports unsloth first, as every notebook does."""
    assert "unsloth" in sys.modules
    assert dr.check_import_order() == []


def test_import_order_in_a_python_that_imports_transformers_first():
    code = ("import transformers\nimport unsloth\nfrom course_lib.doctor import check_import_order\n"
            "print('CHECKS', [p.check for p in check_import_order()])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CHECKS ['import order']" in result.stdout


# ---- doctor(), on a real trainer --------------------------------------------------------------------------------

def sft_config(tmp_path, **overrides):
    from trl import SFTConfig

    settings = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, learning_rate=2e-4,
                    logging_steps=1, save_strategy="no", max_length=256, packing=False, assistant_only_loss=True,
                    bf16=False, fp16=False, use_cpu=True, seed=3407, report_to="none", disable_tqdm=True)
    return SFTConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """Notebook 4's trainer at toy size: the tiny slice, LoRA r=8, assistant-only loss, fp32 on the CPU."""
    import datasets
    from peft import LoraConfig, get_peft_model
    from trl import SFTTrainer

    from course_lib.data import bundled_rows, to_messages
    from course_lib.tiny_ernie import make_tiny_ernie

    model, tokenizer = make_tiny_ernie("tiny", seed=0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    rows = datasets.Dataset.from_list([to_messages(row) for row in bundled_rows("train")[:16]])
    return SFTTrainer(model=model, processing_class=tokenizer, train_dataset=rows,
                      args=sft_config(tmp_path_factory.mktemp("doctor")))


@pytest.fixture(autouse=True)
def no_forced_precision(monkeypatch):
    from course_lib.environment import PRECISION_ENV

    monkeypatch.delenv(PRECISION_ENV, raising=False)


def test_doctor_finds_nothing_wrong_with_the_course_setup(trainer, capsys):
    problems = dr.doctor(trainer=trainer, capability=None, in_colab=False)
    out = capsys.readouterr().out
    assert problems == [], out
    assert "no problems found" in out and "labels" in out and "chat template" in out


def test_doctor_reads_settings_from_the_trainer_for_out_of_memory_advice(trainer, capsys):
    import torch

    (problem,) = dr.doctor(trainer=trainer, error=torch.OutOfMemoryError("Tried to allocate 1.00 GiB"),
                           capability=None, in_colab=False)
    assert "per_device_train_batch_size 4 -> 2" in problem.fix  # the trainer's batch
    assert "max_length 256 -> 128" in problem.fix and "LoRA r 8 -> 4" in problem.fix  # SFTConfig's and PEFT's
    assert "[out of memory]" in capsys.readouterr().out


def test_doctor_on_bf16_training_arguments_for_a_t4(tmp_path, capsys):
    args = sft_config(tmp_path)
    # What a learner's SFTConfig(bf16=True) holds on a T4. Set after construction: on a CPU, Unsloth's backend
    # rewrites bf16=True to False at construction when the processor has no bf16 (AVX2-only machines), so
    # SFTConfig(bf16=True) would hold True on one CI machine and False on the next.
    args.bf16 = True
    (problem,) = dr.doctor(training_args=args, capability=(7, 5), in_colab=True)
    assert problem.check == "precision" and "7.5" in problem.what
    (problem,) = dr.doctor(training_args=args, capability=None, in_colab=False, show=False)
    assert "no GPU" in problem.what


def test_doctor_on_a_tokenizer_without_markers(trainer, tmp_path):
    tokenizer = trainer.processing_class
    tokenizer.chat_template = OFFICIAL_CHAT_TEMPLATE  # ERNIE's own template, as the Hub tokenizer brings it
    try:
        (problem,) = dr.doctor(tokenizer=tokenizer, training_args=sft_config(tmp_path), capability=None,
                               in_colab=False, show=False)
        assert problem.check == "chat template"
        # without assistant_only_loss the markers are not needed
        assert dr.doctor(tokenizer=tokenizer, training_args=sft_config(tmp_path, assistant_only_loss=False),
                         capability=None, in_colab=False, show=False) == []
    finally:
        tokenizer.chat_template = TRAINING_CHAT_TEMPLATE


def test_doctor_on_colab_without_a_gpu_and_the_wrong_import_order(capsys):
    problems = dr.doctor(capability=None, in_colab=True, modules=["transformers", "unsloth"])
    assert [p.check for p in problems] == ["gpu runtime", "import order"]
    out = capsys.readouterr().out
    assert out.startswith("doctor: 2 problem(s)") and "fix: Runtime → Change runtime type → T4 GPU" in out


def test_doctor_reports_a_forced_precision_this_machine_cannot_use(monkeypatch):
    from course_lib.environment import PRECISION_ENV

    monkeypatch.setenv(PRECISION_ENV, "bf16")
    (problem,) = dr.doctor(capability=(7, 5), in_colab=False, modules=["unsloth"], show=False)
    assert "bf16" in problem.what and PRECISION_ENV in problem.fix


def test_doctor_passes_on_an_error_it_does_not_know():
    (problem,) = dr.doctor(error=KeyError("messages"), capability=None, in_colab=False, modules=[], show=False)
    assert problem.check == "error" and "KeyError" in problem.what


def test_the_doctor_speaks_chinese_in_the_chinese_edition(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    (problem,) = dr.check_precision((7, 5), bf16=True, fp16=False)
    assert "计算能力 7.5" in problem.what and "fp16=True" in problem.fix and problem.check == "precision"
    assert str(problem).startswith("[精度] ") and "\n    解决办法：" in str(problem)
    assert dr.report([], ["GPU runtime", "precision"]) == "doctor：没有发现问题（已检查：GPU 运行时、精度）"
    assert dr.report([problem], ["precision"]).startswith("doctor：发现 1 个问题\n[精度]")
    first = dr.oom_advice(batch=8, accumulation=1, max_length=1024, r=16)[0]
    assert first == "per_device_train_batch_size 8 -> 4，gradient_accumulation_steps 1 -> 2：有效 batch 仍是 8"
