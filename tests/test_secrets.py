"""course_lib.secrets: the token is found without being shown, and no file of the repository (notebook outputs and
metadata included) holds anything shaped like a key. The planted-key tests show the scanner can fail."""

import json
import sys
import types
from pathlib import Path

import pytest

import secret_scan
from course_lib import secrets

ROOT = Path(__file__).resolve().parent.parent
# Built at run time, so that no file of the repository contains a token-shaped string, these tests included.
FAKE_HF = "hf" + "_" + "Zq7" * 12  # hf_ + 36 letters and digits: a real token's shape, not a real token
FAKE_OPENAI = "sk" + "-proj-" + "a1B2" * 10
FAKE_AWS = "AKIA" + "Q7XZ" * 4


@pytest.fixture(autouse=True)
def no_real_token(monkeypatch):
    """These tests set their own token; one from the machine must neither be used nor shown."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_the_token_comes_from_the_environment_and_is_never_shown(monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF)
    token = secrets.hf_token(ask=False)
    assert token == FAKE_HF and isinstance(token, str)  # a plain str where a library needs one
    assert token.source == "the HF_TOKEN environment variable"
    for shown in (repr(token), repr([token]), repr({"token": token})):
        assert FAKE_HF not in shown and "hf_***" in shown
    out = capsys.readouterr()
    assert FAKE_HF not in out.out + out.err and "Zq7Zq7" not in out.out + out.err
    assert secret_scan.find_secrets(out.out + out.err) == []


def test_no_token_is_none_or_a_clear_error_without_a_prompt(capsys):
    assert secrets.hf_token(ask=False) is None
    with pytest.raises(RuntimeError) as error:
        secrets.hf_token(required=True, ask=False)
    print(error.value)
    message = str(error.value)
    assert message.startswith("no Hugging Face token found (not on Colab; $HF_TOKEN: not set; prompt: not asked")
    assert "Secrets panel" in message and "export HF_TOKEN=" in message


def colab_with(monkeypatch, secret=None, error=None):
    """Colab's `google.colab.userdata` cannot be installed here; this module has its `get` and its errors."""
    userdata = types.ModuleType("google.colab.userdata")

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if error:
            raise error
        if secret is None:
            raise SecretNotFoundError(name)
        return secret

    userdata.get, userdata.SecretNotFoundError = get, SecretNotFoundError
    try:
        import google  # noqa: F401 - a namespace package (protobuf's) that google.colab would live in
    except ImportError:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)


def test_colab_secrets_come_first_and_a_refusal_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "e" * 34)
    colab_with(monkeypatch, secret=FAKE_HF)
    token = secrets.hf_token(ask=False)
    assert token == FAKE_HF and token.source == "Colab secrets"
    colab_with(monkeypatch, error=PermissionError("notebook access not granted"))
    assert secrets.hf_token(ask=False).source == "the HF_TOKEN environment variable"
    monkeypatch.delenv("HF_TOKEN")
    colab_with(monkeypatch)
    with pytest.raises(RuntimeError, match=r"\(Colab secret HF_TOKEN: SecretNotFoundError; \$HF_TOKEN: not set"):
        secrets.hf_token(required=True, ask=False)


def test_redact_hides_every_key_shape_and_the_token_in_use(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "my-own-format-token-123")
    text = f"push with {FAKE_HF}, openai {FAKE_OPENAI}, aws {FAKE_AWS}, and my-own-format-token-123"
    assert secret_scan.redact(text) == "push with hf_***, openai sk-***, aws AKI***, and my-***"
    assert secret_scan.redact("hf_hub_download, use_hf_transfer, task-list-of-some-long-name-here") == \
        "hf_hub_download, use_hf_transfer, task-list-of-some-long-name-here"


def test_no_file_of_the_repository_holds_a_key():
    """Every tracked file, and every new file git would pick up, notebooks' outputs and metadata included."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing says which files would be committed")
    files = secret_scan.repository_files(ROOT)
    assert any(f.suffix == ".ipynb" for f in files) and any(f.name == "test_secrets.py" for f in files)
    hits = secret_scan.scan_files(files, ROOT)
    assert hits == [], "key-shaped strings found; remove them, rotate the key, and rewrite history:\n" + "\n".join(hits)


def test_the_scanner_finds_planted_keys_by_file_and_line(tmp_path):
    (tmp_path / "settings.py").write_text(f"MODEL = 'x'\n\nHF = '{FAKE_HF}'\nAWS = '{FAKE_AWS}'  # and {FAKE_OPENAI}\n")
    notebook = {"cells": [{"cell_type": "code", "source": ["push()"], "metadata": {},
                           "outputs": [{"output_type": "stream", "name": "stdout", "text": [f"token={FAKE_HF}\n"]}]}],
                "metadata": {"colab": {"token": FAKE_OPENAI}}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "leaky.ipynb").write_text(json.dumps(notebook, indent=1))
    (tmp_path / "weights.bin").write_bytes(b"\0" + FAKE_HF.encode())  # binary files are skipped
    hits = secret_scan.scan_files(sorted(tmp_path.iterdir()), tmp_path)
    print("\n".join(hits))
    output_line = 1 + json.dumps(notebook, indent=1).splitlines().index(f'      "token={FAKE_HF}\\n"')
    metadata_line = 1 + json.dumps(notebook, indent=1).splitlines().index(f'   "token": "{FAKE_OPENAI}"')
    assert hits == [f"leaky.ipynb:{output_line}: Hugging Face token (hf_***)",
                    f"leaky.ipynb:{metadata_line}: OpenAI/Anthropic-style key (sk-***)",
                    "settings.py:3: Hugging Face token (hf_***)",
                    "settings.py:4: OpenAI/Anthropic-style key (sk-***)",
                    "settings.py:4: AWS access key id (AKI***)"]
    assert not any(FAKE_HF in hit or FAKE_OPENAI in hit for hit in hits)  # the report itself leaks nothing


def test_no_token_is_a_chinese_error_in_the_chinese_edition(monkeypatch):
    from course_lib.language import LANGUAGE_ENV

    monkeypatch.setenv(LANGUAGE_ENV, "zh")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match=r"^没有找到 Hugging Face token（not on Colab; \$HF_TOKEN: not set") as error:
        secrets.hf_token(required=True, ask=False)
    assert "https://huggingface.co/settings/tokens" in str(error.value) and "`export HF_TOKEN=...`" in str(error.value)
