"""The learner on a tiny Qwen2 model built locally (CPU): steps, export, save/load, SFT, the Ray actor."""
import dataclasses
import random

import pytest
import torch

from learner.adapter import AdapterWeights
from learner.grpo import grpo_loss
from learner.learner import LearnerConfig, LearnerCore, LearnStats, TrainBatch, create_learner
from learner.policy import PolicyConfig, completion_logprobs, pack


def make_batch(seed: int = 0, prompts: int = 3, group: int = 4) -> TrainBatch:
    rng = random.Random(seed)
    p = [[rng.randrange(3, 500) for _ in range(rng.randint(4, 10))] for _ in range(prompts)]
    prompt_ids = [x for x in p for _ in range(group)]
    completion_ids = [[rng.randrange(3, 500) for _ in range(rng.randint(2, 9))] for _ in prompt_ids]
    rewards = [float(rng.random() > 0.5) for _ in prompt_ids]
    rewards[:group] = [1.0, 0.0, 0.5, 0.0]
    return TrainBatch(prompt_ids, completion_ids, rewards, group)


def make_learner(model_dir: str, seed: int = 0, **overrides) -> LearnerCore:
    cfg = LearnerConfig(lr=5e-3, micro_batch_size=5, **overrides)
    return LearnerCore(cfg, PolicyConfig(name=model_dir, lora_rank=8, lora_alpha=16), seed=seed)


def surrogate_loss(learner: LearnerCore, batch: TrainBatch, logp_old: list[list[float]]) -> float:
    """The GRPO loss of the batch at the learner's current weights, against fixed old log-probs."""
    from learner.grpo import group_advantages

    packed = pack(batch.prompt_ids, batch.completion_ids, learner.tokenizer.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(learner.model, packed)
    old = torch.zeros_like(logp)
    for i, row in enumerate(logp_old):
        old[i, : len(row)] = torch.tensor(row)
    adv = group_advantages(torch.tensor(batch.rewards), batch.group_size, estimator=learner.cfg.advantage,
                           std_floor=learner.cfg.std_floor)
    loss, _ = grpo_loss(logp, old, None, adv, packed.completion_mask[:, packed.prompt_len:], beta=0.0)
    return loss.item()


def test_one_step_lowers_the_loss_on_a_fixed_batch(tiny_model_dir):
    learner = make_learner(tiny_model_dir, beta=0.0)
    batch = make_batch()
    old = learner.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    before = surrogate_loss(learner, batch, old)
    stats = learner.step(batch)
    after = surrogate_loss(learner, batch, old)
    assert after < before
    assert stats.version == 1 and stats.step == 1
    assert stats.zero_spread_groups >= 0 and stats.tokens == sum(map(len, batch.completion_ids))


def test_step_and_sft_step_return_one_stats_record(tiny_model_dir):
    learner = make_learner(tiny_model_dir, beta=0.04)
    batch = make_batch()
    grpo = learner.step(batch)
    sft = learner.sft_step([[5, 6, 7, 8], [9, 10, 11]], ["x = 1 + 2 = 3", "the answer is 4"])
    assert isinstance(grpo, LearnStats) and isinstance(sft, LearnStats)
    assert (grpo.step, grpo.version, sft.step, sft.version) == (1, 1, 2, 2)
    assert grpo.tokens == sum(map(len, batch.completion_ids)) and grpo.seconds > 0 and grpo.tokens_per_s > 0
    assert grpo.reward_mean == pytest.approx(sum(batch.rewards) / len(batch.rewards))
    assert grpo.lr == sft.lr == pytest.approx(5e-3)
    assert sft.tokens > 2 and sft.tokens_per_s == pytest.approx(sft.tokens / sft.seconds)
    assert (sft.kl, sft.clip_fraction, sft.ratio, sft.mismatch_kl) == (0.0, 0.0, 1.0, 0.0)
    metrics = grpo.metrics()
    assert set(metrics) == {f.name for f in dataclasses.fields(LearnStats)} and metrics["loss"] == grpo.loss


def test_the_learner_keeps_its_own_copy_of_the_config(tiny_model_dir):
    cfg = LearnerConfig(lr=5e-3, micro_batch_size=5, tis="off")
    learner = LearnerCore(cfg, PolicyConfig(name=tiny_model_dir, lora_rank=4), total_steps=10)
    assert learner.tis_cap == 0.0 and make_learner(tiny_model_dir).tis_cap == 2.0
    learner.reset_optimizer(lr=1e-3, total_steps=20)
    assert cfg.lr == 5e-3 and learner.cfg.lr == 1e-3 and learner.total_steps == 20
    assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_the_config_sections_are_the_learner_and_policy_configs(tmp_path):
    import yaml

    from cluster.config import data_affecting_changes, dump, load_config

    cfg = load_config("tiny", overrides=["learner.lr=0.5", "model.lora_rank=4", "learner.betas=[0.9, 0.999]"])
    assert isinstance(cfg.learner, LearnerConfig) and isinstance(cfg.model, PolicyConfig)
    assert cfg.learner.lr == 0.5 and cfg.model.lora_rank == 4 and cfg.model.lora_alpha == 64
    assert cfg.model.name == "tiny" and cfg.learner.micro_batch_size == 128 and cfg.learner.betas == (0.9, 0.999)
    saved = tmp_path / "config.yaml"  # a run's saved config (YAML lists for the tuples) loads back the same
    saved.write_text(dump(cfg))
    again = load_config("tiny", str(saved))
    assert again == cfg and isinstance(again.model.target_modules, tuple)
    assert data_affecting_changes(yaml.safe_load(saved.read_text()), again.to_dict()) == []


def test_kl_is_zero_before_the_first_update_and_positive_after(tiny_model_dir):
    learner = make_learner(tiny_model_dir, beta=0.04)
    batch = make_batch()
    first = learner.step(batch)
    assert first.kl == pytest.approx(0.0, abs=1e-7)
    second = learner.step(batch)
    assert second.kl > 0


def test_sampler_logprobs_and_several_epochs(tiny_model_dir):
    learner = make_learner(tiny_model_dir, epochs=2)
    batch = make_batch()
    batch.sampler_logprobs = learner.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    stats = learner.step(batch)
    assert stats.ratio != 1.0  # second epoch sees ratios away from 1
    assert stats.mismatch_kl == pytest.approx(0.0, abs=1e-6)  # the old log-probs are the sampler's here


def test_export_then_load_into_fresh_peft_model_gives_identical_logits(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    learner = make_learner(tiny_model_dir)
    learner.step(make_batch())
    weights = learner.export_adapter()
    assert weights.version == 1 and all(t.dtype.name == "float32" for t in weights.tensors.values())
    path = weights.save(tmp_path / "v1")
    assert (path / "adapter_model.safetensors").exists() and (path / "adapter_config.json").exists()
    fresh = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), path)
    ids = torch.tensor([[5, 17, 200, 33, 41, 8]])
    learner.model.eval()
    fresh.eval()
    with torch.no_grad():
        expected = learner.model(input_ids=ids).logits
        got = fresh(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    with torch.no_grad(), learner.model.disable_adapter():
        base = learner.model(input_ids=ids).logits
    assert not torch.allclose(base, got, atol=1e-4)
    assert AdapterWeights.load(path).tensors.keys() == weights.tensors.keys()


def test_save_then_load_resumes_with_identical_next_step_metrics(tiny_model_dir, tmp_path):
    a = make_learner(tiny_model_dir, warmup_steps=3)
    a.step(make_batch(1))
    a.save(tmp_path / "ckpt")
    a.save(tmp_path / "ckpt")  # overwriting an existing checkpoint stays atomic
    expected = a.step(make_batch(2))
    b = make_learner(tiny_model_dir, warmup_steps=3, seed=123)
    assert b.load(tmp_path / "ckpt") == {"step": 1, "version": 1}
    got = b.step(make_batch(2))
    for key in ("loss", "kl", "grad_norm", "lr", "clip_fraction", "step", "version"):
        assert getattr(got, key) == pytest.approx(getattr(expected, key), rel=1e-5, abs=1e-7), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_load_adapter_from_starts_a_stage_with_fresh_optimiser(tiny_model_dir, tmp_path):
    a = make_learner(tiny_model_dir)
    a.step(make_batch())
    a.save(tmp_path / "stage1")
    b = make_learner(tiny_model_dir)
    b.load_adapter_from(tmp_path / "stage1")
    assert b.optimizer.state == {}
    ex, got = a.export_adapter().tensors, b.export_adapter().tensors
    assert all((ex[k] == got[k]).all() for k in ex)


def test_sft_lowers_target_loss(tiny_model_dir):
    from actors.engine import encode_prompts
    from learner.sft import encode_target, sft_loss

    learner = make_learner(tiny_model_dir)
    tok = learner.tokenizer
    prompt_ids = encode_prompts(tok, ["What is 2 + 3?", "What is 7 - 4?"])
    targets = ["<final_answer>5</final_answer>", "<final_answer>3</final_answer>"]

    def loss() -> float:
        with torch.no_grad():
            return sft_loss(learner.model, prompt_ids, [encode_target(tok, t) for t in targets],
                            tok.pad_token_id, learner.device).item()

    before = loss()
    for _ in range(5):
        stats = learner.sft_step(prompt_ids, targets)
    assert loss() < before
    assert stats.version == 5 and encode_target(tok, "x")[-1] == tok.eos_token_id


@pytest.mark.ray
def test_learner_ray_actor(ray_cluster, tiny_model_dir):
    actor = create_learner(LearnerConfig(lr=1e-3), PolicyConfig(name=tiny_model_dir, lora_rank=4), name="learner-test")
    assert ray_cluster.get(actor.ready.remote())["device"] == "cpu"
    assert ray_cluster.get_actor("learner-test") is not None
    stats = ray_cluster.get(actor.step.remote(make_batch()))
    weights = ray_cluster.get(actor.export_adapter.remote())
    assert isinstance(stats, LearnStats) and stats.version == weights.version == 1
    assert weights.nbytes() > 0
    ray_cluster.kill(actor)


def test_bf16_adapter_trains_through_fp32_master_weights(tiny_model_dir, tmp_path):
    """On a GPU the LoRA weights are bf16 (no per-layer casts); the optimiser steps fp32 masters."""
    learner = make_learner(tiny_model_dir, beta=0.0)
    bf16 = LearnerCore(LearnerConfig(lr=5e-3, micro_batch_size=5, beta=0.0),
                       PolicyConfig(name=tiny_model_dir, lora_rank=8, lora_alpha=16, adapter_dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in bf16.trainable)
    assert all(m.dtype == torch.float32 and m is not p for m, p in zip(bf16.master, bf16.trainable))
    batch = make_batch()
    old = bf16.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    before = surrogate_loss(bf16, batch, old)
    bf16.step(batch)
    assert surrogate_loss(bf16, batch, old) < before
    assert all(torch.equal(m.to(torch.bfloat16), p) for m, p in zip(bf16.master, bf16.trainable))
    assert learner.master[0] is learner.trainable[0]  # fp32 adapters need no copy
    bf16.save(tmp_path / "ckpt")
    other = LearnerCore(bf16.cfg, bf16.policy)
    other.load(tmp_path / "ckpt")
    assert all(torch.equal(a, b) for a, b in zip(other.master, bf16.master))


def test_after_merge_the_reference_is_the_sft_model(tiny_model_dir, tmp_path):
    """SFT steps, then `merge_adapter`: the reference (adapter disabled) now gives the SFT model's log-probs,
    the policy's are unchanged, and a checkpoint reloads into the same model."""
    from learner.policy import reference_logprobs

    learner = make_learner(tiny_model_dir, beta=0.04)
    batch = make_batch(3)
    prompts = [[5, 6, 7, 8], [9, 10, 11]]
    for _ in range(3):
        learner.sft_step(prompts, ["x = 1 + 2 = 3", "the answer is 4"])
    packed = pack(batch.prompt_ids, batch.completion_ids, learner.tokenizer.pad_token_id)
    with torch.no_grad():
        sft_policy = completion_logprobs(learner.model, packed)
        base_reference = reference_logprobs(learner.model, packed)
    assert not torch.allclose(sft_policy, base_reference, atol=1e-4)  # SFT moved the model
    merged = learner.merge_adapter()
    assert isinstance(merged, AdapterWeights) and len(learner.merged) == 1
    with torch.no_grad():
        assert torch.allclose(reference_logprobs(learner.model, packed), sft_policy, atol=1e-4)
        assert torch.allclose(completion_logprobs(learner.model, packed), sft_policy, atol=1e-4)
    stats = learner.step(batch)
    assert stats.kl == pytest.approx(0.0, abs=1e-6)  # first GRPO step: policy == reference == SFT
    learner.save(tmp_path / "ckpt")
    fresh = make_learner(tiny_model_dir, beta=0.04)
    fresh.load(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(reference_logprobs(fresh.model, packed), sft_policy, atol=1e-4)
        assert torch.allclose(completion_logprobs(fresh.model, packed), completion_logprobs(learner.model, packed),
                              atol=1e-4)


@pytest.mark.parametrize("sync", ["adapter", "merged"])
def test_hf_engine_merges_like_the_learner(tiny_model_dir, sync):
    from actors.hf_engine import HFEngine
    from actors.records import SamplingConfig

    learner = make_learner(tiny_model_dir)
    for _ in range(3):
        learner.sft_step([[5, 6, 7, 8]], ["x = 1 + 2 = 3"])
    engine = HFEngine(tiny_model_dir, sync=sync)
    engine.load_adapter(learner.export_adapter())  # pushed before the fold, as the SFT evaluation does
    engine.generate(["1 + 1 ="], 1, SamplingConfig(temperature=0.0, max_tokens=2))
    weights = learner.merge_adapter()
    engine.merge_adapter(weights)
    engine.load_adapter(learner.export_adapter())
    greedy = SamplingConfig(temperature=0.0, max_tokens=8, logprobs=True, seed=0)
    out = engine.generate(["12 + 30 ="], 1, greedy)[0][0]
    packed = pack([out.prompt_token_ids], [out.token_ids], learner.tokenizer.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(learner.model, packed)[0, : len(out.token_ids)]
    assert torch.allclose(logp, torch.tensor(out.logprobs), atol=1e-3)


def test_cosine_decays_to_min_lr_and_constant_holds(tiny_model_dir):
    """`learner.schedule: cosine` with `min_lr` (SLM-Math's 5e-6 → 1e-7 shape) ends each phase at min_lr; the
    same schedule serves SFT, GRPO and RAFT because each phase resets the optimiser with its own length."""
    rows = ([[5, 6, 7, 8]], ["x = 1 + 2 = 3"])
    cosine = make_learner(tiny_model_dir, schedule="cosine", min_lr=1e-4)
    cosine.reset_optimizer(lr=5e-3, total_steps=4)
    lrs = [cosine.sft_step(*rows).lr for _ in range(4)]
    assert lrs[0] < 5e-3 and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(1e-4)
    constant = make_learner(tiny_model_dir, schedule="constant")
    constant.reset_optimizer(total_steps=3)
    assert [constant.sft_step(*rows).lr for _ in range(3)] == pytest.approx([5e-3] * 3)


def test_an_init_adapter_folded_in_makes_the_reference_the_sft_model(tiny_model_dir, tmp_path):
    """`init_adapter`: an SFT adapter saved elsewhere (`rlvr sft --output`) is folded into a fresh learner's base
    weights; its reference and its policy then give the SFT model's log-probs, so GRPO starts at KL 0 from it."""
    from learner.policy import reference_logprobs

    sft = make_learner(tiny_model_dir)
    for _ in range(3):
        sft.sft_step([[5, 6, 7, 8], [9, 10, 11]], ["x = 1 + 2 = 3", "the answer is 4"])
    sft.export_adapter().save(tmp_path / "sft")
    batch = make_batch(3)
    packed = pack(batch.prompt_ids, batch.completion_ids, sft.tokenizer.pad_token_id)
    with torch.no_grad():
        target = completion_logprobs(sft.model, packed)
    fresh = make_learner(tiny_model_dir, beta=0.04)
    folded = fresh.fold_in(tmp_path / "sft")
    assert len(folded) == 1 and len(fresh.merged) == 1 and folded[0].version == fresh.version
    with torch.no_grad():
        assert torch.allclose(reference_logprobs(fresh.model, packed), target, atol=1e-4)
        assert torch.allclose(completion_logprobs(fresh.model, packed), target, atol=1e-4)
    assert fresh.step(batch).kl == pytest.approx(0.0, abs=1e-6)


def test_full_sft_trains_every_base_weight_and_saves_a_model_the_engines_load(tiny_model_dir, tmp_path):
    """`sft.mode: full`: SFT steps move the base weights (the adapter stays zero), the saved directory loads with
    transformers into the same model, and `merge_adapter` returns to LoRA training on top of it with the SFT
    model as the reference."""
    from transformers import AutoModelForCausalLM

    from actors.engine import encode_prompts
    from learner.policy import reference_logprobs

    learner = make_learner(tiny_model_dir)
    base_count = sum(p.numel() for n, p in learner.model.named_parameters() if "lora_" not in n)
    assert learner.begin_full_sft() == base_count
    learner.reset_optimizer(1e-3, 3)
    embed = learner.model.get_base_model().get_input_embeddings().weight.detach().clone()
    prompts = encode_prompts(learner.tokenizer, ["What is 2 + 3?", "What is 7 - 4?"])
    for _ in range(3):
        learner.sft_step(prompts, ["5", "3"])
    assert not torch.equal(embed, learner.model.get_base_model().get_input_embeddings().weight)
    assert all(not p.any() for n, p in learner.model.named_parameters() if "lora_B" in n)
    batch = make_batch(2)
    packed = pack(batch.prompt_ids, batch.completion_ids, learner.tokenizer.pad_token_id)
    with torch.no_grad():
        sft_policy = completion_logprobs(learner.model, packed)
    saved = AutoModelForCausalLM.from_pretrained(learner.save_model(tmp_path / "sft-model"), dtype=torch.float32)
    assert not any("lora" in k or "base_layer" in k for k in saved.state_dict())
    with torch.no_grad():
        assert torch.allclose(completion_logprobs(saved, packed), sft_policy, atol=1e-5)
    learner.merge_adapter()
    assert all("lora_" in n for n, p in learner.model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        assert torch.allclose(reference_logprobs(learner.model, packed), sft_policy, atol=1e-5)


@pytest.mark.parametrize("sync", ["adapter", "merged"])
def test_hf_engine_prefills_a_group_prompt_once_with_the_same_completions(tiny_model_dir, sync, monkeypatch):
    """Each distinct prompt is forwarded once and its cache repeated for its G copies; greedy and seeded sampled
    completions, and their log-probs, equal those of prefilling every copy (prompts of unequal length, so left
    padding and positions are exercised)."""
    from actors.records import SamplingConfig

    learner, engine = tuned_engine(tiny_model_dir, sync)
    prompts = ["12 + 30 =", "What is 7 * 8? Think step by step.", "1 ="]
    prefills = []
    real = engine._shared_prefill
    monkeypatch.setattr(engine, "_shared_prefill", lambda *a: prefills.append(a[0].shape) or real(*a))
    runs = {}
    for shared in (True, False):
        if not shared:
            monkeypatch.setattr(engine, "_shared_prefill", lambda *a: {})
        runs[shared] = [engine.generate(prompts, 4, SamplingConfig(temperature=t, max_tokens=12, logprobs=True, seed=3))
                        for t in (0.0, 1.0)]
    assert prefills and all(shape[0] == 12 for shape in prefills)
    for with_cache, without in zip(runs[True], runs[False]):
        for a_row, b_row in zip(with_cache, without):
            assert [c.token_ids for c in a_row] == [c.token_ids for c in b_row]
            for a, b in zip(a_row, b_row):
                assert a.text == b.text and torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


@pytest.mark.parametrize("sync", ["adapter", "merged"])
def test_hf_engine_scores_a_text_as_the_learner_does(tiny_model_dir, sync):
    """`score` (teacher forcing, right padding, prompts and targets of unequal length) gives each target the sum of
    the log-probs the learner's policy gives its tokens after the chat-encoded prompt, under the pushed adapter."""
    from actors.engine import encode_prompts

    learner, engine = tuned_engine(tiny_model_dir, sync)
    prompts = ["12 + 30 =", "What is 7 * 8? Think step by step.", "1 ="]
    targets = ["42", "7 * 8 = 56\nThe answer is 56.", "x = 1 + 2 = 3"]
    scores = engine.score(prompts, targets)
    prompt_ids = encode_prompts(learner.tokenizer, prompts)
    target_ids = [learner.tokenizer(t, add_special_tokens=False).input_ids for t in targets]
    packed = pack(prompt_ids, target_ids, learner.tokenizer.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(learner.model, packed)
    expected = [float(logp[i, : len(t)].sum()) for i, t in enumerate(target_ids)]
    assert scores == pytest.approx(expected, abs=1e-3)
    assert all(s < 0 for s in scores) and len({round(s, 3) for s in scores}) == 3


def tuned_engine(tiny_model_dir, sync: str):
    """A learner after three SFT steps and an HF engine (with `sync`) holding its adapter."""
    from actors.hf_engine import HFEngine

    learner = make_learner(tiny_model_dir)
    for _ in range(3):
        learner.sft_step([[5, 6, 7, 8]], ["x = 1 + 2 = 3"])
    engine = HFEngine(tiny_model_dir, sync=sync)
    engine.load_adapter(learner.export_adapter())
    return learner, engine
