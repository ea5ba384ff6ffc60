"""What the course installs is pinned, agrees with Unsloth's own caps, and is what these tests run on."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT_FILES = ["requirements.txt", "requirements-unsloth.txt", "requirements-gpu.txt", "requirements-dev.txt"]
# Declared by Unsloth but never imported by its CPU backend; Colab brings or gets them (see README).
GPU_ONLY = {"torchvision", "xformers", "triton", "diffusers", "cut-cross-entropy", "torchao"}


def pins(filename: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{filename}: {line} is not pinned with =="
            found[canonicalize_name(requirement.name)] = specifier.version
    return found


@pytest.mark.parametrize("filename", REQUIREMENT_FILES)
def test_every_requirement_is_pinned(filename):
    assert pins(filename)


def test_installed_versions_are_the_pinned_ones():
    """CI runs on exactly what a learner installs (GPU-only pins are not installed on a CPU machine)."""
    for filename in ["requirements.txt", "requirements-unsloth.txt", "requirements-dev.txt"]:
        for name, version in pins(filename).items():
            assert importlib.metadata.version(name) == version, f"{name}: installed != pinned in {filename}"


def test_constraints_agree_with_the_pins():
    locked = {canonicalize_name(m[0]): m[1] for m in re.findall(r"^([\w.-]+)==(\S+)$",
                                                                (ROOT / "constraints.txt").read_text(), re.M)}
    for filename in ["requirements.txt", "requirements-unsloth.txt", "requirements-dev.txt"]:
        for name, version in pins(filename).items():
            assert locked.get(name) == version, f"{name}: constraints.txt says {locked.get(name)}, {filename} {version}"


def test_pins_satisfy_unsloths_own_requirements():
    pinned = {name: version for f in REQUIREMENT_FILES for name, version in pins(f).items()}
    pinned["torch"] = "2.13.0"  # scripts/setup.sh
    checked = 0
    for package in ("unsloth", "unsloth_zoo"):
        for line in importlib.metadata.requires(package):
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            if name in pinned:
                checked += 1
                assert requirement.specifier.contains(pinned[name], prereleases=True), \
                    f"{package} wants {requirement}, the course pins {name}=={pinned[name]}"
    assert checked >= 8


def test_pip_check_reports_only_the_explained_gpu_extras():
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = [line for line in result.stdout.splitlines() if line.strip()]
    for line in problems:
        match = re.match(r"(\S+) [\d.]+ requires ([\w.-]+), which is not installed", line)
        assert match and canonicalize_name(match.group(2)) in GPU_ONLY, f"unexplained pip check line: {line}"


def test_setup_script_and_binder_use_the_same_torch():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    (torch_pin,) = re.findall(r"torch_pin=torch==([\d.]+)", setup)
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert f"torch=={torch_pin}+cpu" in binder
    assert importlib.metadata.version("torch").split("+")[0] == torch_pin
    for filename in ("requirements.txt", "requirements-dev.txt"):
        assert f"-r ../{filename}" in binder
    assert "requirements-unsloth.txt" in (ROOT / "binder" / "postBuild").read_text()
