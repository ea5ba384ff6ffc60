"""ERNIE-4.5's facts, in one place: the models' ids, the chat format, the special tokens, the layers LoRA adapts.

Sources: the model cards on the Hugging Face Hub (baidu/ERNIE-4.5-*), and transformers' ERNIE-4.5 code
(`models/ernie4_5/convert_ernie4_5_tokenizer.py` holds the official chat template).
"""

# "-PT" means PyTorch weights ("-Paddle" releases hold PaddlePaddle weights). The plain -PT models are
# post-trained (chat) models; the pre-trained base models are "-Base-PT", whose card says "The Base model
# only supports text completion".
DEFAULT_MODEL = "baidu/ERNIE-4.5-0.3B-PT"  # the chat model, 0.36B parameters: a T4 trains it in 16-bit
BASE_MODEL = "baidu/ERNIE-4.5-0.3B-Base-PT"  # the pre-trained base model of the same size
LARGE_MODEL = "baidu/ERNIE-4.5-21B-A3B-PT"  # mixture of experts, 21B parameters (3B active), chat model
LARGE_BASE_MODEL = "baidu/ERNIE-4.5-21B-A3B-Base-PT"

# The same models on ModelScope (modelscope.cn), for learners who cannot reach the Hub: Baidu publishes them
# there under the PaddlePaddle organisation with the same names. Sources, read 2026-12: ModelScope's own
# ms-swift (swift/llm/model/model/baidu.py pairs each ModelScope id with its Hub id) and LLaMA-Factory
# (src/llamafactory/extras/constants.py, DownloadSource.MODELSCOPE). Not downloaded from here: ModelScope is
# out of reach of the machines that test the course.
MODELSCOPE_IDS = {
    DEFAULT_MODEL: "PaddlePaddle/ERNIE-4.5-0.3B-PT",
    BASE_MODEL: "PaddlePaddle/ERNIE-4.5-0.3B-Base-PT",
    LARGE_MODEL: "PaddlePaddle/ERNIE-4.5-21B-A3B-PT",
    LARGE_BASE_MODEL: "PaddlePaddle/ERNIE-4.5-21B-A3B-Base-PT",
}

# ERNIE-4.5's chat format:  <|begin_of_sentence|>User: {question}\nAssistant: {answer}<|end_of_sentence|>
BEGIN = "<|begin_of_sentence|>"  # opens a conversation (the tokenizer's cls_token)
END_OF_TURN = "<|end_of_sentence|>"  # closes every assistant turn (the tokenizer's sep_token)
# Ids 0/1/2 as in ERNIE-4.5 (unk, also used as pad; bos; eos); the chat markers follow.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", BEGIN, END_OF_TURN]

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips: a position the loss does not train on

# The seven Linear layers of every decoder block: attention (q, k, v, o) and the gated MLP (gate, up, down).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# The official template, as transformers' convert_ernie4_5_tokenizer.py ships it. It is what a saved model
# carries, so that other programs (llama.cpp, servers) render conversations as ERNIE's own tokenizer does.
# Note: it sets add_generation_prompt = true when the caller leaves it undefined (transformers always
# defines it; other renderers may not).
OFFICIAL_CHAT_TEMPLATE = (
    '{%- if not add_generation_prompt is defined -%}\n    {%- set add_generation_prompt = true -%}\n{%- endif -%}\n'
    '{%- if not cls_token is defined -%}\n    {%- set cls_token = "<|begin_of_sentence|>" -%}\n{%- endif -%}\n'
    '{%- if not sep_token is defined -%}\n    {%- set sep_token = "<|end_of_sentence|>" -%}\n{%- endif -%}\n'
    '{{- cls_token -}}\n{%- for message in messages -%}\n    {%- if message["role"] == "user" -%}\n'
    '        {{- "User: " + message["content"] + "\\n" -}}\n    {%- elif message["role"] == "assistant" -%}\n'
    '        {{- "Assistant: " + message["content"] + sep_token -}}\n    {%- elif message["role"] == "system" -%}\n'
    '        {{- message["content"] + "\\n" -}}\n    {%- endif -%}\n{%- endfor -%}\n'
    '{%- if add_generation_prompt -%}\n    {{- "Assistant: " -}}\n{%- endif -%}'
)

# The same text, plus {% generation %} markers around what the assistant says: TRL's assistant_only_loss
# needs them to know which tokens to train. For training only: other Jinja runtimes refuse these tags.
# tests/test_tiny_ernie.py checks that both templates render the same text.
TRAINING_CHAT_TEMPLATE = (
    "{%- if not cls_token is defined -%}{%- set cls_token = '<|begin_of_sentence|>' -%}{%- endif -%}"
    "{%- if not sep_token is defined -%}{%- set sep_token = '<|end_of_sentence|>' -%}{%- endif -%}"
    "{{- cls_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'User: ' + message['content'] + '\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- 'Assistant: ' -}}"
    "{% generation %}{{- message['content'] + sep_token -}}{% endgeneration %}"
    "{%- elif message['role'] == 'system' -%}{{- message['content'] + '\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}"
)
