"""`make llama-cpp-check`: run the course's GGUF files in llama.cpp itself and compare its greedy answers with
transformers'. Too slow for CI: llama-cpp-python has no wheels on PyPI, so llama.cpp is compiled here from the
same pinned source distribution the converter comes from (15-25 min on 2 cores, once; cached in runs/llama-cpp).

Steps: build and install llama-cpp-python (cached); fine-tune the stand-in until it has memorised a few answers
(tests/finetuned_standin.py); convert the merged model to f16 and q8_0; ask each question through llama.cpp and
through transformers, greedy, with the course's prompt (ending at "Assistant:") and with the official template's
(ending at "Assistant: "). Both engines must give the same text and stop by themselves, and with the course's
prompt the answer must be the memorised one. Writes the report to bench/llama-cpp-check.log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("ERNIE_COURSE_WORK", str(ROOT / "runs" / "llama-cpp" / "work"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import unsloth  # noqa: E402,F401  (first, as in the notebooks: the fine-tuning below runs through it)

from course_lib import export  # noqa: E402
from course_lib.chat_format import generation_prompt  # noqa: E402
from course_lib.saving import human_size  # noqa: E402
from finetuned_standin import memorised_model  # noqa: E402

CACHE = ROOT / "runs" / "llama-cpp"
LOG = ROOT / "bench" / "llama-cpp-check.log"
DISKCACHE = "diskcache==5.6.3 --hash=sha256:5e31b2d5fbad117cc363ebaf6b689474db18a1f6438bc82358b024abd4c2ca19"
# No llava/mtmd, tools, server or tests: only the library the Python bindings load.
CMAKE_ARGS = ("-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF "
              "-DLLAMA_BUILD_SERVER=OFF")
report: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    report.append(line)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"], check=True)


def llama_cpp_site() -> Path:
    """llama-cpp-python compiled from the pinned sdist, installed into its own folder (not the course's venv)."""
    site = CACHE / f"site-{export.LLAMA_CPP_PYTHON}"
    if (site / "llama_cpp").is_dir():
        say(f"llama-cpp-python {export.LLAMA_CPP_PYTHON}: cached in {site.relative_to(ROOT)} "
            f"({(CACHE / 'build.txt').read_text().strip()})")
        return site
    wheels = CACHE / "wheels"
    if not list(wheels.glob(f"llama_cpp_python-{export.LLAMA_CPP_PYTHON}-*.whl")):
        sdist = export.fetch_converter() / export.SDIST
        start = time.perf_counter()
        env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=str(min(2, os.cpu_count() or 1)))
        subprocess.run(["nice", "-n", "15", sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                        str(sdist), "-w", str(wheels)], check=True, env=env)
        (CACHE / "build.txt").write_text(f"compiled in {time.perf_counter() - start:.0f} s on {os.cpu_count()} "
                                         f"cores, {time.strftime('%Y-%m-%d')}\n")
    say(f"llama-cpp-python {export.LLAMA_CPP_PYTHON}: {(CACHE / 'build.txt').read_text().strip()}")
    (requirement := CACHE / "diskcache.txt").write_text(DISKCACHE + "\n")
    staging = CACHE / f".site-{export.LLAMA_CPP_PYTHON}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (wheel,) = wheels.glob(f"llama_cpp_python-{export.LLAMA_CPP_PYTHON}-*.whl")
    pip("install", "--no-deps", "--target", str(staging), str(wheel))
    pip("install", "--no-deps", "--require-hashes", "--target", str(staging), "-r", str(requirement))
    staging.rename(site)
    return site


def transformers_answers(merged: Path, prompts: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    answers = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, max_new_tokens=160, do_sample=False)  # stops: the saved generation_config
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def without_weight_repacking() -> None:
    """llama.cpp repacks weights for the CPU's fastest kernels (AMX on recent Intel Xeons). Its AMX kernels
    crashed here (segfault) on the stand-in's q8_0 file for every batch of two or more tokens, a known class of
    llama.cpp bug (ggml-org/llama.cpp#20824); plain CPU kernels compute the same model. llama-cpp-python has no
    argument for it, so set the model parameter `use_extra_bufts` where its Llama class reads its defaults."""
    import llama_cpp.llama_cpp as bindings

    defaults = bindings.llama_model_default_params

    def params():
        chosen = defaults()
        chosen.use_extra_bufts = False
        return chosen

    bindings.llama_model_default_params = params


def exit_code_with_defaults(gguf_file: Path, site: Path) -> int:
    """How a fresh process that evaluates a 2-token batch with llama.cpp's defaults ends (0: fine; -11: segfault)."""
    code = "import sys; from llama_cpp import Llama; Llama(model_path=sys.argv[1], verbose=False).eval([10, 11])"
    return subprocess.run([sys.executable, "-c", code, str(gguf_file)], capture_output=True,
                          env=dict(os.environ, PYTHONPATH=str(site))).returncode


def llama_cpp_answers(gguf_file: Path, prompts: list[str], tokenizer) -> tuple[list[str], list[str], float]:
    """Greedy answers to raw text prompts (create_completion), and whether each stopped by itself."""
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=str(gguf_file), n_ctx=1024, n_threads=min(2, os.cpu_count() or 1), seed=0, verbose=False)
    answers, endings = [], []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if llm.tokenize(prompt.encode(), add_bos=False, special=True) != ids:
            raise AssertionError(f"llama.cpp tokenizes {prompt!r} differently from transformers")
        out = llm.create_completion(prompt, max_tokens=160, temperature=0.0)  # 0: greedy
        answers.append(out["choices"][0]["text"])
        endings.append(out["choices"][0]["finish_reason"])  # "stop": at an end-of-generation token
    llm.close()
    return answers, endings, time.perf_counter() - start


def main() -> int:
    start = time.perf_counter()
    say(f"# make llama-cpp-check, {time.strftime('%Y-%m-%d %H:%M')} ({os.cpu_count()} cores)")
    site = llama_cpp_site()
    sys.path.insert(0, str(site))
    import llama_cpp
    from transformers import AutoTokenizer

    say(f"llama_cpp {llama_cpp.__version__}; weight repacking off (see without_weight_repacking)")
    without_weight_repacking()
    work = CACHE / "memorised"
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    finetuned = memorised_model(work)
    say(f"fine-tuned the stand-in on {len(finetuned.rows)} training rows in {time.perf_counter() - t:.0f} s")
    tokenizer = AutoTokenizer.from_pretrained(finetuned.merged)
    asks = [[{"role": "user", "content": row["question"]}] for row in finetuned.rows]
    prompts = {"course prompt (ends at 'Assistant:')": [generation_prompt(tokenizer, ask) for ask in asks],
               "official template (ends at 'Assistant: ')": [
                   tokenizer.apply_chat_template(ask, tokenize=False, add_generation_prompt=True) for ask in asks]}
    failures = 0
    for outtype in export.OUTTYPES:
        gguf_file = work / "gguf" / f"model-{outtype}.gguf"
        converted = export.convert_to_gguf(finetuned.merged, gguf_file, outtype)
        rows = export.compare_tensors(gguf_file, finetuned.merged)
        bad = [row["name"] for row in rows if not row["ok"]]
        say(f"\n## {outtype}: {human_size(converted['bytes'])}, converted in {converted['seconds']:.1f} s; "
            f"{len(rows)} tensors, largest difference {max(r['max_abs_diff'] for r in rows):.2e}"
            + (f"; OUTSIDE THE BOUND: {bad}" if bad else " (all within the bound)"))
        failures += len(bad)
        say(f"with llama.cpp's defaults (repacking on), a 2-token batch ends with exit code "
            f"{exit_code_with_defaults(gguf_file, site)} (0: fine, -11: segfault)")
        for name, texts in prompts.items():
            expected = transformers_answers(finetuned.merged, texts)
            got, endings, seconds = llama_cpp_answers(gguf_file, texts, tokenizer)
            same = sum(a == b for a, b in zip(got, expected))
            memorised = sum(a.strip() == row["answer"] for a, row in zip(got, finetuned.rows))
            say(f"{name}: llama.cpp = transformers for {same} of {len(texts)} questions, the memorised answer for "
                f"{memorised}; stopped by itself: {endings.count('stop')} ({seconds:.1f} s)")
            for a, b, ending in zip(got, expected, endings):
                say(f"  {'same' if a == b else 'DIFFERENT'} ({ending}): llama.cpp {a!r}"
                    + ("" if a == b else f"\n    transformers {b!r}"))
            failures += (len(texts) - same) + (len(texts) - endings.count("stop"))
            if name.startswith("course"):
                failures += len(texts) - memorised
    say(f"\n{'PASS' if failures == 0 else f'FAIL ({failures})'} in {time.perf_counter() - start:.0f} s")
    LOG.write_text("\n".join(report) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
