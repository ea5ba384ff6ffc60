"""The course's default settings, in one place. Each notebook keeps its own settings cell, where a learner reads
and changes the numbers; tests/test_defaults.py checks that every notebook (both editions), the copy-out script
examples/finetune_ernie.py, the budget estimator and the numbers quoted in the prose agree with these."""

from course_lib.ernie import DEFAULT_MODEL, LORA_TARGETS

MODEL_NAME = DEFAULT_MODEL
MAX_SEQ_LENGTH = 1024  # tokens Unsloth prepares for; a word problem in ERNIE's chat format needs < 400
LOAD_IN_4BIT = False
LORA_R = 16
LORA_ALPHA = 32  # 2 x r
LORA_DROPOUT = 0.0
TARGET_MODULES = LORA_TARGETS
USE_RSLORA = False
MAX_LENGTH = 1024  # SFTConfig's max_length: tokens per example (or per packed row)
BATCH_SIZE = 8
PACKING = True  # on a GPU; Unsloth's CPU backend turns it off
GRAD_ACCUMULATION = 1
LEARNING_RATE = 2e-4
MAX_STEPS = 60
WARMUP_STEPS = 5
SEED = 3407
SAVE_STEPS = 20
N_EVAL = 50  # held-out questions scored before and after training
MAX_NEW_TOKENS = 256


def as_dict() -> dict:
    return {name: value for name, value in globals().items() if name.isupper() and name not in ("DEFAULT_MODEL",
                                                                                                "LORA_TARGETS")}
