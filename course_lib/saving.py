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

from course_lib.language import tr


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
    lines.append(tr(f"{len(files)} files, {human_size(folder_size(path))} in {path}",
                    f"{len(files)} 个文件，共 {human_size(folder_size(path))}，位于 {path}"))
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
        raise ValueError(tr(f"the models' logits have different shapes: {tuple(a.shape)} and {tuple(b.shape)}",
                            f"两个模型的 logits 形状不同：{tuple(a.shape)} 和 {tuple(b.shape)}"))
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
    why = tr(f"largest difference {result['max_abs_diff']:.4f} = {100 * relative:.2f}% of the largest |logit| "
             f"{result['max_abs_logit']:.2f} (allowed {100 * tolerance:g}%); same top-1 token at "
             f"{result['top1_agreement']:.2f}% of {result['positions']} positions (needed {min_top1_agreement:g}%)",
             f"最大差值 {result['max_abs_diff']:.4f} = {100 * relative:.2f}% x 最大 |logit| "
             f"{result['max_abs_logit']:.2f}（允许 {100 * tolerance:g}%）；top-1 token 相同的位置占 "
             f"{result['top1_agreement']:.2f}%，共 {result['positions']} 个位置（需要 {min_top1_agreement:g}%）")
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
            written = sorted(p.name for p in staging.iterdir())
            raise FileNotFoundError(tr(f"the save wrote {written} but not {missing}: {final} was left as it was",
                                       f"保存写出了 {written}，但缺少 {missing}：{final} 保持原样"))
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
        raise OSError(tr(f"not enough disk space to save to {path}: it needs about {human_size(needed_bytes)}, and "
                         f"{where} has {human_size(free)} free ({human_size(needed_bytes - free)} short). Delete what "
                         f"you no longer need (old checkpoint-* folders, earlier merged models), or save to another "
                         f"disk, e.g. Google Drive on Colab.",
                         f"磁盘空间不足，无法保存到 {path}：大约需要 {human_size(needed_bytes)}，而 {where} 只剩 "
                         f"{human_size(free)}（还差 {human_size(needed_bytes - free)}）。删除不再需要的文件（旧的 "
                         f"checkpoint-* 文件夹、之前合并的模型），或者保存到另一块磁盘，例如 Colab 上的 Google Drive。"))
    return tr(f"{human_size(free)} free on the disk of {where}, about {human_size(needed_bytes)} needed",
              f"剩余 {human_size(free)}（{where} 所在磁盘），大约需要 {human_size(needed_bytes)}")


# The merge checked where it happens, in weight space: every adapted matrix of the merged model must be
# W + s·B·A (recomputed in fp32 from the base's files and the adapter's) rounded once to the stored dtype, and
# every other tensor must be the base's, cast to that dtype, bit for bit.

def read_safetensors(folder) -> dict:
    """Every tensor of the .safetensors files in `folder` (a model or an adapter), by name."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(tr(f"no .safetensors file in {folder}: is it a saved model or adapter folder?",
                                   f"{folder} 里没有 .safetensors 文件：它是保存好的模型或适配器文件夹吗？"))
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
        peft_type = adapter_config.get("peft_type")
        raise ValueError(tr(f"the weight check recomputes plain LoRA (W + s·B·A) only; this adapter has "
                            f"peft_type={peft_type!r} and {unsupported or 'nothing else'}: "
                            f"check its merge with the logit comparison alone",
                            f"权重检查只重算普通 LoRA（W + s·B·A）；这个适配器是 peft_type={peft_type!r}，"
                            f"另有 {unsupported or '无其他设置'}：请只用 logits 比较来验证它的合并"))
    r, alpha = adapter_config["r"], adapter_config["lora_alpha"]
    return alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r


def adapter_deltas(adapter_tensors: dict) -> dict:
    """{weight name in the model: (A, B)} from an adapter's tensors ("base_model.model.<module>.lora_A.weight")."""
    pairs: dict = {}
    for name, tensor in adapter_tensors.items():
        module, _, kind = name.removeprefix("base_model.model.").rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise ValueError(tr(f"adapter tensor {name!r} is not a LoRA A or B matrix: the weight check cannot place it",
                                f"适配器张量 {name!r} 不是 LoRA 的 A 或 B 矩阵：权重检查无法确定它属于哪一层"))
        pairs.setdefault(f"{module}.weight", {})[kind[0]] = tensor
    missing = [name for name, pair in pairs.items() if len(pair) != 2]
    if missing:
        raise ValueError(tr(f"the adapter holds only one of lora_A / lora_B for {missing}",
                            f"对 {missing}，适配器只有 lora_A / lora_B 中的一个"))
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
            lines = [tr(f"{len(self.adapted)} merged matrices against W + s·B·A rounded to {self.dtypes}: largest "
                        f"|error| {error:.3g}; largest error / rounding bound {ratio:.3f} (needs <= 1), in {name}",
                        f"{len(self.adapted)} 个合并后的矩阵与舍入到 {self.dtypes} 的 W + s·B·A 比较：最大 "
                        f"|误差| {error:.3g}；误差 / 舍入界的最大值 {ratio:.3f}（需要 <= 1），出现在 {name}")]
        else:
            lines = [tr("no merged matrix matched an adapted one: nothing of the adapter was checked",
                        "没有一个合并后的矩阵对应到适配器改动的矩阵：适配器的内容一点也没有验证")]
        lines.append(tr(f"{self.untouched_equal} other tensors bit-equal to the base's after the same cast",
                        f"其余 {self.untouched_equal} 个张量在同样的类型转换后与基座模型的逐位相同"))
        lines += [tr(f"  problem: {problem}", f"  问题：{problem}") for problem in self.problems[:10]]
        if len(self.problems) > 10:
            lines.append(tr(f"  ... and {len(self.problems) - 10} more problems", f"  ……还有 {len(self.problems) - 10} 个问题"))
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
                problems.append(tr(f"the {which} model ties lm_head to the embeddings, yet stores two different matrices",
                                   f"{ {'base': '基座', 'merged': '合并后的'}[which]}模型把 lm_head 与嵌入层"
                                   "绑定，却存了两个不同的矩阵"))
    problems += [tr(f"{name} is in the base model but not in the merged model", f"{name} 在基座模型里有，合并后的模型里没有")
                 for name in sorted(base.keys() - merged.keys())]
    problems += [tr(f"{name} is in the merged model but not in the base model", f"{name} 在合并后的模型里有，基座模型里没有")
                 for name in sorted(merged.keys() - base.keys())]
    problems += [tr(f"the adapter changes {name}, which the base model does not have", f"适配器改动了 {name}，而基座模型没有它")
                 for name in sorted(deltas.keys() - base.keys())]
    for name in sorted(merged.keys() & base.keys()):
        stored, weight = merged[name], base[name]
        dtype_name = str(stored.dtype).removeprefix("torch.")
        dtypes[dtype_name] = dtypes.get(dtype_name, 0) + 1
        if stored.shape != weight.shape or not stored.is_floating_point() or not weight.is_floating_point():
            problems.append(tr(f"{name}: merged {stored.dtype} {tuple(stored.shape)} against base {weight.dtype} "
                               f"{tuple(weight.shape)}; the check needs unquantized 16- or 32-bit weights on both sides",
                               f"{name}：合并后为 {stored.dtype} {tuple(stored.shape)}，基座模型为 {weight.dtype} "
                               f"{tuple(weight.shape)}；这项检查要求两边都是未量化的 16-bit 或 32-bit 权重"))
        elif name in deltas:
            a, b = (m.float() for m in deltas[name])
            exact = weight.float() + scaling * (b @ a)
            # fp32 rounding of the recomputation: a dot product of r terms, a product and a sum
            slack = (a.shape[0] + 2) * 2.0 ** -24 * (weight.float().abs() + abs(scaling) * (b.abs() @ a.abs()))
            error = (stored.float() - exact).abs()
            ratio = (error / rounding_bound(exact, stored.dtype, slack)).max().item()
            adapted[name] = (error.max().item(), ratio)
            if not ratio <= 1:  # also catches inf and nan
                problems.append(tr(f"{name}: error {ratio:.2f}x the rounding bound of {stored.dtype}",
                                   f"{name}：误差是 {stored.dtype} 舍入界的 {ratio:.2f} 倍"))
        elif torch.equal(stored, weight.to(stored.dtype)):
            equal += 1
        else:
            changed = int((stored != weight.to(stored.dtype)).sum())
            problems.append(tr(f"{name}: no adapter touches it, yet {changed} of {stored.numel()} values differ from "
                               f"the base's cast to {stored.dtype}",
                               f"{name}：适配器没有改动它，却有 {changed} 个值（共 {stored.numel()} 个）与基座模型"
                               f"转换为 {stored.dtype} 后的值不同"))
    return WeightCheck(adapted, equal, problems, dtypes)
