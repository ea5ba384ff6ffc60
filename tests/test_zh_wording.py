"""The Chinese edition's words: one term for each thing, and none of the calques an earlier version had.
GPU memory is 显存 (内存 is the CPU's), masked labels are 屏蔽, a tolerance check is 验证, the offline
stand-in is 离线替身模型 (the mixture-of-experts one: MoE 替身模型), the helper package is 辅助代码.
Scanned: the Chinese notebooks and guides, and the Chinese messages in course_lib (inside tr(...))."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHINESE = sorted([*ROOT.glob("notebooks/zh/*.py"), *ROOT.glob("README.zh.md"), *ROOT.glob("docs/*.zh.md"),
                  *(p for p in ROOT.glob("course_lib/*.py") if p.name != "data_zh.py")])  # its problems buy 笔记本
WRONG = {  # pattern: what to write instead
    r"内存账单": "训练要占多少显存",
    r"只为自己的权重付费": "只占它自己权重的显存",
    r"管道代码": "辅助代码",
    r"光秃秃": "没有适配器的基座",
    r"一摞": "一串",
    r"掩盖": "屏蔽",
    r"证明": "验证",
    r"小切片|ERNIE-4\.5 切片": "离线替身模型",
    r"(?<!离线)(?<!MoE )替身模型": "离线替身模型",
    r"(GPU|显卡) ?(的)?内存": "显存",
    r"笔记本(?!电脑)": "notebook",  # 笔记本 is a paper notebook (or a laptop: 笔记本电脑)
    r"聊天训练": "对话训练",
}


def wrong_words(text: str) -> list[str]:
    return [f"{match.group(0)!r} (write {instead})" for pattern, instead in WRONG.items()
            for match in re.finditer(pattern, text)]


@pytest.mark.parametrize("path", CHINESE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_chinese_text_uses_the_courses_terms(path):
    assert wrong_words(path.read_text(encoding="utf-8")) == []


def test_the_scan_finds_the_old_wording():
    old = ("## 3 · 全参数微调：所有参数，以及它们的内存账单\n冻结的模型只为自己的权重付费。（管道代码）\n"
           "只剩下光秃秃的基座；一摞结构相同的块；问题应该被掩盖；证明合并是正确的；小切片；一个很小的替身模型；"
           "GPU 内存；在笔记本最上方")
    assert len(wrong_words(old)) == 11
