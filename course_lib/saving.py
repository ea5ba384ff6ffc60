"""What a save wrote, and whether two models agree: folder sizes, stored dtypes, a logit comparison.

The saving itself (`save_pretrained`, `save_pretrained_merged`) stays in the notebook; these helpers only
measure what it produced.
"""

from __future__ import annotations

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
