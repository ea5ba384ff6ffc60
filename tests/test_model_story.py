"""The default model is told truly: baidu/ERNIE-4.5-0.3B-PT is the post-trained (chat) model ("-PT" = PyTorch
weights); the pre-trained base model is -Base-PT (its model card: "The Base model only supports text
completion"). An earlier version of the course called the default a base model; these phrases must not return,
in either edition, the docs or the code."""

import re
from pathlib import Path

import pytest

from course_lib import ernie

ROOT = Path(__file__).resolve().parent.parent
TOLD_IN = sorted([*ROOT.glob("notebooks/*/*.py"), *ROOT.glob("docs/*.md"), *ROOT.glob("README*.md"),
                  *ROOT.glob("course_lib/*.py"), *ROOT.glob("examples/*.py")])
WRONG = [  # what the course said, in English and in Chinese
    r"PT\s*=\s*pre-?trained",
    r"\*base\* model",
    r"base model does not stop",
    r"never taught to answer",
    r"0\.3B-PT[^\n]{0,40}\bis a base model",
    r"(score|ask) the base model",
    r"基座\*模型",
    r"问问基座模型",
    r"给基座模型打分",
    r"预训练模型，还没有学过对话",
]


def wrong_claims(text: str) -> list[str]:
    return [match.group(0) for pattern in WRONG for match in re.finditer(pattern, text, flags=re.IGNORECASE)]


@pytest.mark.parametrize("path", TOLD_IN, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_calls_the_chat_model_a_base_model(path):
    assert wrong_claims(path.read_text(encoding="utf-8")) == []


def test_the_scan_finds_the_old_story():
    old = ("The course's default is ERNIE-4.5-0.3B-PT: 0.36B parameters, a *base* model (PT = pre-trained, not "
           "yet taught to chat).\n| 0:10 | setup | a base model does not stop |\n"
           "课程默认使用 ERNIE-4.5-0.3B-PT："
           "一个 0.36B 参数的*基座*模型（PT = pre-trained，预训练模型，还没有学过对话）")
    assert len(wrong_claims(old)) == 6


def test_the_model_ids_say_which_is_which():
    assert ernie.DEFAULT_MODEL == "baidu/ERNIE-4.5-0.3B-PT" and ernie.BASE_MODEL == "baidu/ERNIE-4.5-0.3B-Base-PT"
    assert ernie.LARGE_BASE_MODEL == ernie.LARGE_MODEL.replace("-PT", "-Base-PT")
