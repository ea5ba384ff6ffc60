"""GGUF for llama.cpp and Ollama: llama.cpp's own converter from a pinned source, a check of what it wrote, and
an Ollama Modelfile.

Unsloth's `save_pretrained_gguf` installs system packages and git-clones llama.cpp when it runs; the course
never calls it. llama-cpp-python's source distribution on PyPI (pinned and hash-checked below) vendors llama.cpp
with `convert_hf_to_gguf.py` and its `gguf-py` library: converting needs Python only, no compiler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from course_lib.ernie import END_OF_TURN
from course_lib.language import tr

LLAMA_CPP_PYTHON = "0.3.36"  # vendors llama.cpp with the converter; it knows Ernie4_5ForCausalLM
LLAMA_CPP_PYTHON_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
OUTTYPES = ("f16", "q8_0")  # not quantized; 8-bit, nearly lossless (q4_k_m needs llama.cpp's compiled tool)
END_MARKERS = (END_OF_TURN, "</s>")  # where an ERNIE answer ends: llama.cpp and Ollama must stop there


def converter_home() -> Path:
    """Where the converter is kept: beside the Python environment (`.venv/share/...` for the course's venv, where
    `make setup` fetches it), else in the work folder when that place cannot be written."""
    home = Path(sys.prefix) / "share" / f"llama.cpp-{LLAMA_CPP_PYTHON}"
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        if os.access(home.parent, os.W_OK) or home.is_dir():
            return home
    except OSError:
        pass
    from course_lib.paths import work_dir

    return work_dir() / "tools" / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def fetch_converter() -> Path:
    """llama.cpp's converter (convert_hf_to_gguf.py, conversion/, gguf-py/) unpacked from llama-cpp-python's
    source distribution, which is kept beside it (`make llama-cpp-check` compiles it). On first use pip downloads
    it (77 MB) and checks its sha256; after that this returns at once. A download that fails leaves nothing."""
    home = converter_home()
    if home.is_dir():  # it appears only once complete (see the rename below)
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{home.name}.partial-", dir=home.parent,
                                     ignore_cleanup_errors=True) as staging:
        staging = Path(staging)
        pin = staging / "requirement.txt"
        pin.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON} --hash=sha256:{LLAMA_CPP_PYTHON_SHA256}\n")
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                                 ":all:", "--require-hashes", "-r", str(pin), "-d", str(staging)],
                                capture_output=True, text=True)
        if result.returncode != 0 or not (staging / SDIST).exists():
            raise RuntimeError(tr(f"pip could not download llama-cpp-python=={LLAMA_CPP_PYTHON} (the GGUF converter) "
                                  f"with sha256 {LLAMA_CPP_PYTHON_SHA256}:",
                                  f"pip 无法下载 llama-cpp-python=={LLAMA_CPP_PYTHON}（GGUF 转换器），"
                                  f"sha256 {LLAMA_CPP_PYTHON_SHA256}：") + f"\n{result.stderr[-2000:]}")
        with tarfile.open(staging / SDIST) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(VENDORED)
                       and m.name[len(VENDORED):].startswith(CONVERTER_PARTS) and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name[len(VENDORED):]
            archive.extractall(staging, members=members, filter="data")
        pin.unlink()
        staging.chmod(0o755)
        try:
            staging.rename(home)  # all or nothing; TemporaryDirectory then finds nothing left to clean up
        except OSError:
            if not home.is_dir():  # else another process fetched it first: use theirs
                raise
    return home


def gguf_module():
    """The `gguf` library that the converter itself uses (vendored with it), imported from the converter."""
    path = str(fetch_converter() / "gguf-py")
    if path not in sys.path:
        sys.path.insert(0, path)
    import gguf

    return gguf


def converter_view(model_dir: Path, view: Path) -> Path:
    """`model_dir` as the converter must see it: links to its files, and a tokenizer_config.json that lists the
    added tokens under `added_tokens_decoder` and says `add_bos_token`. transformers 5 keeps the first only in
    tokenizer.json and drops the second, but the converter reads them there: without them, <|begin_of_sentence|>
    and <|end_of_sentence|> become plain text in the GGUF (llama.cpp spells them out letter by letter),
    <mask:4>..<mask:7> become padding, and llama.cpp puts a <s> before every prompt."""
    from transformers import AutoTokenizer

    view.mkdir(parents=True)
    for file in model_dir.iterdir():
        if file.name != "tokenizer_config.json":
            (view / file.name).symlink_to(file.resolve())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    # Also gone from transformers 5's file: whether to add <s> (ERNIE: no). Left out, llama.cpp adds it.
    config.update(add_bos_token=tokenizer.add_bos_token, add_eos_token=tokenizer.add_eos_token)
    # <mask:0>..<mask:3> come from the SentencePiece model as plain added tokens, but the tokenizer lists them
    # among its special tokens (decoding skips them): mark them special, so llama.cpp treats them alike.
    special = set(tokenizer.all_special_tokens)
    config["added_tokens_decoder"] = {
        str(token_id): {"content": token.content, "lstrip": token.lstrip, "normalized": token.normalized,
                        "rstrip": token.rstrip, "single_word": token.single_word,
                        "special": token.special or token.content in special}
        for token_id, token in tokenizer.added_tokens_decoder.items()}
    (view / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return view


def run_tool(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(tr(f"{what} failed (exit {result.returncode}):", f"{what} 失败（退出码 {result.returncode}）：")
                           + f"\n{result.stderr[-3000:]}")


def convert_to_gguf(model_dir, outfile, outtype: str = "f16") -> dict:
    """Run llama.cpp's convert_hf_to_gguf.py on a saved model folder (a merged model with its tokenizer.model),
    then mark <|end_of_sentence|> as the end of a turn in the file's header (with gguf-py's gguf_new_metadata.py),
    so that llama.cpp, Ollama and LM Studio stop there by themselves, as the saved generation_config does, and
    remove the separator token id (see below).

    Everything is written in a hidden folder beside `outfile` and renamed to `outfile` only at the end, so a
    failed conversion leaves no .gguf that looks complete. Returns path, bytes and seconds.
    """
    if outtype not in OUTTYPES:
        raise ValueError(tr(f"outtype {outtype!r} is not one of {OUTTYPES}", f"outtype {outtype!r} 不是 {OUTTYPES} 之一"))
    model_dir, outfile = Path(model_dir).resolve(), Path(outfile)
    for needed in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        if not (model_dir / needed).exists():
            raise FileNotFoundError(tr(f"{model_dir} has no {needed}; llama.cpp's converter needs it (a folder saved "
                                       f"with the course's saving format has them: tokenizer.save_vocabulary(folder) "
                                       f"writes tokenizer.model)",
                                       f"{model_dir} 里没有 {needed}；llama.cpp 的转换器需要它（按课程的保存格式保存的"
                                       f"文件夹都有：tokenizer.save_vocabulary(folder) 会写出 tokenizer.model）"))
    home = fetch_converter()
    outfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{outfile.name}.partial-", dir=outfile.parent) as scratch:
        scratch = Path(scratch)
        view = converter_view(model_dir, scratch / "model")
        run_tool([sys.executable, str(home / "convert_hf_to_gguf.py"), str(view), "--outfile",
                  str(scratch / "converted.gguf"), "--outtype", outtype], tr(f"convert_hf_to_gguf.py on {model_dir}", f"对 {model_dir} 运行 convert_hf_to_gguf.py"))
        added = json.loads((view / "tokenizer_config.json").read_text())["added_tokens_decoder"]
        (eot_id,) = [token_id for token_id, token in added.items() if token["content"] == END_OF_TURN]
        # Also drop the separator id (ERNIE's sep_token is <|end_of_sentence|>): llama.cpp uses it only for BERT's
        # tokenizer, but llama-cpp-python appends it to every text prompt, which would end the turn before the
        # answer starts. --force: no question to confirm the removal.
        run_tool([sys.executable, str(home / "gguf-py" / "gguf" / "scripts" / "gguf_new_metadata.py"),
                  str(scratch / "converted.gguf"), str(scratch / "final.gguf"), "--special-token-by-id", "eot",
                  eot_id, "--remove-metadata", "tokenizer.ggml.seperator_token_id", "--force"],
                 tr("gguf_new_metadata.py (marking the end of turn)", "gguf_new_metadata.py（标记对话轮次的结束）"))
        os.replace(scratch / "final.gguf", outfile)
    return {"path": outfile, "bytes": outfile.stat().st_size, "seconds": time.perf_counter() - start}


# Hugging Face names of an ERNIE-4.5 block and of the model, and llama.cpp's names for them (written out here,
# not taken from gguf-py's own table, so that the check below does not trust the converter's mapping).
BLOCK_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down"}
# ERNIE-4.5 ties its output layer to the embeddings: safetensors then hold no lm_head, and GGUF no output.weight.
MODEL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}
Q8_BLOCK = 32  # values per q8_0 block, which share one f16 scale


def gguf_name(hf_name: str) -> str:
    if hf_name in MODEL_NAMES:
        return MODEL_NAMES[hf_name]
    parts = hf_name.split(".")  # model.layers.<i>.<module...>.weight
    if parts[:2] != ["model", "layers"] or ".".join(parts[3:-1]) not in BLOCK_NAMES:
        raise KeyError(tr(f"no llama.cpp name known for {hf_name}", f"不知道 {hf_name} 在 llama.cpp 中的名字"))
    return f"blk.{parts[2]}.{BLOCK_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def compare_tensors(gguf_file, model_dir) -> list[dict]:
    """Every tensor of the GGUF file against the merged model's safetensors, one row per tensor: name, GGUF type,
    max_abs_diff from the saved weight, the bound it must stay within, and `ok`.

    F32 must be equal to the weight; F16 equal to the weight rounded to float16 (bound: the largest such
    rounding); Q8_0 within each block's quantization step: a block of 32 values is stored as q = round(x / d),
    d = max|x| / 127 kept in float16, so no value moves by more than d / 2 plus the scale's rounding,
    127 |d - d16| <= max|x| 2^-11: in all about 0.44% of the block's largest |value|. Raises when a tensor is
    missing on either side or its shape differs.
    """
    import numpy as np
    import torch
    from safetensors.torch import load_file

    gguf = gguf_module()
    weights = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        weights.update(load_file(file))
    stored = {tensor.name: tensor for tensor in gguf.GGUFReader(str(gguf_file)).tensors}
    expected = {gguf_name(name): name for name in weights}
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        raise ValueError(tr(f"{gguf_file} against {model_dir}: tensors missing {missing}, unexpected {extra}",
                            f"{gguf_file} 对比 {model_dir}：缺少张量 {missing}，多出张量 {extra}"))
    rows = []
    for name, hf_name in sorted(expected.items()):
        tensor, weight = stored[name], weights[hf_name].float().numpy()
        kind = tensor.tensor_type.name
        if tuple(int(n) for n in reversed(tensor.shape)) != weight.shape:  # GGUF lists dimensions innermost first
            raise ValueError(tr(f"{name}: shape {tuple(reversed(tensor.shape))} in the GGUF, {weight.shape} in {hf_name}",
                                f"{name}：GGUF 中的形状为 {tuple(reversed(tensor.shape))}，{hf_name} 中为 {weight.shape}"))
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(weight.shape).astype(np.float32)
        diff = np.abs(values - weight)  # float32 holds every float16 value and every q8_0 product exactly
        if kind in ("F32", "F16"):
            reference = weight if kind == "F32" else torch.from_numpy(weight).half().float().numpy()
            bound, ok = float(np.abs(reference - weight).max()), bool(np.array_equal(values, reference))
        elif kind == "Q8_0":
            block_max = np.abs(weight).reshape(-1, Q8_BLOCK).max(axis=1, keepdims=True)
            # the last term: a scale below float16's normal range is rounded to a multiple of 2^-24
            allowed = block_max / 254 + block_max * 2.0 ** -11 + 127 * 2.0 ** -25
            ok = bool((diff.reshape(-1, Q8_BLOCK) <= allowed).all())
            bound = float(allowed.max())
        else:
            raise ValueError(tr(f"{name}: type {kind} is not one this check knows (F32, F16, Q8_0)",
                                f"{name}：这项检查不认识类型 {kind}（只认识 F32、F16、Q8_0）"))
        rows.append({"name": name, "type": kind, "max_abs_diff": float(diff.max()), "bound": bound, "ok": ok})
    return rows


def gguf_metadata(gguf_file) -> dict:
    """The GGUF's key/value header (architecture, context, tokenizer settings), as plain Python values."""
    gguf = gguf_module()
    reader = gguf.GGUFReader(str(gguf_file))
    found = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "scores", "token_type", "merges")):
            found[key] = f"<{len(field.data)} entries>"
        else:
            found[key] = field.contents()
    return found


# ERNIE's official chat template in Go's text/template, the language of Ollama's TEMPLATE. It renders exactly
# what OFFICIAL_CHAT_TEMPLATE renders with a generation prompt (tests/test_modelfile.py runs both).
OLLAMA_TEMPLATE = (
    '<|begin_of_sentence|>{{ range .Messages }}'
    '{{ if eq .Role "user" }}User: {{ .Content }}{{ "\\n" }}'
    '{{ else if eq .Role "assistant" }}Assistant: {{ .Content }}<|end_of_sentence|>'
    '{{ else if eq .Role "system" }}{{ .Content }}{{ "\\n" }}'
    '{{ end }}{{ end }}Assistant: '
)


def modelfile(gguf_file, model_dir) -> str:
    """An Ollama Modelfile for `gguf_file`: FROM (the file's name: keep the Modelfile beside it), ERNIE's chat
    TEMPLATE, a stop at each end marker, and the sampling defaults of the model's own generation_config.json."""
    generation = json.loads((Path(model_dir) / "generation_config.json").read_text())
    lines = [f"FROM ./{Path(gguf_file).name}", "", f'TEMPLATE """{OLLAMA_TEMPLATE}"""', ""]
    lines += [f'PARAMETER stop "{marker}"' for marker in END_MARKERS]
    if generation.get("do_sample"):
        lines += [f"PARAMETER {key} {generation[key]}" for key in ("temperature", "top_p") if key in generation]
    else:
        lines.append("PARAMETER temperature 0")  # the model's config asks for greedy decoding
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_file, model_dir) -> Path:
    """`modelfile(...)` written as `Modelfile` beside the GGUF file."""
    path = Path(gguf_file).with_name("Modelfile")
    path.write_text(modelfile(gguf_file, model_dir))
    return path


if __name__ == "__main__":  # scripts/setup.sh: `python -m course_lib.export fetch`
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m course_lib.export fetch")
    print(tr(f"GGUF converter: {fetch_converter()}", f"GGUF 转换器：{fetch_converter()}"))
