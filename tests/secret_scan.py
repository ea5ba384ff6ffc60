"""A scanner for keys pasted into files (a notebook's saved outputs included) before they are committed; run over
the repository by tests/test_secrets.py."""

import os
import re
import subprocess
from pathlib import Path

from course_lib.secrets import TOKEN_NAME

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
