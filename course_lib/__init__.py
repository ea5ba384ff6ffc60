"""Plumbing shared by the ERNIE-4.5 LoRA course notebooks.

Flat modules, one concern each. Importing any of them is cheap and silent: torch, transformers and
friends are imported inside the functions that need them. The lesson itself (Unsloth, PEFT and TRL
calls) lives in the notebooks, never here.
"""

__version__ = "0.1.0"
