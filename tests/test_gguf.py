"""GGUF conversion with llama.cpp's own converter (pinned, from llama-cpp-python's source distribution), read back
with its gguf library and compared tensor by tensor with the merged model. Running the file in llama.cpp needs a
compiled llama.cpp: that is `make llama-cpp-check` (scripts/llama_cpp_check.py), too slow to build in CI."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from course_lib import export
from course_lib.ernie import OFFICIAL_CHAT_TEMPLATE
from finetuned_standin import memorised_model


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    return memorised_model(tmp_path_factory.getbasetemp() / "memorised").merged


@pytest.fixture(scope="module")
def converted(merged, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    return {outtype: export.convert_to_gguf(merged, folder / f"model-{outtype}.gguf", outtype)
            for outtype in export.OUTTYPES}


@pytest.mark.parametrize("outtype", export.OUTTYPES)
def test_every_tensor_matches_the_merged_model(converted, merged, outtype):
    rows = export.compare_tensors(converted[outtype]["path"], merged)
    config = json.loads((merged / "config.json").read_text())
    assert len(rows) == 2 + 9 * config["num_hidden_layers"]  # embeddings, final norm; 9 per block; output tied
    assert [row for row in rows if not row["ok"]] == []
    kinds = {row["name"].split(".")[-2]: row["type"] for row in rows}
    assert kinds["attn_norm"] == "F32"  # norms stay in float32 in both files
    assert kinds["attn_q"] == {"f16": "F16", "q8_0": "Q8_0"}[outtype]


def test_q8_0_is_lossy_and_f16_is_not_beyond_rounding(converted, merged):
    worst = {outtype: max(row["max_abs_diff"] for row in export.compare_tensors(converted[outtype]["path"], merged))
             for outtype in export.OUTTYPES}
    assert 0 < worst["f16"] < worst["q8_0"], worst
    assert converted["q8_0"]["bytes"] < converted["f16"]["bytes"]


def test_tensor_check_catches_a_changed_weight(converted, merged, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(merged, changed)
    weights = load_file(changed / "model.safetensors")
    weights["model.layers.1.mlp.down_proj.weight"][0, :32] += 0.01  # one q8_0 block, about 1% of its largest value
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    for outtype in export.OUTTYPES:
        failed = [row["name"] for row in export.compare_tensors(converted[outtype]["path"], changed) if not row["ok"]]
        assert failed == ["blk.1.ffn_down.weight"], (outtype, failed)


def test_header_carries_ernies_tokenizer_and_official_template(converted):
    meta = export.gguf_metadata(converted["f16"]["path"])
    assert meta["general.architecture"] == "ernie4_5" and meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_space_prefix"] is False  # as transformers' add_prefix_space=False
    assert meta["tokenizer.ggml.add_bos_token"] is False  # else llama.cpp puts <s> before every prompt
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert meta["tokenizer.ggml.eot_token_id"] == 4  # llama.cpp stops at <|end_of_sentence|> by itself
    assert "tokenizer.ggml.seperator_token_id" not in meta  # llama-cpp-python would append it to every prompt
    assert meta["tokenizer.chat_template"] == OFFICIAL_CHAT_TEMPLATE  # what llama.cpp's chat renders with


def test_vocabulary_and_token_types_are_the_tokenizers(converted, merged):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    gguf = export.gguf_module()
    reader = gguf.GGUFReader(str(converted["q8_0"]["path"]))
    tokens, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    assert [tokens.contents(i) for i in range(len(tokens.data))] == tokenizer.convert_ids_to_tokens(range(len(tokenizer)))
    control = {i for i in range(len(types.data)) if types.contents(i) == gguf.TokenType.CONTROL}
    # the markers are one token each in llama.cpp's prompts too, never spelled out
    assert {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens} <= control


def test_a_failed_conversion_leaves_no_gguf(merged, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(merged, broken)
    (broken / "model.safetensors").write_bytes((merged / "model.safetensors").read_bytes()[:5000])  # cut short
    with pytest.raises(RuntimeError, match="convert_hf_to_gguf.py on .* failed"):
        export.convert_to_gguf(broken, tmp_path / "out" / "model.gguf")
    assert list((tmp_path / "out").iterdir()) == []  # neither the .gguf nor its hidden partial file


def test_a_folder_without_tokenizer_model_is_refused_before_converting(merged, tmp_path):
    incomplete = tmp_path / "no-tokenizer-model"
    shutil.copytree(merged, incomplete)
    (incomplete / "tokenizer.model").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        export.convert_to_gguf(incomplete, tmp_path / "model.gguf")
