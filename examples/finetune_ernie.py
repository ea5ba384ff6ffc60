"""Fine-tune ERNIE-4.5 with LoRA in one plain file: load, add LoRA, format, train, save, merge.

The whole course pipeline with no course helpers, to copy into your own project. Your data: a JSONL file
with one {"question": ..., "answer": ...} object per line (or pass --data orca-math for the Hub dataset).

    python finetune_ernie.py --data my_data.jsonl --output my-ernie
    python finetune_ernie.py --model baidu/ERNIE-4.5-21B-A3B-PT --load-in-4bit --data my_data.jsonl

On several GPUs (data parallel: one copy of the model per GPU, each on its own share of every batch):

    accelerate launch --config_file accelerate/ddp.yaml finetune_ernie.py --data my_data.jsonl --output my-ernie

Writes OUTPUT/lora-adapter (small; needs the base model to use) and, unless --no-merge,
OUTPUT/merged-16bit (a standalone model that plain transformers can load). With --serve it then serves
OUTPUT/merged-16bit with `transformers serve` (OpenAI-compatible API, on 127.0.0.1 only), asks it one question
with the `openai` client, checks the greedy answer against in-process `generate`, and stops the server:

    python finetune_ernie.py --data my_data.jsonl --output my-ernie --serve --question "What is 7 x 8?"
"""

import unsloth  # noqa: F401  (first: it patches transformers, peft and trl as they are imported)
from unsloth import FastLanguageModel

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset, load_dataset
from trl import SFTConfig, SFTTrainer

# ERNIE-4.5's chat format plus {% generation %} markers, which assistant_only_loss needs to find the
# answer tokens (ERNIE's own template has none). Renders exactly as the official template does.
TRAINING_CHAT_TEMPLATE = (
    "{%- if not cls_token is defined -%}{%- set cls_token = '<|begin_of_sentence|>' -%}{%- endif -%}"
    "{%- if not sep_token is defined -%}{%- set sep_token = '<|end_of_sentence|>' -%}{%- endif -%}"
    "{{- cls_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'User: ' + message['content'] + '\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- 'Assistant: ' -}}"
    "{% generation %}{{- message['content'] + sep_token -}}{% endgeneration %}"
    "{%- elif message['role'] == 'system' -%}{{- message['content'] + '\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}"
)
# ERNIE-4.5's official chat template (transformers' convert_ernie4_5_tokenizer.py), what a saved model carries:
# llama.cpp, Ollama and servers render conversations with it, and refuse the {% generation %} tags.
OFFICIAL_CHAT_TEMPLATE = (
    '{%- if not add_generation_prompt is defined -%}\n    {%- set add_generation_prompt = true -%}\n{%- endif -%}\n'
    '{%- if not cls_token is defined -%}\n    {%- set cls_token = "<|begin_of_sentence|>" -%}\n{%- endif -%}\n'
    '{%- if not sep_token is defined -%}\n    {%- set sep_token = "<|end_of_sentence|>" -%}\n{%- endif -%}\n'
    '{{- cls_token -}}\n{%- for message in messages -%}\n    {%- if message["role"] == "user" -%}\n'
    '        {{- "User: " + message["content"] + "\\n" -}}\n    {%- elif message["role"] == "assistant" -%}\n'
    '        {{- "Assistant: " + message["content"] + sep_token -}}\n    {%- elif message["role"] == "system" -%}\n'
    '        {{- message["content"] + "\\n" -}}\n    {%- endif -%}\n{%- endfor -%}\n'
    '{%- if add_generation_prompt -%}\n    {{- "Assistant: " -}}\n{%- endif -%}'
)
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
END_OF_TURN = "<|end_of_sentence|>"  # ERNIE closes every assistant turn with it


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="baidu/ERNIE-4.5-0.3B-PT", help="Hub id or local folder")
    parser.add_argument("--data", required=True, help='JSONL of {"question", "answer"} rows, or "orca-math"')
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--load-in-4bit", action="store_true", help="QLoRA; needs a GPU")
    parser.add_argument("--max-seq-length", type=int, default=1024)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=None, help="default: 2 x r")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accumulation", type=int, default=1)
    parser.add_argument("--seed", type=int, default=3407)
    parser.add_argument("--no-packing", action="store_true", help="one example per row (slower on a GPU)")
    parser.add_argument("--no-merge", action="store_true", help="save only the LoRA adapter")
    parser.add_argument("--serve", action="store_true", help="serve the merged model and ask it --question")
    parser.add_argument("--question", default="A box holds 6 eggs. How many eggs are in 4 boxes?")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    if args.serve and args.no_merge:
        parser.error("--serve needs the merged model: transformers serve cannot load an adapter; drop --no-merge")
    return args


def precision():
    """bf16 needs compute capability 8.0+; a T4 (7.5) trains in fp16; a CPU in fp32."""
    if not torch.cuda.is_available():
        return "fp32", torch.float32
    if torch.cuda.get_device_capability()[0] >= 8:
        return "bf16", torch.bfloat16
    return "fp16", torch.float16


def load_rows(data: str) -> Dataset:
    if data == "orca-math":
        rows = load_dataset("microsoft/orca-math-word-problems-200k", split="train[:1%]")
    else:
        rows = Dataset.from_list([json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()])
    missing = {"question", "answer"} - set(rows.column_names)
    if missing:
        raise SystemExit(f"{data}: no column(s) {sorted(missing)}; found {rows.column_names}")
    return rows.map(lambda row: {"messages": [{"role": "user", "content": row["question"]},
                                              {"role": "assistant", "content": row["answer"]}]},
                    remove_columns=rows.column_names)


def main(argv=None):
    args = parse_args(argv)
    precision_name, dtype = precision()
    processes = PartialState(cpu=precision_name == "fp32")  # one per GPU under `accelerate launch`, else one
    print(f"precision: {precision_name}; process {processes.process_index + 1} of {processes.num_processes}")

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model,
        max_seq_length=args.max_seq_length,
        dtype=dtype,
        load_in_4bit=args.load_in_4bit,
        device_map={"": processes.local_process_index} if torch.cuda.is_available() else None,  # one GPU each
    )
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
    model = FastLanguageModel.get_peft_model(
        model,
        r=args.r,
        target_modules=TARGET_MODULES,
        lora_alpha=args.lora_alpha or 2 * args.r,
        lora_dropout=0.0,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=args.seed,
    )

    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=load_rows(args.data),
        args=SFTConfig(
            output_dir=str(args.output / "checkpoints"),
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.grad_accumulation,
            max_steps=args.max_steps,
            learning_rate=args.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=5,
            optim="adamw_8bit",
            weight_decay=0.01,
            logging_steps=5,
            save_strategy="no",
            max_length=args.max_seq_length,
            packing=not args.no_packing,  # several examples per row; Unsloth's CPU backend turns it off
            assistant_only_loss=True,  # train on the answers only
            bf16=precision_name == "bf16",
            fp16=precision_name == "fp16",
            use_cpu=precision_name == "fp32",
            seed=args.seed,
            report_to="none",
        ),
    )
    if trainer.is_world_process_zero():
        print(f"effective batch: {args.batch_size} per GPU x {args.grad_accumulation} accumulation x "
              f"{trainer.args.world_size} processes = "
              f"{args.batch_size * args.grad_accumulation * trainer.args.world_size} sequences per step")
    start = time.perf_counter()
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    print(f"trained {args.max_steps} steps in {time.perf_counter() - start:.0f} s; "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    # What the saved model carries. ERNIE's published generation_config stops only at </s>, but every trained
    # answer ends with <|end_of_sentence|>: stop at both, or generate() runs on. And the official template.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    tokenizer.chat_template = OFFICIAL_CHAT_TEMPLATE
    adapter = args.output / "lora-adapter"
    trainer.save_model(str(adapter))  # every process: FSDP / ZeRO-3 gather shards; one writes
    if not trainer.is_world_process_zero():
        return losses
    model.generation_config.save_pretrained(adapter)  # PEFT saves only the adapter's weights and config
    tokenizer.save_pretrained(adapter)
    tokenizer.save_vocabulary(adapter)  # tokenizer.model: transformers 5 writes only tokenizer.json; GGUF needs it
    print(f"adapter: {adapter}")
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        print("no merge: the weights are sharded across processes; merge the adapter in one process")
    elif not args.no_merge:
        merged = args.output / "merged-16bit"
        model.save_pretrained_merged(str(merged), tokenizer, save_method="merged_16bit")
        tokenizer.save_vocabulary(merged)
        print(f"merged model: {merged}")
    if args.serve:
        serve_and_ask(args.output / "merged-16bit", args.question, args.max_new_tokens)
    return losses


def generate_greedy(folder: Path, question: str, max_new_tokens: int, dtype: str) -> str:
    """The merged model, loaded as its users load it, answering greedily and stopping at the end of the turn."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, device_map="auto")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt").to(model.device)
    stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]  # whatever the config lists
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def serve_and_ask(folder: Path, question: str, max_new_tokens: int) -> str:
    """`transformers serve folder` on 127.0.0.1 and a free port; one streamed greedy question through the
    openai client; the server's process group stopped whatever happens. Exits if the answer differs from
    in-process generate's."""
    from openai import OpenAI

    folder = folder.resolve()
    dtype = "auto" if torch.cuda.is_available() else "float32"  # the same on both sides, or greedy can differ
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = folder.parent / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cuda" if torch.cuda.is_available() else "cpu", "--dtype", dtype]
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env=dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1"))
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never through a proxy
    try:
        while True:
            if server.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise SystemExit(f"transformers serve exited with code {server.returncode} ({log_path}):\n{tail}")
            try:
                direct.open(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:  # not listening yet: still loading the model
                if time.perf_counter() - start > 300:
                    raise SystemExit(f"transformers serve did not answer /health within 300 s; see {log_path}")
                time.sleep(0.25)
        print(f"serving {folder} at http://127.0.0.1:{port}/v1 (/health after {time.perf_counter() - start:.1f} s)")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="not-needed")
        asked, first, pieces = time.perf_counter(), None, []
        for chunk in client.chat.completions.create(model=str(folder), messages=[{"role": "user", "content": question}],
                                                    temperature=0, max_tokens=max_new_tokens, stop=[END_OF_TURN],
                                                    stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter() - asked
                pieces.append(chunk.choices[0].delta.content)
        answer = "".join(pieces)
        print(f"server's answer ({first or 0:.2f} s to the first piece, {time.perf_counter() - asked:.2f} s in all): "
              f"{answer}")
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the whole group: it is the server's own session
            server.wait(timeout=15)
        except ProcessLookupError:  # it had exited already
            pass
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    local = generate_greedy(folder, question, max_new_tokens, dtype)
    if answer != local:
        raise SystemExit(f"the server's greedy answer differs from in-process generate's:\n{answer!r}\n{local!r}")
    print("server's answer == in-process generate's: True")
    return answer


if __name__ == "__main__":
    main()
