"""Fine-tune ERNIE-4.5 with LoRA in one plain file: load, add LoRA, format, train, save, merge.

The whole course pipeline with no course helpers, to copy into your own project. Your data: a JSONL file
with one {"question": ..., "answer": ...} object per line (or pass --data orca-math for the Hub dataset).

    python finetune_ernie.py --data my_data.jsonl --output my-ernie
    python finetune_ernie.py --model baidu/ERNIE-4.5-21B-A3B-PT --load-in-4bit --data my_data.jsonl

On several GPUs (data parallel: one copy of the model per GPU, each on its own share of every batch):

    accelerate launch --config_file accelerate/ddp.yaml finetune_ernie.py --data my_data.jsonl --output my-ernie

Writes OUTPUT/lora-adapter (small; needs the base model to use) and, unless --no-merge,
OUTPUT/merged-16bit (a standalone model that plain transformers can load).
"""

import unsloth  # noqa: F401  (first: it patches transformers, peft and trl as they are imported)
from unsloth import FastLanguageModel

import argparse
import json
import time
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
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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
    return parser.parse_args(argv)


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

    trainer.save_model(str(args.output / "lora-adapter"))  # every process: FSDP / ZeRO-3 gather shards; one writes
    if not trainer.is_world_process_zero():
        return losses
    print(f"adapter: {args.output / 'lora-adapter'}")
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        print("no merge: the weights are sharded across processes; merge the adapter in one process")
    elif not args.no_merge:
        model.save_pretrained_merged(str(args.output / "merged-16bit"), tokenizer, save_method="merged_16bit")
        print(f"merged model: {args.output / 'merged-16bit'}")
    return losses


if __name__ == "__main__":
    main()
