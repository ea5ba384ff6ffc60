"""Which model do the notebooks load? The Hub model when the Hub answers, else the tiny slice, and say so."""

from __future__ import annotations

import os
from dataclasses import dataclass

from course_lib.ernie import DEFAULT_MODEL

MODEL_ENV = "ERNIE_COURSE_MODEL"
CHOICES = ("auto", "hub", "tiny", "random-0.3b", "tiny-moe")


@dataclass(frozen=True)
class ModelChoice:
    name_or_path: str  # what to pass to from_pretrained
    source: str  # "hub", "tiny" or "random-0.3b"
    reason: str

    @property
    def offline(self) -> bool:
        return self.source != "hub"

    def banner(self) -> str:
        if self.source == "hub":
            return f"MODEL: {self.name_or_path} from the Hugging Face Hub ({self.reason})."
        what = {
            "tiny": f"the TINY ERNIE-4.5 SLICE, a stand-in for the chat model {DEFAULT_MODEL} (2 layers, 0.5M "
                    f"parameters, pre-trained and chat-trained ~30 s on this machine)",
            "tiny-moe": "the TINY ERNIE-4.5 MIXTURE-OF-EXPERTS STAND-IN (3 layers, 8 routed experts, top-2)",
            "random-0.3b": "a RANDOM-WEIGHT model of ERNIE-4.5-0.3B's full shape (built on this machine)",
        }[self.source]
        line = "!" * 100
        return (f"{line}\nOFFLINE MODEL: {what}\n  at {self.name_or_path}\n  because {self.reason}.\n"
                f"  Every cell runs as it would on the real model, but losses and answers are not the real "
                f"model's.\n{line}")


def resolve_model(hub_id: str = DEFAULT_MODEL, mode: str | None = None) -> ModelChoice:
    """`mode` (default: $ERNIE_COURSE_MODEL, else "auto") is one of CHOICES.

    auto: `hub_id` if the Hub answers, else the tiny slice. hub: `hub_id`, no check. tiny / random-0.3b:
    build (once) and use the local model, e.g. in CI or for a teacher on a bad network.
    """
    from course_lib.environment import hub_reachable
    from course_lib.tiny_ernie import ensure_tiny_ernie

    explicit = mode or os.environ.get(MODEL_ENV)
    mode = (explicit or "auto").strip().lower()
    if mode not in CHOICES:
        raise ValueError(f"{MODEL_ENV}={mode!r} is not one of {', '.join(CHOICES)}.")
    if mode == "hub":
        return ModelChoice(hub_id, "hub", f"{MODEL_ENV}=hub asked for it")
    if mode == "auto":
        if hub_reachable(hub_id):
            return ModelChoice(hub_id, "hub", "the Hub is reachable")
        reason = f"the Hugging Face Hub is not reachable from this machine, so {hub_id} cannot be downloaded"
        return ModelChoice(str(ensure_tiny_ernie("tiny")), "tiny", reason)
    if mode == "tiny-moe":
        from course_lib.tiny_ernie_moe import ensure_tiny_ernie_moe

        return ModelChoice(str(ensure_tiny_ernie_moe()), mode, f"{MODEL_ENV}={mode} asked for it")
    shape = "tiny" if mode == "tiny" else "0.3b"
    return ModelChoice(str(ensure_tiny_ernie(shape)), mode, f"{MODEL_ENV}={mode} asked for it")
