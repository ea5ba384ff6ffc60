"""Which model do the notebooks load, and from where? The Hub (or the Hub mirror HF_ENDPOINT names) when it
answers, ModelScope when asked, else the tiny slice; the banner says which, and how to reach the real model."""

from __future__ import annotations

import os
from dataclasses import dataclass

from course_lib.ernie import DEFAULT_MODEL, MODELSCOPE_IDS
from course_lib.language import tr

MODEL_ENV = "ERNIE_COURSE_MODEL"
CHOICES = ("auto", "hub", "tiny", "random-0.3b", "tiny-moe", "modelscope")
HF_MIRROR = "https://hf-mirror.com"  # the public Hub mirror most used in mainland China
MODELSCOPE_SITE = "https://modelscope.cn"
OFFLINE_SOURCES = ("tiny", "tiny-moe", "random-0.3b")  # stand-ins built on this machine, not ERNIE's weights


@dataclass(frozen=True)
class ModelChoice:
    name_or_path: str  # what to pass to from_pretrained
    source: str  # "hub", "mirror" (HF_ENDPOINT), "modelscope", or a stand-in: "tiny", "tiny-moe", "random-0.3b"
    reason: str
    endpoint: str | None = None  # where the weights come from, for "mirror" and "modelscope"

    @property
    def offline(self) -> bool:
        return self.source in OFFLINE_SOURCES

    def banner(self) -> str:
        if self.source == "hub":
            return tr(f"MODEL: {self.name_or_path} from the Hugging Face Hub ({self.reason}).",
                      f"模型：{self.name_or_path}，来自 Hugging Face Hub（{self.reason}）。")
        if self.source == "mirror":
            return tr(f"MODEL: {self.name_or_path} from the Hub MIRROR {self.endpoint} (HF_ENDPOINT; {self.reason}).",
                      f"模型：{self.name_or_path}，来自 Hub 镜像 {self.endpoint}（HF_ENDPOINT；{self.reason}）。")
        if self.source == "modelscope":
            return tr(f"MODEL: the real ERNIE-4.5 weights from ModelScope ({self.endpoint}), downloaded to "
                      f"{self.name_or_path} ({self.reason}).",
                      f"模型：来自魔搭 ModelScope（{self.endpoint}）的 ERNIE-4.5 真实权重，已下载到 "
                      f"{self.name_or_path}（{self.reason}）。")
        what = {
            "tiny": tr(f"the TINY ERNIE-4.5 SLICE, a stand-in for the chat model {DEFAULT_MODEL} (2 layers, 0.5M "
                       f"parameters, pre-trained and chat-trained ~30 s on this machine)",
                       f"离线替身模型，代替对话模型 {DEFAULT_MODEL}（一个很小的 ERNIE-4.5：2 层，50 万参数，"
                       f"在本机预训练并做对话训练约 30 秒）"),
            "tiny-moe": tr("the TINY ERNIE-4.5 MIXTURE-OF-EXPERTS STAND-IN (3 layers, 8 routed experts, top-2)",
                           "MoE 替身模型：一个很小的 ERNIE-4.5 混合专家模型（3 层，8 个路由专家，top-2）"),
            "random-0.3b": tr("a RANDOM-WEIGHT model of ERNIE-4.5-0.3B's full shape (built on this machine)",
                              "与 ERNIE-4.5-0.3B 形状完全相同、权重随机的模型（在本机构建）"),
        }[self.source]
        line = "!" * 100
        return tr(f"{line}\nOFFLINE MODEL: {what}\n  at {self.name_or_path}\n  because {self.reason}.\n"
                  f"  Every cell runs as it would on the real model, but losses and answers are not the real "
                  f"model's.\n{line}",
                  f"{line}\n离线模型：{what}\n  位置：{self.name_or_path}\n  原因：{self.reason}。\n"
                  f"  每个单元格都会像在真实模型上一样运行，但损失和回答都不是真实模型的。\n{line}")


def how_to_reach_the_real_model() -> str:
    """The two ways to the real model from where the Hub is blocked (mainland China), as lines for a banner."""
    return tr(
        f"\n  To use the real model instead:\n"
        f"  - a Hub mirror: put a cell at the very top of the notebook (above '1 · Import Unsloth first') with\n"
        f"        import os; os.environ[\"HF_ENDPOINT\"] = \"{HF_MIRROR}\"\n"
        f"    then restart the kernel (Colab: Runtime > Restart session) and run all cells again. HF_ENDPOINT is read\n"
        f"    once, when huggingface_hub is imported: setting it later does nothing.\n"
        f"  - ModelScope: `pip install modelscope`, then in that top cell\n"
        f"        import os; os.environ[\"{MODEL_ENV}\"] = \"modelscope\"\n"
        f"  README.md, section 'Reaching the model and data from mainland China', has the details",
        f"\n  若要改用真实模型：\n"
        f"  - Hub 镜像：在 notebook 最上方（“1 · 先导入 Unsloth”之前）插入一个单元格，写入\n"
        f"        import os; os.environ[\"HF_ENDPOINT\"] = \"{HF_MIRROR}\"\n"
        f"    然后重启内核（Colab：代码执行程序 > 重启会话），再从头运行所有单元格。HF_ENDPOINT 只在导入\n"
        f"    huggingface_hub 时读取一次，之后再设置不起作用。\n"
        f"  - 魔搭 ModelScope：先 `pip install modelscope`，然后在同一个顶部单元格里写入\n"
        f"        import os; os.environ[\"{MODEL_ENV}\"] = \"modelscope\"\n"
        f"  详见 README.zh.md 的“在中国大陆获取模型和数据”一节")


def unreachable_reason(hub_id: str) -> str:
    """Why the Hub (or the mirror) cannot serve `hub_id`, in words, with what to do about it."""
    from course_lib.environment import endpoint_set_too_late, hub_endpoint, is_mirror

    endpoint, late = hub_endpoint(), endpoint_set_too_late()
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        why = tr(f"HF_HUB_OFFLINE=1 is set, so {hub_id} is not downloaded",
                 f"设置了 HF_HUB_OFFLINE=1，因此不会下载 {hub_id}")
    elif late:
        why = tr(f"HF_ENDPOINT={late} was set after huggingface_hub was imported, so downloads still go to "
                 f"{endpoint}, which is not reachable: restart the kernel and set it in the notebook's first cell",
                 f"HF_ENDPOINT={late} 是在导入 huggingface_hub 之后才设置的，下载仍然指向 {endpoint}，"
                 f"而它无法访问：请重启内核，并在 notebook 的第一个单元格里设置它")
    elif is_mirror(endpoint):
        why = tr(f"the Hub mirror {endpoint} (HF_ENDPOINT) does not answer for {hub_id}",
                 f"Hub 镜像 {endpoint}（HF_ENDPOINT）没有响应 {hub_id}")
    else:
        why = tr(f"the Hugging Face Hub is not reachable from this machine, so {hub_id} cannot be downloaded",
                 f"本机无法访问 Hugging Face Hub，因此无法下载 {hub_id}")
    return why + how_to_reach_the_real_model()


def from_hub(hub_id: str, reason: str) -> ModelChoice:
    """`hub_id` from the Hub, or from the mirror huggingface_hub will download from (HF_ENDPOINT)."""
    from course_lib.environment import hub_endpoint, is_mirror

    endpoint = hub_endpoint()
    if is_mirror(endpoint):
        return ModelChoice(hub_id, "mirror", reason, endpoint)
    return ModelChoice(hub_id, "hub", reason)


def from_modelscope(hub_id: str) -> ModelChoice:
    """Download `hub_id`'s ModelScope copy (course_lib.ernie.MODELSCOPE_IDS) into the work folder, once, with
    the `modelscope` client's snapshot_download; the notebooks then load that local folder."""
    from course_lib.paths import work_dir

    modelscope_id = MODELSCOPE_IDS.get(hub_id)
    if modelscope_id is None:
        known = ", ".join(MODELSCOPE_IDS)
        raise ValueError(tr(f"{MODEL_ENV}=modelscope: the course knows no ModelScope id for {hub_id!r}; it knows "
                            f"{known} (course_lib/ernie.py, MODELSCOPE_IDS).",
                            f"{MODEL_ENV}=modelscope：课程不知道 {hub_id!r} 在魔搭 ModelScope 上的 id；已知的有 "
                            f"{known}（course_lib/ernie.py 中的 MODELSCOPE_IDS）。"))
    try:
        from modelscope import snapshot_download
    except ImportError as error:
        raise ModuleNotFoundError(tr(
            f"{MODEL_ENV}=modelscope needs the ModelScope client, which is not installed: run `pip install "
            f"modelscope` (in a notebook: `!pip install modelscope`), restart the kernel and run again. Or use a "
            f"Hub mirror instead: HF_ENDPOINT={HF_MIRROR}.",
            f"{MODEL_ENV}=modelscope 需要魔搭 ModelScope 的客户端，但它没有安装：请运行 `pip install modelscope`"
            f"（在 notebook 里：`!pip install modelscope`），重启内核后再运行。也可以改用 Hub 镜像："
            f"HF_ENDPOINT={HF_MIRROR}。")) from error
    folder = work_dir() / "models" / "modelscope" / modelscope_id
    path = snapshot_download(modelscope_id, local_dir=str(folder))
    reason = tr(f"{MODEL_ENV}=modelscope asked for it; ModelScope id {modelscope_id}",
                f"由 {MODEL_ENV}=modelscope 指定；ModelScope id 为 {modelscope_id}")
    return ModelChoice(str(path), "modelscope", reason, MODELSCOPE_SITE)


def resolve_model(hub_id: str = DEFAULT_MODEL, mode: str | None = None) -> ModelChoice:
    """`mode` (default: $ERNIE_COURSE_MODEL, else "auto") is one of CHOICES.

    auto: `hub_id` if the Hub (or the mirror HF_ENDPOINT names) answers, else the tiny slice, with a banner
    saying how to reach the real model. hub: `hub_id`, no check. modelscope: download `hub_id`'s ModelScope
    copy and use that folder. tiny / random-0.3b / tiny-moe: build (once) and use the local stand-in, e.g. in CI.
    """
    from course_lib.environment import hub_reachable
    from course_lib.tiny_ernie import ensure_tiny_ernie

    explicit = mode or os.environ.get(MODEL_ENV)
    mode = (explicit or "auto").strip().lower()
    if mode not in CHOICES:
        raise ValueError(tr(f"{MODEL_ENV}={mode!r} is not one of {', '.join(CHOICES)}.",
                            f"{MODEL_ENV}={mode!r} 不是 {', '.join(CHOICES)} 之一。"))
    asked = tr(f"{MODEL_ENV}={mode} asked for it", f"由 {MODEL_ENV}={mode} 指定")
    if mode == "hub":
        return from_hub(hub_id, asked)
    if mode == "modelscope":
        return from_modelscope(hub_id)
    if mode == "auto":
        if hub_reachable(hub_id):
            return from_hub(hub_id, tr("it is reachable", "可以访问"))
        return ModelChoice(str(ensure_tiny_ernie("tiny")), "tiny", unreachable_reason(hub_id))
    if mode == "tiny-moe":
        from course_lib.tiny_ernie_moe import ensure_tiny_ernie_moe

        return ModelChoice(str(ensure_tiny_ernie_moe()), mode, asked)
    shape = "tiny" if mode == "tiny" else "0.3b"
    return ModelChoice(str(ensure_tiny_ernie(shape)), mode, asked)
