"""A Hugging Face token for `push_to_hub`, fetched without ever showing it, and a scanner that finds keys that
were pasted into files (a notebook's saved outputs included) before they are committed.

The token comes from, in order: Colab's Secrets panel (the key icon, name HF_TOKEN), the HF_TOKEN environment
variable, then a hidden prompt where someone can type (never under nbmake or CI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TOKEN_NAME = "HF_TOKEN"
HOW_TO_GET_ONE = (f"Create a token with write access at https://huggingface.co/settings/tokens, then on Colab add it "
                  f"in the Secrets panel (key icon on the left) as {TOKEN_NAME} and allow this notebook to read it; "
                  f"elsewhere run `export {TOKEN_NAME}=...` before starting Jupyter. Never paste it into a cell.")

# Shapes of secrets worth stopping a commit for. The look-behinds keep words such as "task-list" or
# "graph_hf_..." from matching in the middle.
SECRET_PATTERNS = {
    "Hugging Face token": re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}"),
    "OpenAI/Anthropic-style key": re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"),
    "GitHub token": re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Google API key": re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"),
    "Slack token": re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


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
            value, source = getpass("Hugging Face token (hidden): ").strip(), "the prompt"
            tried.append("prompt: nothing typed")
        except Exception as error:  # noqa: BLE001 - a frontend without input raises StdinNotImplementedError
            value = ""
            tried.append(f"prompt: {type(error).__name__}")
    elif not value:
        tried.append("prompt: not asked (ask=False)" if ask is False else "prompt: nobody can answer one here")
    if value:
        return Token(value, source)
    if required:
        raise RuntimeError(f"no Hugging Face token found ({'; '.join(tried)}). {HOW_TO_GET_ONE}")
    return None


def redact(text: str, *secrets: str) -> str:
    """`text` with every secret-shaped string, $HF_TOKEN's value and `secrets` replaced by their first 3
    characters and ***."""
    for secret in [*secrets, os.environ.get(TOKEN_NAME, "")]:
        if len(secret) >= 8:  # shorter values would blank out ordinary words
            text = text.replace(secret, secret[:3] + "***")
    for pattern in SECRET_PATTERNS.values():
        text = pattern.sub(lambda match: match.group()[:3] + "***", text)
    return text


def find_secrets(text: str) -> list[tuple[int, str, str]]:
    """(line number from 1, kind, redacted match) for every secret-shaped string in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in SECRET_PATTERNS.items():
            found += [(number, kind, redact(match.group())) for match in pattern.finditer(line)]
    return found


def scan_files(paths, root=None) -> list[str]:
    """"path:line: kind (redacted)" for every secret-shaped string in the text files `paths` (binary files,
    recognised by a NUL byte, are skipped; a notebook's outputs and metadata are text in its .ipynb)."""
    root = Path(root) if root else None
    hits = []
    for path in map(Path, paths):
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        name = path.relative_to(root) if root and path.is_relative_to(root) else path
        hits += [f"{name}:{line}: {kind} ({shown})"
                 for line, kind, shown in find_secrets(data.decode("utf-8", errors="replace"))]
    return hits


def repository_files(root) -> list[Path]:
    """Files git tracks in `root`, plus new files it does not ignore (what the next commit could contain)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode()
    return [Path(root) / name for name in sorted(set(listed.split("\0"))) if name and (Path(root) / name).is_file()]
