"""Saving safely: `atomic_folder` leaves nothing that looks complete when a real save fails halfway, keeps an old
folder until the new one is whole, and the disk-space check and merged-size estimate measure real saves."""

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from course_lib.saving import atomic_folder, check_free_disk, folder_size, human_size, merged_size_estimate
from course_lib.tiny_ernie import ensure_tiny_ernie

MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture(scope="module")
def tiny():
    folder = ensure_tiny_ernie("tiny")
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def siblings(path):
    """Everything beside `path` in its folder: staging or old folders left behind would show here."""
    return sorted(p.name for p in path.parent.iterdir() if p != path)


def test_a_successful_save_appears_complete_and_leaves_nothing_beside_it(tiny, tmp_path):
    model, tokenizer = tiny
    final = tmp_path / "model"
    with atomic_folder(final, required=["model.safetensors"]) as staging:
        assert staging.parent == final.parent and staging.name.startswith(".model.partial-")
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        assert not final.exists()  # nothing at the final path while the save runs
    assert all((final / name).is_file() for name in MODEL_FILES)
    assert siblings(final) == [] and final.stat().st_mode & 0o777 == 0o755
    reloaded = AutoModelForCausalLM.from_pretrained(final)
    assert torch.equal(reloaded.model.norm.weight, model.model.norm.weight)


def test_a_save_that_fails_after_some_files_leaves_no_folder(tiny, tmp_path):
    model, tokenizer = tiny
    final = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(final) as staging:
            model.save_pretrained(staging)  # the weights are written...
            assert (staging / "model.safetensors").is_file()
            raise RuntimeError("disk full")  # ...and the save dies before the tokenizer
    assert not final.exists() and siblings(final) == []


def test_a_library_save_that_dies_between_shards_leaves_no_folder(tiny, tmp_path):
    """A real failure inside save_pretrained: the model is written in small shards, and a folder already sitting
    where the third shard goes makes the library's own write fail after two shards are on disk."""
    model, _ = tiny
    model.save_pretrained(tmp_path / "reference", max_shard_size="100KB")
    shards = sorted(p.name for p in (tmp_path / "reference").glob("model-*.safetensors"))
    assert len(shards) >= 3
    final = tmp_path / "model"
    with pytest.raises(Exception, match="Is a directory"):  # safetensors' SafetensorError
        with atomic_folder(final) as staging:
            (staging / shards[2]).mkdir()  # the obstacle
            try:
                model.save_pretrained(staging, max_shard_size="100KB")
            finally:
                written = sorted(p.name for p in staging.glob("model-*.safetensors") if p.is_file())
    assert written == shards[:2]  # it died halfway, with two shards on disk
    assert not final.exists() and siblings(final) == ["reference"]


def test_an_old_folder_survives_a_failed_save_and_is_replaced_by_a_good_one(tiny, tmp_path):
    model, tokenizer = tiny
    final = tmp_path / "lora-adapter"
    final.mkdir()
    (final / "adapter_model.safetensors").write_bytes(b"old weights")
    (final / "notes.txt").write_text("only in the old folder")
    with pytest.raises(KeyboardInterrupt):  # the stop button, mid-save
        with atomic_folder(final) as staging:
            (staging / "adapter_model.safetensors").write_bytes(b"half of the new")
            raise KeyboardInterrupt
    assert (final / "adapter_model.safetensors").read_bytes() == b"old weights"
    assert siblings(final) == []

    with atomic_folder(final) as staging:
        model.save_pretrained(staging)
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
    assert siblings(final) == []  # the old folder is gone, not left beside it


def test_a_save_that_skipped_a_required_file_is_refused(tmp_path):
    final = tmp_path / "merged"
    with pytest.raises(FileNotFoundError) as error:
        with atomic_folder(final, required=["config.json", "model.safetensors"]) as staging:
            (staging / "config.json").write_text("{}")
    print(error.value)
    assert "wrote ['config.json'] but not ['model.safetensors']" in str(error.value)
    assert not final.exists() and siblings(final) == []


def test_staging_folders_of_a_killed_kernel_are_cleared_next_time(tmp_path):
    """A killed process runs no clean-up, so its staging folder stays; the next save of that folder removes it."""
    final = tmp_path / "merged"
    stale = tmp_path / ".merged.partial-abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / ".other.partial-keep").mkdir()  # another folder's staging is not touched
    with atomic_folder(final) as staging:
        (staging / "config.json").write_text("{}")
    assert siblings(final) == [".other.partial-keep"]


def test_merged_size_estimate_matches_a_real_16_bit_save(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, _ = tiny
    estimate = merged_size_estimate(model, torch.float16)
    n_params = sum(p.numel() for p in model.parameters())  # the tied embedding counts once
    assert estimate == 2 * n_params
    model.to(torch.float16).save_pretrained(tmp_path / "fp16")
    model.to(torch.float32)
    on_disk = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    print(f"estimate {human_size(estimate)}, written {human_size(on_disk)}")
    assert estimate <= on_disk <= 1.01 * estimate  # the file adds only its small JSON header

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny")),
                          LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert merged_size_estimate(lora, "bf16") == estimate  # the adapters fold into the base weights
    assert merged_size_estimate(lora, "fp32") == 2 * estimate


def test_a_4bit_weight_counts_at_its_full_shape():
    """bitsandbytes packs two 4-bit values per byte: numel() is half the weight, a 16-bit merge writes all of it."""
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit(128, 384, bias=False, compute_dtype=torch.float32).to("cpu")  # .to quantizes
    assert layer.weight.numel() == 384 * 128 // 2
    assert merged_size_estimate(layer, torch.float16) == 2 * 384 * 128


def test_unsloths_merged_save_through_atomic_folder(tmp_path):
    """Notebook 5's save, into the staging folder: the estimate holds for what Unsloth writes."""
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(str(ensure_tiny_ernie("tiny")), max_seq_length=256,
                                                         dtype=torch.float32, load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    final = tmp_path / "merged-16bit"
    needed = merged_size_estimate(model, torch.float16)
    check_free_disk(final, 2 * needed)
    with atomic_folder(final, required=["config.json", "model.safetensors"]) as staging:
        model.save_pretrained_merged(str(staging), tokenizer, save_method="merged_16bit")
    weights = sum(p.stat().st_size for p in final.glob("*.safetensors"))
    print(f"estimate {human_size(needed)}, merged weights {human_size(weights)}, "
          f"folder {human_size(folder_size(final))}")
    assert needed <= weights <= 1.01 * needed
    assert siblings(final) == []


def test_check_free_disk_says_what_is_missing(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    assert "free on the disk of" in check_free_disk(tmp_path / "not" / "yet" / "made", 1024)
    with pytest.raises(OSError) as error:
        check_free_disk(tmp_path / "merged", free + 2**40)
    print(error.value)
    message = str(error.value)
    assert f"it needs about {human_size(free + 2**40)}" in message and "short" in message
    assert "old checkpoint-* folders" in message and "Google Drive" in message
