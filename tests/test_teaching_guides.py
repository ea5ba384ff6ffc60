"""docs/teaching.zh.md is kept beside docs/teaching.md: the same sections in the same order, and the same code
blocks, so that a teacher reading either one runs the same commands. (The prose is the translator's.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGLISH, CHINESE = ROOT / "docs" / "teaching.md", ROOT / "docs" / "teaching.zh.md"


def sections(text: str) -> int:
    return len(re.findall(r"^## ", text, flags=re.MULTILINE))


def code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```\w*\n(.*?)```", text, flags=re.S)]


def differences(english: str, chinese: str) -> list[str]:
    found = []
    if sections(english) != sections(chinese):
        found.append(f"{sections(english)} sections in English, {sections(chinese)} in Chinese")
    en_code, zh_code = code_blocks(english), code_blocks(chinese)
    found += [f"code block {i}: English {a!r}, Chinese {b!r}" for i, (a, b) in enumerate(zip(en_code, zh_code), 1)
              if re.sub(r"\s+", " ", a) != re.sub(r"\s+", " ", b)]
    if len(en_code) != len(zh_code):
        found.append(f"{len(en_code)} code blocks in English, {len(zh_code)} in Chinese")
    return found


def test_the_chinese_guide_has_the_english_sections_and_code():
    assert differences(ENGLISH.read_text(), CHINESE.read_text()) == [], \
        "docs/teaching.md changed: update docs/teaching.zh.md to match"


def test_each_guide_links_the_other():
    assert "(teaching.zh.md)" in ENGLISH.read_text() and "(teaching.md)" in CHINESE.read_text()


def test_a_new_english_section_or_command_is_caught():
    english, chinese = ENGLISH.read_text(), CHINESE.read_text()
    assert differences(english + "\n## A new section\n", chinese)
    changed = english.replace("--set MAX_STEPS=30", "--set MAX_STEPS=40")
    assert any("code block" in line for line in differences(changed, chinese))
