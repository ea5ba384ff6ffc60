"""The course doctor: checks for the failures learners hit most, each with its fix.

    from course_lib.doctor import doctor
    doctor()                                  # after the environment report: GPU runtime, import order, precision
    doctor(trainer=trainer)                   # after SFTTrainer(...): also precision vs model, template, labels
    doctor(error=err, trainer=trainer)        # after a failure: out of memory, old TRL arguments, template

Each check is a small function that takes plain values (a compute capability, a dict of keyword arguments...) and
returns a list of `Problem`s, so it can be tested without a GPU; the chat-template and label checks are
course_lib.checks' own. `doctor` gathers those values from the objects it is given and prints the result.
"""

from __future__ import annotations

import re
import sys

from course_lib.checks import TEMPLATE_FIX, Problem, check_chat_template, check_labels
from course_lib.language import tr

DETECT = "detect"  # doctor's default: look at this machine
PATCHED_BY_UNSLOTH = ("transformers", "trl", "peft")  # what Unsloth patches as it is imported (its own list)

# Keyword arguments that old tutorials pass to SFTTrainer; TRL 1.x rejects them ("unexpected keyword argument").
TRAINER_RENAMED = {"tokenizer": "processing_class"}
TRAINER_TO_CONFIG = {  # name in old SFTTrainer calls -> its SFTConfig field today
    "dataset_text_field": "dataset_text_field",
    "max_seq_length": "max_length",
    "packing": "packing",
    "dataset_num_proc": "dataset_num_proc",
    "dataset_kwargs": "dataset_kwargs",
}
# Renamed config fields. TRL's SFTConfig rejects max_seq_length; the subclass Unsloth substitutes for it has
# accepted it (its 2025 releases did), so copied code may run without saying which limit applies: flag it anyway.
CONFIG_RENAMED = {"max_seq_length": "max_length", "evaluation_strategy": "eval_strategy"}
CHECKED_ZH = {"GPU runtime": "GPU 运行时", "import order": "导入顺序", "precision": "精度", "chat template": "对话模板",
              "labels": "labels", "error": "错误"}  # the report's "checked:" names in Chinese


# ---- the checks -------------------------------------------------------------------------------------------------

def check_gpu_runtime(in_colab: bool, cuda_available: bool) -> list[Problem]:
    """Colab without a GPU runtime: the most common first-cell failure. Elsewhere a CPU is a supported path."""
    if in_colab and not cuda_available:
        return [Problem("gpu runtime", tr("this Colab runtime has no GPU (torch.cuda.is_available() is False): every "
                                          "notebook would fall back to the slow CPU path",
                                          "这个 Colab 运行时没有 GPU（torch.cuda.is_available() 为 False）：每个 "
                                          "notebook 都会退回到很慢的 CPU 路径"),
                        tr("Runtime → Change runtime type → T4 GPU → Save, then run the notebook again from the top "
                           "(the new runtime forgets installed packages and variables)",
                           "代码执行程序 → 更改运行时类型 → T4 GPU → 保存，然后从头重新运行 notebook"
                           "（新的运行时不保留已安装的包和变量）"))]
    return []


def check_import_order(modules=None) -> list[Problem]:
    """Was unsloth imported before transformers, trl and peft? `modules` is the names in import order (default:
    sys.modules, whose keys are kept in the order modules were first imported)."""
    order = list(sys.modules if modules is None else modules)
    position = {}
    for index, name in enumerate(order):
        # Unsloth re-inserts its own top-level entry at the end of its import; its submodules and unsloth_zoo
        # keep the moment it started, so any of them counts as "unsloth".
        key = "unsloth" if name.split(".")[0] in ("unsloth", "unsloth_zoo") else name
        position.setdefault(key, index)
    imported = [name for name in PATCHED_BY_UNSLOTH if name in position]
    restart = tr("Runtime → Restart session (a running Python cannot un-import a module), then run from the top: "
                 "`import unsloth` must be the first import, as in section 1 of every notebook",
                 "代码执行程序 → 重启会话（运行中的 Python 无法撤销已导入的模块），然后从头运行："
                 "`import unsloth` 必须是第一个导入，和每个 notebook 的第 1 节一样")
    if "unsloth" not in position:
        if not imported:
            return []
        return [Problem("import order", tr(f"{', '.join(imported)} imported, but unsloth was never imported: its "
                                           "speed-ups and memory savings are missing",
                                           f"已导入 {', '.join(imported)}，但从未导入 unsloth：它带来的加速和"
                                           "显存节省都没有了"), restart)]
    early = [name for name in imported if position[name] < position["unsloth"]]
    if early:
        return [Problem("import order", tr(f"{', '.join(early)} imported before unsloth: Unsloth patches them as it "
                                           "is imported, so it could not; expect slower training, more memory, or "
                                           "crashes on a CPU",
                                           f"{', '.join(early)} 在 unsloth 之前就导入了：Unsloth 在被导入时给它们打补丁，"
                                           "所以这次没能打上；训练会更慢、占用更多内存，或在 CPU 上崩溃"), restart)]
    return []


def check_precision(capability, bf16: bool, fp16: bool, model_dtype: str | None = None) -> list[Problem]:
    """The trainer's bf16/fp16 against the GPU (`capability`, e.g. (7, 5) for a T4; None for no GPU) and against
    the dtype the model was loaded in ("float16", "bfloat16", ...)."""
    same = tr("load and train in the same precision, the one the course chooses: dtype=precision.torch_dtype in "
              "from_pretrained, bf16=precision.bf16 and fp16=precision.fp16 in SFTConfig",
              "用同一种精度加载和训练，也就是课程选的那一种：from_pretrained 中 dtype=precision.torch_dtype，"
              "SFTConfig 中 bf16=precision.bf16 和 fp16=precision.fp16")
    if bf16 and fp16:
        return [Problem("precision", tr("bf16=True and fp16=True together: the trainer can use only one",
                                        "bf16=True 和 fp16=True 同时设置：训练器只能用其中一个"), same)]
    if capability is None and (bf16 or fp16):
        flag = "bf16" if bf16 else "fp16"
        return [Problem("precision", tr(f"{flag}=True, but there is no GPU: a CPU trains in fp32 (mixed precision "
                                        "there is emulated or refused)",
                                        f"{flag}=True，但这里没有 GPU：CPU 用 fp32 训练（那里的混合精度只是模拟，或被拒绝）"),
                        tr("bf16=False, fp16=False and use_cpu=True in SFTConfig (precision.bf16 and precision.fp16 "
                           "are both False on a CPU)", "在 SFTConfig 中设 bf16=False、fp16=False 和 use_cpu=True"
                           "（在 CPU 上 precision.bf16 和 precision.fp16 都是 False）"))]
    if bf16 and capability[0] < 8:
        major, minor = capability
        return [Problem("precision", tr(f"bf16=True on a GPU of compute capability {major}.{minor}: bf16 needs 8.0 "
                                        "or more (A100, L4, H100); a T4 is 7.5",
                                        f"在计算能力 {major}.{minor} 的 GPU 上设了 bf16=True：bf16 需要 8.0 或以上"
                                        "（A100、L4、H100）；T4 是 7.5"),
                        tr("fp16=True, bf16=False in SFTConfig and dtype=torch.float16 in from_pretrained: the course's "
                           "precision = env.choose_precision(card.capability) gives these",
                           "SFTConfig 中设 fp16=True、bf16=False，from_pretrained 中设 dtype=torch.float16："
                           "课程的 precision = env.choose_precision(card.capability) 给出的就是这些"))]
    dtype = (model_dtype or "").replace("torch.", "")
    if bf16 and dtype == "float16":
        return [Problem("precision", tr("the model was loaded in float16 but the trainer asks for bf16: Unsloth "
                                        "stops with 'Model is in float16 precision but you want to use bfloat16 "
                                        "precision'", "模型以 float16 加载，训练器却要求 bf16：Unsloth 会报错停下："
                                        "'Model is in float16 precision but you want to use bfloat16 precision'"), same)]
    if fp16 and dtype == "bfloat16":
        return [Problem("precision", tr("the model was loaded in bfloat16 but the trainer asks for fp16: Unsloth "
                                        "stops with 'Model is in bfloat16 precision but you want to use float16 "
                                        "precision'", "模型以 bfloat16 加载，训练器却要求 fp16：Unsloth 会报错停下："
                                        "'Model is in bfloat16 precision but you want to use float16 precision'"), same)]
    return []


def check_trainer_kwargs(kwargs) -> list[Problem]:
    """Keyword arguments meant for SFTTrainer (a dict, or just their names) that TRL 1.x no longer takes there."""
    problems = []
    for name in kwargs:
        if name in TRAINER_RENAMED:
            problems.append(Problem("trl arguments", tr(f"SFTTrainer({name}=...) is the old name",
                                                        f"SFTTrainer({name}=...) 是旧名字"),
                                    f"SFTTrainer({TRAINER_RENAMED[name]}={name}, ...)"))
        elif name in TRAINER_TO_CONFIG:
            field = TRAINER_TO_CONFIG[name]
            problems.append(Problem("trl arguments", tr(f"SFTTrainer({name}=...) is no longer a trainer argument",
                                                        f"SFTTrainer({name}=...) 已不再是训练器的参数"),
                                    tr(f"move it into SFTConfig as {field}=... and pass that config as args=...",
                                       f"把它移到 SFTConfig 中写成 {field}=...，再把这个配置作为 args=... 传入")))
    return problems


def check_config_kwargs(kwargs) -> list[Problem]:
    """Keyword arguments meant for SFTConfig (a dict, or just their names) that were renamed."""
    return [Problem("trl arguments", tr(f"SFTConfig({name}=...) is the old name", f"SFTConfig({name}=...) 是旧名字"),
                    f"SFTConfig({CONFIG_RENAMED[name]}=...)")
            for name in kwargs if name in CONFIG_RENAMED]


def is_out_of_memory(error: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        return True
    return "out of memory" in str(error).lower()


def oom_advice(batch: int | None = None, accumulation: int = 1, max_length: int | None = None, r: int | None = None,
               load_in_4bit: bool | None = None, gradient_checkpointing: bool | None = None) -> list[str]:
    """What to lower after an out-of-memory error, in the order that costs the least: batch size (keeping the
    effective batch with accumulation), max_length, LoRA r, 4-bit loading, gradient checkpointing."""
    steps = []
    if batch is None:
        steps.append(tr("halve per_device_train_batch_size and double gradient_accumulation_steps: the effective "
                        "batch stays the same", "把 per_device_train_batch_size 减半、gradient_accumulation_steps "
                        "加倍：有效 batch 不变"))
    elif batch > 1:
        steps.append(tr(f"per_device_train_batch_size {batch} -> {batch // 2} and gradient_accumulation_steps "
                        f"{accumulation} -> {accumulation * 2}: the effective batch stays {batch * accumulation}",
                        f"per_device_train_batch_size {batch} -> {batch // 2}，gradient_accumulation_steps "
                        f"{accumulation} -> {accumulation * 2}：有效 batch 仍是 {batch * accumulation}"))
    if max_length is None or max_length > 128:  # a word problem in ERNIE's chat format is ~100-400 tokens
        now = f"max_length {max_length} -> {max_length // 2}" if max_length else tr("lower max_length", "调低 max_length")
        steps.append(tr(f"{now} in SFTConfig (and MAX_SEQ_LENGTH): notebook 3's histogram shows how long the examples "
                        "are; longer ones are cut", f"SFTConfig 中 {now}（MAX_SEQ_LENGTH 也一样）：notebook 3 的直方图"
                        "显示了样本有多长；更长的样本会被截断"))
    if r is None or r > 4:
        steps.append(f"LoRA r {r} -> {r // 2}, lora_alpha -> {r}" if r else
                     tr("a lower LoRA r (lora_alpha = 2r)", "更小的 LoRA r（lora_alpha = 2r）"))
    if not load_in_4bit:
        steps.append(tr("load_in_4bit=True in FastLanguageModel.from_pretrained (QLoRA): the blocks' Linear weights "
                        "in 4 bits, about half the model's 16-bit size at 0.3B (the embeddings stay 16-bit)",
                        "在 FastLanguageModel.from_pretrained 中设 load_in_4bit=True（QLoRA）：块内 Linear 权重用 "
                        "4 bit，0.3B 时约为模型 16-bit 大小的一半（嵌入层保持 16-bit）"))
    if not gradient_checkpointing:
        steps.append(tr('use_gradient_checkpointing="unsloth" in get_peft_model (and gradient_checkpointing=True in '
                        "SFTConfig): recompute activations instead of keeping them",
                        'get_peft_model 中设 use_gradient_checkpointing="unsloth"（SFTConfig 中设 '
                        "gradient_checkpointing=True）：重新计算激活值，而不是保存它们"))
    steps.append(tr("then Runtime → Restart session and run from the top: memory held by the failed step is not freed",
                    "然后 代码执行程序 → 重启会话，从头运行：失败那一步占用的显存不会被释放"))
    return steps


def check_error(error: BaseException, settings: dict | None = None) -> list[Problem]:
    """Explain an exception a cell raised: out of memory, an old TRL keyword, the chat template, bf16."""
    message = str(error)
    if is_out_of_memory(error):
        settings = settings or {}
        steps = oom_advice(settings.get("batch"), settings.get("accumulation") or 1, settings.get("max_length"),
                           settings.get("r"), settings.get("load_in_4bit"), settings.get("gradient_checkpointing"))
        return [Problem("out of memory", tr("the GPU ran out of memory", "GPU 显存不足"),
                        tr("in this order, one at a time:", "按这个顺序，一次改一项：")
                        + "".join(f"\n      ({i}) {step}" for i, step in enumerate(steps, 1)))]
    keyword = re.search(r"unexpected keyword argument '(\w+)'", message)
    if isinstance(error, TypeError) and keyword:
        name = keyword.group(1)
        found = check_config_kwargs([name]) if "SFTConfig" in message or "Arguments" in message else []
        return found or check_trainer_kwargs([name]) or check_config_kwargs([name])
    if "training-compatible" in message or ("generation" in message and "chat template" in message):
        return [Problem("chat template", tr("TRL refused the chat template: with assistant_only_loss=True it needs "
                                            "{% generation %} markers to tell the answer tokens apart",
                                            "TRL 拒绝了这个对话模板：assistant_only_loss=True 需要 {% generation %} "
                                            "标记来区分答案的 token"), TEMPLATE_FIX)]
    if "bf16" in message and ("doesn't support" in message or "requires" in message):
        return [Problem("precision", tr(f"the trainer refused bf16: {message.splitlines()[0]}",
                                        f"训练器拒绝了 bf16：{message.splitlines()[0]}"),
                        tr("pass bf16=precision.bf16, fp16=precision.fp16 (and use_cpu=True without a GPU) to SFTConfig",
                           "给 SFTConfig 传 bf16=precision.bf16、fp16=precision.fp16（没有 GPU 时再加 use_cpu=True）"))]
    return []


# ---- the one call -----------------------------------------------------------------------------------------------

def _model_settings(model) -> dict:
    """LoRA r, 4-bit and dtype of a (PEFT) model, where they can be read."""
    found = {}
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and peft_config:
        found["r"] = getattr(next(iter(peft_config.values())), "r", None)
    found["load_in_4bit"] = bool(getattr(model, "is_loaded_in_4bit", False))
    config = getattr(model, "config", None)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if dtype is None and hasattr(model, "get_input_embeddings"):
        dtype = model.get_input_embeddings().weight.dtype
    found["dtype"] = str(dtype).replace("torch.", "") if dtype is not None else None
    return found


def doctor(model=None, tokenizer=None, training_args=None, trainer=None, *, error=None,
           capability=DETECT, in_colab: bool | None = None, modules=None, show: bool = True) -> list[Problem]:
    """Run every check the given objects allow, print each problem with its fix (or "no problems found"), and
    return the problems. `capability` (e.g. (7, 5); None for no GPU), `in_colab` and `modules` (names in import
    order) default to this machine's; pass them to check another situation."""
    import course_lib.environment as env

    if trainer is not None:
        model = model if model is not None else trainer.model
        tokenizer = tokenizer if tokenizer is not None else getattr(trainer, "processing_class", None)
        training_args = training_args if training_args is not None else trainer.args
    if capability == DETECT:
        card = env.gpu()
        capability = card.capability if card else None
    in_colab = env.in_colab() if in_colab is None else in_colab
    problems, checked = [], ["GPU runtime", "import order", "precision"]

    problems += check_gpu_runtime(in_colab, capability is not None)
    problems += check_import_order(modules)
    try:
        env.choose_precision(capability)  # raises if $ERNIE_COURSE_PRECISION asks for what this machine cannot do
    except ValueError as refused:
        problems.append(Problem("precision", str(refused), tr(f"unset {env.PRECISION_ENV}, or set it to fp16 or fp32",
                                                              f"取消 {env.PRECISION_ENV}，或把它设为 fp16 或 fp32")))
    model_settings = _model_settings(model) if model is not None else {}
    if training_args is not None:
        problems += check_precision(capability, bool(training_args.bf16), bool(training_args.fp16),
                                    model_settings.get("dtype"))
    assistant_only = bool(getattr(training_args, "assistant_only_loss", False))
    if tokenizer is not None and (training_args is None or assistant_only):
        checked.append("chat template")
        problems += check_chat_template(tokenizer)
    if trainer is not None:
        checked.append("labels")
        try:
            batch = next(iter(trainer.get_train_dataloader()))
            problems += check_labels(batch, answers_only=assistant_only)
        except Exception as failed:  # a batch that cannot be built is itself the finding
            problems.append(Problem("labels", tr(f"could not build a training batch: {type(failed).__name__}: {failed}",
                                                 f"无法构建训练 batch：{type(failed).__name__}: {failed}"),
                                    tr("read the error above; the dataset needs a `messages` column (notebook 3)",
                                       "阅读上面的错误；数据集需要一个 `messages` 列（notebook 3）")))
    if error is not None:
        checked.append("error")
        settings = dict(model_settings)
        if training_args is not None:
            settings.update(batch=training_args.per_device_train_batch_size,
                            accumulation=training_args.gradient_accumulation_steps,
                            max_length=getattr(training_args, "max_length", None),
                            gradient_checkpointing=training_args.gradient_checkpointing)
        found = check_error(error, settings)
        problems += found or [Problem("error", f"{type(error).__name__}: {error}", tr(
            "not one the doctor knows: read the traceback's last lines; docs/teaching.md lists where classes fall behind",
            "doctor 不认识这个错误：请阅读 traceback 的最后几行；docs/teaching.md 列出了课程中容易出错的地方"))]
    if show:
        print(report(problems, checked))
    return problems


def report(problems: list[Problem], checked: list[str]) -> str:
    if not problems:
        return tr(f"doctor: no problems found (checked: {', '.join(checked)})",
                  f"doctor：没有发现问题（已检查：{'、'.join(CHECKED_ZH.get(c, c) for c in checked)}）")
    return tr(f"doctor: {len(problems)} problem(s)\n", f"doctor：发现 {len(problems)} 个问题\n") + "\n".join(
        str(p) for p in problems)
