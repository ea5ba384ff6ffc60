"""In the Chinese edition, what course_lib's sliders, plots, evaluation, budget, saving, export, serving, chat,
fallbacks and data files say is Chinese: each message still names its values and its fix, and no sentence of it
is left in English. "English left" is a run of four or more English words outside code, identifiers and paths
(`english_left`); text that comes from elsewhere (an OS error, the learner's data) is taken out first."""

import json
import re
import socket

import pytest

from course_lib import budget, chat, data_files, evaluation, export, fallbacks, saving, serving, widgets
from course_lib.language import LANGUAGE_ENV
from course_lib.models import ModelChoice

WORD = r"[A-Za-z][a-z]+"  # a word, not an identifier: no digits, underscores, dots or capitals inside
ENGLISH_RUN = re.compile(rf"(?<![\w./\-`'\"=]){WORD}(?: {WORD}){{3,}}(?![\w/\-`'\"(\[])")


def english_left(text: str, *embedded: str) -> list[str]:
    """Runs of 4+ English words in `text`, leaving out `code spans`, <tags> and the `embedded` strings."""
    for part in embedded:
        text = text.replace(part, " ")
    text = re.sub(r"`[^`]*`|<[^>]+>", " ", text)
    return ENGLISH_RUN.findall(text)


def assert_chinese(text: str, *embedded: str, names=()):
    assert re.search(r"[\u4e00-\u9fff]", text), text
    assert english_left(text, *embedded) == [], text
    for value in names:
        assert str(value) in text, (value, text)


@pytest.fixture(autouse=True)
def chinese(monkeypatch):
    monkeypatch.setenv(LANGUAGE_ENV, "zh")


def test_the_check_finds_english_and_leaves_code_alone():
    assert english_left("will NOT fit: the weights alone are 1.0 GiB") == ["the weights alone are"]
    assert english_left("放不下：`save_pretrained_merged(folder, tokenizer)`，pip install transformers[serving]") == []
    assert english_left("ERNIE-4.5-0.3B-PT on Tesla T4 x 8") == []


def messages_of(call):
    try:
        return str(call())
    except Exception as error:  # the message a learner reads
        return str(error.args[0]) if error.args else str(error)


def test_budget_speaks_chinese():
    est = budget.estimate()
    assert_chinese(str(est), names=(est.gpu, f"{est.peak_gib:.1f}", est.steps))
    huge = budget.estimate(model="21b-a3b", load_in_4bit=False)
    assert_chinese(budget.warning(huge), names=("4-bit", f"{huge.weights_gib:.1f}"))
    assert_chinese(budget.warning(budget.estimate(batch=64, max_length=2048)), names=("max_length",))
    assert_chinese(budget.warning(budget.estimate(precision="bf16"), precision="bf16"), names=("bf16", "fp16"))
    assert_chinese(budget.budget_readout(as_html=False, model="21b-a3b", load_in_4bit=True), names=("警告",))
    for note in budget.estimate(model="21b-a3b", load_in_4bit=True).notes:
        assert_chinese(note)
    assert_chinese(budget.estimate(batch=8, packing=False, accumulation=4, gradient_checkpointing=False).settings,
                   names=("x 4",))
    for call in (lambda: budget.shape_of("llama"), lambda: budget.gpu_spec("V100"),
                 lambda: budget.estimate(precision="int8"), lambda: budget.estimate(r=0)):
        assert_chinese(messages_of(call))


def test_the_slider_readouts_speak_chinese():
    t4_run = dict(model="baidu/ERNIE-4.5-0.3B-PT", r=16, batch=8, max_length=1024, packing=True, accumulation=1,
                  load_in_4bit=False, example_tokens=145.0)
    rank = widgets.rank_slider([("a", 128, 64)], 10_000, 16, 32, ModelChoice("/work/tiny", "tiny", "offline"),
                               t4_run=t4_run)
    assert_chinese(rank.readout.value, names=("离线替身模型", "3,072", "30.72%", "10,000"))
    assert rank.slider.description == "LoRA 秩 r"
    for lr in (5e-3, 2e-4, 1e-6):
        assert_chinese(widgets.learning_rate_slider(lr).readout.value)
    steps = widgets.steps_slider(60, 8, 1, 1, 145.0, 2000, t4_run=t4_run)
    assert_chinese(steps.readout.value, names=("250", "0.24", "69,600"))


def test_evaluation_speaks_chinese():
    result = evaluation.Evaluation(["几何？"] * 3, ["答案是 3"] * 3, ["3", "4", "5"], [True, False, False],
                                   ["<|end_of_sentence|>", None, "</s>"], left_out=2)
    assert_chinese(result.summary(), names=("1/3", "置信区间", "2"))
    assert_chinese(evaluation.paired_test([True, False], [False, True]).summary("最终数字正确"), names=("McNemar",))
    assert_chinese(evaluation.side_by_side(result, result, n=2), names=("参考答案", "训练前", "训练后"))
    assert_chinese(messages_of(lambda: evaluation.paired_test([True], [])))


def test_saving_speaks_chinese(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert_chinese(saving.describe_folder(tmp_path / "model"), names=("1 个文件",))
    result = {"max_abs_diff": 0.5, "max_abs_logit": 10.0, "top1_agreement": 99.0, "positions": 40}
    assert_chinese(saving.check_agreement(result, 0.01, 99.5)[1], names=("0.5000", "5.00%", "99.00%", "40"))
    assert_chinese(saving.check_free_disk(tmp_path, 1), names=(tmp_path,))
    assert_chinese(messages_of(lambda: saving.check_free_disk(tmp_path, 2**60)), names=("checkpoint-*", "Google Drive"))
    check = saving.WeightCheck({"w": (0.1, 2.0)}, 3, ["w: error 2.00x", *[f"p{i}" for i in range(11)]], {"bfloat16": 4})
    assert_chinese(check.summary(), "w: error 2.00x", names=("3", "还有 2 个问题"))
    assert_chinese(saving.WeightCheck({}, 0, [], {}).summary())
    assert_chinese(messages_of(lambda: saving.lora_scaling({"peft_type": "LORA", "use_dora": True})))
    assert_chinese(messages_of(lambda: saving.adapter_deltas({"x.weight": None})))
    assert_chinese(messages_of(lambda: saving.read_safetensors(tmp_path)))

    def save_nothing():
        with saving.atomic_folder(tmp_path / "merged", required=["model.safetensors"]):
            pass
    assert_chinese(messages_of(save_nothing), names=("model.safetensors",))


def test_export_speaks_chinese(tmp_path):
    assert_chinese(messages_of(lambda: export.convert_to_gguf(tmp_path, tmp_path / "x.gguf", outtype="q4")))
    assert_chinese(messages_of(lambda: export.convert_to_gguf(tmp_path, tmp_path / "x.gguf")),
                   names=("config.json", "tokenizer.save_vocabulary(folder)"))
    assert_chinese(messages_of(lambda: export.gguf_name("model.other.weight")))


def test_serving_speaks_chinese(tmp_path):
    folder = tmp_path / "merged"
    assert_chinese(messages_of(lambda: serving.check_model_folder(folder)), names=("save_pretrained_merged",))
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    assert_chinese(messages_of(lambda: serving.check_model_folder(folder)), names=("merged_16bit",))
    (folder / "config.json").write_text("{")
    message = messages_of(lambda: serving.check_model_folder(folder))
    assert_chinese(message, message[message.index("（") + 1:message.rindex("）")])  # json's own words
    (folder / "config.json").write_text("{}")
    assert_chinese(messages_of(lambda: serving.check_model_folder(folder)), names=("model.safetensors",))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = messages_of(lambda: serving.check_port_free("127.0.0.1", port))
    assert_chinese(message, "Address already in use", names=(port, "port=None"))
    for log in ("OSError: [Errno 98] address already in use", "No module named 'fastapi'",
                "torch.OutOfMemoryError: CUDA out of memory"):
        assert_chinese(serving.diagnose(log, "127.0.0.1", 8000))
    assert "transformers[serving]" in serving.diagnose("No module named 'fastapi'", "127.0.0.1", 8000)


def test_the_chat_box_speaks_chinese():
    assert chat.render([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]) == (
        "<p style='white-space: pre-wrap; margin: 4px 0'><b>你:</b> 1+1?</p>"
        "<p style='white-space: pre-wrap; margin: 4px 0'><b>模型:</b> 2</p>")
    box = chat.chat_box(lambda conversation: 1 / 0)
    assert box.send.description == "发送" and "还没有提问" in box.history.value
    assert_chinese(box.text.placeholder)
    box.ask("1+1?")
    assert "出错：" in box.history.value and "ZeroDivisionError" in box.history.value


def test_the_fallbacks_speak_chinese(tmp_path):
    adapter = tmp_path / "lora-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert_chinese(fallbacks.ensure_adapter(adapter, "unused"), names=("适配器", adapter))
    assert_chinese(messages_of(lambda: fallbacks.ensure_adapter(tmp_path / "mine", "unused")), names=("lora-adapter",))


@pytest.mark.parametrize("name, text", [
    ("data.jsonl", '{"question": "1+1", "answer": "2"}\n[1, 2]\n{"question": \n'),
    ("data.jsonl", 'question,answer\n1+1,2\n'),
    ("data.json", '{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": "4"}\n'),
    ("data.jsonl", '[{"question": "1+1", "answer": "2"}]'),
    ("data.json", '{"rows": [{"question": "1+1", "answer": "2"}]}'),
    ("data.csv", 'question;answer\n1+1;2\n'),
    ("data.csv", 'question,answer\n1+1,2,3\n2+2,4\n'),
])
def test_data_files_say_how_they_read_a_file_in_chinese(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    rows = data_files.read_file(path)
    said = rows.notes + list(rows.unreadable.values())
    assert said
    for message in said:
        assert_chinese(message, "Expecting value")  # json's own words
    assert data_files.where(rows, 0).startswith("行 0")


@pytest.mark.parametrize("name, text", [
    ("missing.jsonl", None), ("blank.jsonl", " \n"), ("latin.csv", b"q,a\n\xe9,1\n"), ("bad.json", "[1,"),
    ("keys.json", '{"a": 1}'), ("two.json", '{"a": [{"q": 1}], "b": [{"q": 2}]}'), ("number.json", "3"),
    ("header.csv", "question,answer\n"), ("nothing.jsonl", "[1]\n"),
])
def test_data_files_refuse_a_file_in_chinese(tmp_path, name, text):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    message = messages_of(lambda: data_files.read_file(path))
    assert_chinese(message, "Expecting value", "Expecting ',' delimiter", names=(path.name,))


def test_count_has_no_plural_in_chinese():
    assert data_files.count(2000, "row", "行") == "2,000 行"
    assert data_files.count(2, "row") == "2 rows"  # no Chinese given: as before


def test_english_stays_the_default(monkeypatch):
    monkeypatch.delenv(LANGUAGE_ENV)
    assert str(budget.estimate()).endswith("(estimate)")
    assert data_files.count(2000, "row", "行") == "2,000 rows"
    assert serving.diagnose("No module named 'x'", "h", 1).startswith("transformers serve could not import x")
