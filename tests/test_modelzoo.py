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
