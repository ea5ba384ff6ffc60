"""A Hugging Face token for `push_to_hub`, fetched without ever showing it (tests/secret_scan.py finds keys that
were pasted into the repository's files instead).

The token comes from, in order: Colab's Secrets panel (the key icon, name HF_TOKEN), the HF_TOKEN environment
variable, then a hidden prompt where someone can type (never under nbmake or CI).
"""

from __future__ import annotations

import os
import sys

from course_lib.language import tr

TOKEN_NAME = "HF_TOKEN"
HOW_TO_GET_ONE = (f"Create a token with write access at https://huggingface.co/settings/tokens, then on Colab add it "
                  f"in the Secrets panel (key icon on the left) as {TOKEN_NAME} and allow this notebook to read it; "
                  f"elsewhere run `export {TOKEN_NAME}=...` before starting Jupyter. Never paste it into a cell.")
HOW_TO_GET_ONE_ZH = (f"在 https://huggingface.co/settings/tokens 创建一个有写权限的 token，然后在 Colab 的 Secrets 面板"
                     f"（左侧的钥匙图标）中以 {TOKEN_NAME} 为名添加它，并允许这个 notebook 读取；在其他地方，启动 "
                     f"Jupyter 之前运行 `export {TOKEN_NAME}=...`。绝不要把它粘贴到单元格里。")

class Token(str):
    """The token as a plain str (pass it as `token=`), whose repr never shows it: a cell that ends in `token`,
    a list holding it, or a traceback's variables print `<HF token from ...: hf_***>`."""

    def __new__(cls, value: str, source: str):
        token = super().__new__(cls, value)
        token.source = source
        return token

    def __repr__(self) -> str:
        return f"<HF token from {self.source}: {self[:3]}***>"


def colab_secret(name: str = TOKEN_NAME) -> tuple[str | None, str]:
    """(value, why not) from Colab's Secrets panel; (None, reason) off Colab or when it is not set or allowed."""
    try:
        from google.colab import userdata  # only exists on Colab
    except ImportError:
        return None, "not on Colab"
    try:
        return userdata.get(name), ""
    except Exception as error:  # noqa: BLE001 - SecretNotFoundError, NotebookAccessError, TimeoutException...
        return None, f"Colab secret {name}: {type(error).__name__}"


def can_ask() -> bool:
    """True where a hidden prompt can be answered: a terminal, or a notebook frontend that accepts input."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return bool(getattr(shell.kernel, "_allow_stdin", False))  # False under nbmake/nbclient
    return sys.stdin is not None and sys.stdin.isatty()


def hf_token(required: bool = False, ask: bool | None = None) -> Token | None:
    """The Hugging Face token from Colab's Secrets, else $HF_TOKEN, else a hidden prompt (ask=None: only
    where one can be answered). None when there is none, or RuntimeError saying how to set one (required)."""
    value, colab_why = colab_secret()
    source, tried = "Colab secrets", [colab_why or "Colab secret: empty", f"${TOKEN_NAME}: not set"]
    if not value:
        value, source = os.environ.get(TOKEN_NAME, "").strip(), f"the {TOKEN_NAME} environment variable"
    if not value and (can_ask() if ask is None else ask):
        from getpass import getpass

        try:
            asked = tr("Hugging Face token (hidden): ", "Hugging Face token（输入不显示）：")
            value, source = getpass(asked).strip(), "the prompt"
            tried.append("prompt: nothing typed")
        except Exception as error:  # noqa: BLE001 - a frontend without input raises StdinNotImplementedError
            value = ""
            tried.append(f"prompt: {type(error).__name__}")
    elif not value:
        tried.append("prompt: not asked (ask=False)" if ask is False else "prompt: nobody can answer one here")
    if value:
        return Token(value, source)
    if required:
        raise RuntimeError(tr(f"no Hugging Face token found ({'; '.join(tried)}). {HOW_TO_GET_ONE}",
                              f"没有找到 Hugging Face token（{'; '.join(tried)}）。{HOW_TO_GET_ONE_ZH}"))
    return None
