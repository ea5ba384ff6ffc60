"""What a save wrote, and whether two models agree: folder sizes, stored dtypes, a logit comparison; and
saving safely: a folder that appears only when the save succeeded, and a disk-space check before it starts.

The saving itself (`save_pretrained`, `save_pretrained_merged`) stays in the notebook; these helpers measure
what it produced, or give it a place to write.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def folder_size(path) -> int:
    """Bytes of every file under `path` (recursively); 0 for an empty or missing folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human_size(n_bytes: int) -> str:
    """1536 -> "1.5 KB": powers of 1024, as file browsers show sizes."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def describe_folder(path) -> str:
    """One line per file (relative path and size, largest first), then the total."""
    path = Path(path)
    files = sorted((f for f in path.rglob("*") if f.is_file()), key=lambda f: (-f.stat().st_size, str(f)))
    width = max((len(str(f.relative_to(path))) for f in files), default=0)
    lines = [f"  {str(f.relative_to(path)):<{width}}  {human_size(f.stat().st_size):>9}" for f in files]
    lines.append(f"{len(files)} files, {human_size(folder_size(path))} in {path}")
    return "\n".join(lines)


def stored_dtypes(path) -> dict[str, int]:
    """Parameters per stored dtype ("BF16", "F16", "F32", ...) over the .safetensors files under `path`,
    read from the files' headers: what is on disk, whatever config.json says."""
    import json
    import math
    import struct

    counts: dict[str, int] = {}
    for file in sorted(Path(path).rglob("*.safetensors")):
        with open(file, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))  # safetensors: u64 length, then JSON
            header = json.loads(handle.read(header_length))
        for name, tensor in header.items():
            if name != "__metadata__":
                counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + math.prod(tensor["shape"])
    return counts


def compare_logits(model_a, model_b, input_ids, attention_mask) -> dict:
    """Run both models on the same batch and compare their next-token logits at every non-pad position.

    Returns max_abs_diff and mean_abs_diff (|a - b| over all positions and the whole vocabulary),
    max_abs_logit (the largest |logit| of model_a: the scale the differences are measured against),
    top1_agreement (% of positions where both models pick the same most likely next token) and positions
    (how many non-pad positions were compared). Logits are compared in float32 on the CPU.
    """
    import torch

    def logits_of(model):
        device = next(model.parameters()).device
        with torch.no_grad():
            out = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
        return out.logits.float().cpu()

    a, b = logits_of(model_a), logits_of(model_b)
    if a.shape != b.shape:
        raise ValueError(f"the models' logits have different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    keep = attention_mask.bool().cpu()
    a, b = a[keep], b[keep]  # (positions, vocabulary)
    diff = (a - b).abs()
    return {
        "max_abs_diff": diff.max().item(),
        "mean_abs_diff": diff.mean().item(),
        "max_abs_logit": a.abs().max().item(),
        "top1_agreement": 100.0 * (a.argmax(-1) == b.argmax(-1)).float().mean().item(),
        "positions": int(keep.sum()),
    }


def check_agreement(result: dict, tolerance: float, min_top1_agreement: float) -> tuple[bool, str]:
    """(passed, why) for a `compare_logits` result: the largest logit difference must be at most `tolerance`
    times the largest |logit|, and the top-1 next tokens must agree at `min_top1_agreement` % of positions."""
    relative = result["max_abs_diff"] / result["max_abs_logit"]
    passed = relative <= tolerance and result["top1_agreement"] >= min_top1_agreement
    why = (f"largest difference {result['max_abs_diff']:.4f} = {100 * relative:.2f}% of the largest |logit| "
           f"{result['max_abs_logit']:.2f} (allowed {100 * tolerance:g}%); same top-1 token at "
           f"{result['top1_agreement']:.2f}% of {result['positions']} positions (needed {min_top1_agreement:g}%)")
    return passed, why


# Saving safely: a save that dies halfway (full disk, killed kernel, Colab disconnect) must never leave a
# folder at the final path that looks complete.

PARTIAL = ".partial-"  # staging folders are hidden siblings: .<name>.partial-<random>


@contextmanager
def atomic_folder(final_path, required=()):
    """Yield a temporary sibling folder to save into; when the block succeeds (and every name in `required`
    exists in it), it replaces `final_path`. When the block fails, it is deleted and `final_path` is left as
    it was. An old folder at `final_path` is moved aside first and deleted only after the new one is in
    place, so the final path holds the old complete folder, the new one, or (for an instant) nothing.
    Staging folders left by a killed kernel (which runs no clean-up) are deleted on the next call."""
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{glob.escape(final.name)}{PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}{PARTIAL}", dir=final.parent))
    staging.chmod(0o755)  # mkdtemp makes it private (0700); the saved model should be readable like any folder
    try:
        yield staging
        missing = [name for name in required if not (staging / name).exists()]
        if missing:
            raise FileNotFoundError(f"the save wrote {sorted(p.name for p in staging.iterdir())} but not {missing}: "
                                    f"{final} was left as it was")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{staging.name[-8:]}") if final.exists() else None
    if old:
        final.rename(old)
    try:
        staging.rename(final)  # same folder, same file system: a rename, not a copy
    except BaseException:
        if old:
            old.rename(final)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def bytes_per_value(dtype) -> int:
    """2 for torch.float16 / torch.bfloat16 / "float16" / "bf16", 4 for float32 / "fp32"..."""
    import torch

    if isinstance(dtype, str):
        names = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "merged_16bit": "float16"}
        dtype = getattr(torch, names.get(dtype, dtype))
    return torch.empty((), dtype=dtype).element_size()


def merged_size_estimate(model, dtype) -> int:
    """Bytes the merged model's weights take on disk in `dtype`: every base parameter once (tied embeddings
    are one tensor), LoRA's own A and B left out, since merging folds them into the base weights. Parameters
    stored in 4 bits count at their full shape (`quant_state.shape`), as a 16-bit merge writes them."""
    import math

    total = 0
    for name, parameter in model.named_parameters():  # shared (tied) tensors are listed once
        if "lora_" in name:
            continue
        shape = getattr(getattr(parameter, "quant_state", None), "shape", parameter.shape)
        total += math.prod(shape)
    return total * bytes_per_value(dtype)


def check_free_disk(path, needed_bytes: int) -> str:
    """OSError when the file system holding `path` (or its nearest existing parent) has less than
    `needed_bytes` free, saying how much is missing and what to do; else a one-line summary."""
    where = Path(path).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < needed_bytes:
        raise OSError(f"not enough disk space to save to {path}: it needs about {human_size(needed_bytes)}, and "
                      f"{where} has {human_size(free)} free ({human_size(needed_bytes - free)} short). Delete what "
                      f"you no longer need (old checkpoint-* folders, earlier merged models), or save to another "
                      f"disk, e.g. Google Drive on Colab.")
    return f"{human_size(free)} free on the disk of {where}, about {human_size(needed_bytes)} needed"


# The merge checked where it happens, in weight space: every adapted matrix of the merged model must be
# W + s·B·A (recomputed in fp32 from the base's files and the adapter's) rounded once to the stored dtype, and
# every other tensor must be the base's, cast to that dtype, bit for bit.

def read_safetensors(folder) -> dict:
    """Every tensor of the .safetensors files in `folder` (a model or an adapter), by name."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors file in {folder}: is it a saved model or adapter folder?")
    tensors = {}
    for file in files:
        tensors.update(load_file(file))
    return tensors


def base_weights_folder(name_or_path) -> Path:
    """The folder holding a base model's weight files: a local folder as it is, a Hub id through the Hugging
    Face cache (the loading notebook already downloaded them)."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(name_or_path), allow_patterns=["*.safetensors", "*.json"]))


def lora_scaling(adapter_config: dict) -> float:
    """PEFT's s of W + s·B·A: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA. Refuses what this check
    does not recompute (DoRA, per-module ranks, fan-in-fan-out layers, trained biases or whole modules)."""
    import math

    unsupported = {key: adapter_config.get(key) for key in
                   ("use_dora", "rank_pattern", "alpha_pattern", "fan_in_fan_out", "lora_bias", "modules_to_save")
                   if adapter_config.get(key)}
    if adapter_config.get("peft_type") != "LORA" or unsupported:
        raise ValueError(f"the weight check recomputes plain LoRA (W + s·B·A) only; this adapter has "
                         f"peft_type={adapter_config.get('peft_type')!r} and {unsupported or 'nothing else'}: "
                         f"check its merge with the logit comparison alone")
    r, alpha = adapter_config["r"], adapter_config["lora_alpha"]
    return alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r


def adapter_deltas(adapter_tensors: dict) -> dict:
    """{weight name in the model: (A, B)} from an adapter's tensors ("base_model.model.<module>.lora_A.weight")."""
    pairs: dict = {}
    for name, tensor in adapter_tensors.items():
        module, _, kind = name.removeprefix("base_model.model.").rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise ValueError(f"adapter tensor {name!r} is not a LoRA A or B matrix: the weight check cannot place it")
        pairs.setdefault(f"{module}.weight", {})[kind[0]] = tensor
    missing = [name for name, pair in pairs.items() if len(pair) != 2]
    if missing:
        raise ValueError(f"the adapter holds only one of lora_A / lora_B for {missing}")
    return {name: (pair["A"], pair["B"]) for name, pair in pairs.items()}


def rounding_bound(exact, dtype, slack=0.0):
    """The largest |stored - exact| that rounding `exact` (fp32) to nearest in `dtype` can cause, element-wise.

    A float with p significant bits (fp16 11, bf16 8) moves by at most half a unit in its last place, which is
    at most 2^-p·|x| while |x| is in the normal range; below it (subnormals) the spacing is fixed and the move is
    at most half the smallest subnormal (2^-25 in fp16, 2^-134 in bf16). `slack` is how far `exact` itself may be
    off (another order of summation in fp32); it passes through the rounding almost unchanged, hence (1 + 2^-p)."""
    import torch

    info = torch.finfo(dtype)
    unit = info.eps / 2  # 2^-p: eps is the spacing above 1, 2^(1-p)
    return unit * exact.abs() + info.smallest_normal * info.eps / 2 + (1 + unit) * slack


@dataclass
class WeightCheck:
    adapted: dict  # weight name -> (max |stored - exact|, max of |stored - exact| / bound), for merged matrices
    untouched_equal: int  # other tensors equal to the base's after the same cast, bit for bit
    problems: list  # what failed, one line each
    dtypes: dict  # stored dtype -> number of tensors

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.adapted)

    @property
    def worst(self) -> tuple[str, float, float]:
        name = max(self.adapted, key=lambda n: self.adapted[n][1])
        return (name, *self.adapted[name])

    def summary(self) -> str:
        if self.adapted:
            name, error, ratio = self.worst
            lines = [f"{len(self.adapted)} merged matrices against W + s·B·A rounded to {self.dtypes}: largest "
                     f"|error| {error:.3g}; largest error / rounding bound {ratio:.3f} (needs <= 1), in {name}"]
        else:
            lines = ["no merged matrix matched an adapted one: nothing of the adapter was checked"]
        lines.append(f"{self.untouched_equal} other tensors bit-equal to the base's after the same cast")
        lines += [f"  problem: {problem}" for problem in self.problems[:10]]
        if len(self.problems) > 10:
            lines.append(f"  ... and {len(self.problems) - 10} more problems")
        return "\n".join(lines)


def check_merged_weights(merged: dict, adapter_dir, base_dir) -> WeightCheck:
    """Compare `merged` (tensors by name, e.g. `read_safetensors(MERGED_DIR)`) with the merge recomputed from
    the adapter in `adapter_dir` and the base model's weights in `base_dir` (`base_weights_folder`)."""
    import json

    import torch

    scaling = lora_scaling(json.loads((Path(adapter_dir) / "adapter_config.json").read_text()))
    deltas = adapter_deltas(read_safetensors(adapter_dir))
    base = read_safetensors(base_dir)
    config_file = Path(base_dir) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    merged = dict(merged)
    adapted, problems, equal, dtypes = {}, [], 0, {}
    if config.get("tie_word_embeddings"):  # lm_head is the embedding matrix: a file stores it by one name or both
        for which, tensors in (("base", base), ("merged", merged)):
            head = tensors.pop("lm_head.weight", None)
            if head is not None and not torch.equal(tensors.setdefault("model.embed_tokens.weight", head), head):
                problems.append(f"the {which} model ties lm_head to the embeddings, yet stores two different matrices")
    problems += [f"{name} is in the base model but not in the merged model" for name in sorted(base.keys() - merged.keys())]
    problems += [f"{name} is in the merged model but not in the base model" for name in sorted(merged.keys() - base.keys())]
    problems += [f"the adapter changes {name}, which the base model does not have" for name in sorted(deltas.keys() - base.keys())]
    for name in sorted(merged.keys() & base.keys()):
        stored, weight = merged[name], base[name]
        dtype_name = str(stored.dtype).removeprefix("torch.")
        dtypes[dtype_name] = dtypes.get(dtype_name, 0) + 1
        if stored.shape != weight.shape or not stored.is_floating_point() or not weight.is_floating_point():
            problems.append(f"{name}: merged {stored.dtype} {tuple(stored.shape)} against base {weight.dtype} "
                            f"{tuple(weight.shape)}; the check needs unquantized 16- or 32-bit weights on both sides")
        elif name in deltas:
            a, b = (m.float() for m in deltas[name])
            exact = weight.float() + scaling * (b @ a)
            # fp32 rounding of the recomputation: a dot product of r terms, a product and a sum
            slack = (a.shape[0] + 2) * 2.0 ** -24 * (weight.float().abs() + abs(scaling) * (b.abs() @ a.abs()))
            if weight.dtype != stored.dtype and torch.finfo(weight.dtype).eps >= torch.finfo(stored.dtype).eps:
                # A merge may start from W as loaded in the stored dtype (a T4 loads bf16 weights as fp16): exact
                # for normal numbers, since that dtype has more significant bits, and half a subnormal step below.
                slack = slack + torch.finfo(stored.dtype).smallest_normal * torch.finfo(stored.dtype).eps / 2
            error = (stored.float() - exact).abs()
            ratio = (error / rounding_bound(exact, stored.dtype, slack)).max().item()
            adapted[name] = (error.max().item(), ratio)
            if not ratio <= 1:  # also catches inf and nan
                problems.append(f"{name}: error {ratio:.2f}x the rounding bound of {stored.dtype}")
        elif torch.equal(stored, weight.to(stored.dtype)):
            equal += 1
        else:
            changed = int((stored != weight.to(stored.dtype)).sum())
            problems.append(f"{name}: no adapter touches it, yet {changed} of {stored.numel()} values differ from "
                            f"the base's cast to {stored.dtype}")
    return WeightCheck(adapted, equal, problems, dtypes)
