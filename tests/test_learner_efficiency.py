"""The learner's throughput work, checked for equality with the plain computation: packing against padding,
the fused LM-head log-probs against log-softmax, fp32 gradient accumulation, truncated importance sampling on
hand-built log-probs, and a 2-rank gloo learner group against one learner on the whole batch."""
import copy
import dataclasses
import random

import pytest
import torch

from learner.grpo import grpo_loss, group_advantages, linear_logprobs, truncated_is_weights
from learner.learner import LearnerConfig, LearnerCore, TrainBatch
from learner.policy import PolicyConfig, completion_logprobs, forward_positions, pack, pack_sequences, pack_trees


def make_batch(seed: int = 0, prompts: int = 4, group: int = 4) -> TrainBatch:
    rng = random.Random(seed)
    p = [[rng.randrange(3, 500) for _ in range(rng.randint(3, 12))] for _ in range(prompts)]
    prompt_ids = [x for x in p for _ in range(group)]
    completion_ids = [[rng.randrange(3, 500) for _ in range(rng.randint(1, 15))] for _ in prompt_ids]
    correct = [float(rng.random() > 0.5) for _ in prompt_ids]
    correct[:group] = [1.0, 0.0, 0.0, 0.0]
    return TrainBatch(prompt_ids, completion_ids, correct, group, correct=correct)


def make_learner(model_dir: str, **overrides) -> LearnerCore:
    cfg = LearnerConfig(lr=5e-3, micro_batch_size=5, **overrides)
    return LearnerCore(cfg, PolicyConfig(name=model_dir, lora_rank=8, lora_alpha=16), seed=3)


def assert_same_adam_step(a: torch.Tensor, b: torch.Tensor, grad: torch.Tensor, name: str) -> None:
    """Parameters after one AdamW step agree wherever the gradient is not vanishing: Adam's first step moves every
    element by about lr·sign(g), so an element whose gradient is near float noise (|g| ≤ 1e-4·max|g|) may go either way
    from a different summation order."""
    settled = grad.abs() > 1e-4 * grad.abs().max()
    assert torch.allclose(a[settled], b[settled], atol=1e-5), name


def test_linear_logprobs_match_log_softmax_values_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    ours = linear_logprobs(hidden, weight, targets, chunk_rows=8)
    plain = torch.log_softmax(hidden @ weight.T, dim=-1).gather(1, targets[:, None]).squeeze(1)
    assert torch.allclose(ours.double(), plain, atol=1e-6)
    g = torch.randn(37, dtype=torch.float64)
    ours_grads = torch.autograd.grad((ours.double() * g).sum(), (hidden, weight))
    plain_grads = torch.autograd.grad((plain * g).sum(), (hidden, weight))
    for a, b in zip(ours_grads, plain_grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_packing_fills_rows_of_the_longest_sequence():
    prompts = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]
    completions = [[11, 12], [13, 14, 15, 16, 17], [18], [19]]  # lengths 5, 7, 2, 5
    micro = pack_sequences(prompts, completions, rows_per_micro=1)
    assert [m.input_ids.shape for m in micro] == [torch.Size([1, 7])] * 3  # rows [7], [5, 2], [5] of width 7
    assert sorted(i for m in micro for i in m.rows.tolist()) == [0, 1, 2, 3]
    for m in micro:  # each target follows its predicting position, and positions restart at 0 per sequence
        assert torch.equal(m.input_ids.flatten()[m.positions + 1], m.targets)
    shared = micro[1]
    assert shared.rows.tolist() == [0, 2] and shared.position_ids[0].tolist() == [0, 1, 2, 3, 4, 0, 1]
    together = pack_sequences(prompts, completions, rows_per_micro=8)
    assert len(together) == 1 and together[0].input_ids.shape == (3, 7)
    assert torch.equal(together[0].input_ids.flatten()[together[0].positions + 1], together[0].targets)


def test_packed_logprobs_equal_padded_logprobs(tiny_model_dir):
    learner = make_learner(tiny_model_dir)
    batch = make_batch()
    with torch.no_grad():
        padded = pack(batch.prompt_ids, batch.completion_ids, learner.tokenizer.pad_token_id)
        reference = completion_logprobs(learner.model, padded)
    packed = learner.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    for i, c in enumerate(batch.completion_ids):
        assert torch.allclose(torch.tensor(packed[i]), reference[i, : len(c)], atol=1e-4)


def test_packing_gives_the_same_loss_and_update_as_padding(tiny_model_dir):
    """The learner's packed step against the same GRPO loss computed on the padded layout by hand."""
    learner = make_learner(tiny_model_dir, beta=0.0)
    batch = make_batch()
    by_hand = copy.deepcopy(learner.model)
    padded = pack(batch.prompt_ids, batch.completion_ids, learner.tokenizer.pad_token_id)
    logp = completion_logprobs(by_hand, padded)
    adv = group_advantages(torch.tensor(batch.correct), batch.group_size)
    loss, _ = grpo_loss(logp, logp.detach(), None, adv, padded.completion_mask[:, padded.prompt_len:], beta=0.0)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in by_hand.named_parameters() if p.requires_grad}
    stats = learner.step(batch)
    assert stats.loss == pytest.approx(loss.item(), abs=1e-5)
    optimizer = torch.optim.AdamW([p for p in by_hand.parameters() if p.requires_grad], lr=5e-3,
                                  betas=(0.9, 0.99), weight_decay=0.0)
    torch.nn.utils.clip_grad_norm_([p for p in by_hand.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    for (name, a), b in zip(by_hand.named_parameters(), learner.model.parameters()):
        if a.requires_grad:
            assert_same_adam_step(a, b, grads[name], name)


def test_bf16_micro_batch_gradients_accumulate_in_fp32(tiny_model_dir):
    """Many small bf16 gradients summed in bf16 lose their low bits; the learner sums them in fp32 masters."""
    learner = LearnerCore(LearnerConfig(),
                          PolicyConfig(name=tiny_model_dir, lora_rank=8, lora_alpha=16, adapter_dtype="bfloat16"))
    param, master = learner.trainable[0], learner.master[0]
    assert param.dtype == torch.bfloat16 and master.dtype == torch.float32 and master is not param
    learner.optimizer.zero_grad(set_to_none=True)
    for _ in range(64):
        param.grad = torch.full_like(param, 1.0 + 2 ** -7)  # exact in bf16; a bf16 sum of 64 is not
        learner.accumulate_gradients()
        assert param.grad is None
    assert torch.allclose(master.grad, torch.full_like(master, 64 * (1.0 + 2 ** -7)))


def test_truncated_importance_weights_on_hand_built_logprobs():
    learner = torch.log(torch.tensor([0.5, 0.2, 0.9, 0.1]))
    sampler = torch.log(torch.tensor([0.5, 0.4, 0.3, 0.01]))
    w = truncated_is_weights(learner, sampler, cap=2.0)
    assert torch.allclose(w, torch.tensor([1.0, 0.5, 2.0, 2.0]))  # 0.9/0.3 = 3 and 0.1/0.01 = 10 are capped
    logp = learner.clone().requires_grad_(True)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.ones(4), torch.ones(4), beta=0.0, is_weights=w)
    loss.backward()
    assert torch.allclose(logp.grad, -w / 4)  # each token's policy gradient scaled by its weight


def test_sampler_logprobs_equal_to_the_learner_change_nothing(tiny_model_dir):
    """On-policy samples (sampler = learner) give weights of 1: the step equals the one without them."""
    plain, weighted = make_learner(tiny_model_dir, beta=0.0), make_learner(tiny_model_dir, beta=0.0)
    batch = make_batch()
    with_logprobs = copy.copy(batch)
    with_logprobs.sampler_logprobs = weighted.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    a, b = plain.step(batch), weighted.step(with_logprobs)
    assert b.mismatch_kl == pytest.approx(0.0, abs=1e-6) and b.tis_clipped == 0.0
    assert a.loss == pytest.approx(b.loss, abs=1e-6)
    skewed = copy.copy(batch)  # a sampler far less likely than the learner on every token: all weights capped
    skewed.sampler_logprobs = [[x - 5.0 for x in row] for row in with_logprobs.sampler_logprobs]
    c = make_learner(tiny_model_dir, beta=0.0).step(skewed)
    assert c.tis_clipped == pytest.approx(1.0) and c.mismatch_kl > 1.0


def test_two_gloo_learners_make_the_same_update_as_one(ray_cluster, tiny_model_dir):
    from learner.adapter import export_adapter
    from learner.learner import create_learner

    cfg = LearnerConfig(lr=5e-3, micro_batch_size=3, beta=0.04)
    policy = PolicyConfig(name=tiny_model_dir, lora_rank=8, lora_alpha=16)
    batch = make_batch(prompts=4)
    single = LearnerCore(cfg, policy, seed=3)
    one = single.step(batch)
    group = create_learner(dataclasses.replace(cfg, world_size=2), policy, seed=3, name="dp-test")
    try:
        two = ray_cluster.get(group.step.remote(batch))
        weights = ray_cluster.get(group.export_adapter.remote())
        rank1 = ray_cluster.get(group.actors[1].export_adapter.remote())
    finally:
        group.kill()
    assert two.loss == pytest.approx(one.loss, abs=1e-5)
    assert two.grad_norm == pytest.approx(one.grad_norm, rel=1e-4)
    assert two.tokens == one.tokens
    expected = export_adapter(single.model, single.version)
    for key, value in expected.tensors.items():
        assert torch.allclose(torch.as_tensor(weights.tensors[key]), torch.as_tensor(value), atol=1e-5), key
        assert torch.equal(torch.as_tensor(weights.tensors[key]), torch.as_tensor(rank1.tensors[key]))


def test_tree_packing_lays_each_prompt_once_and_each_completion_on_its_own_path():
    from learner.policy import forward_positions, pack_trees

    prompts = [[1, 2, 3]] * 3 + [[4, 5]] * 2
    completions = [[11, 12], [13], [14, 15, 16], [17, 18], []]
    (micro,) = pack_trees(prompts, completions, rows_per_micro=8)
    assert forward_positions([micro]) == 2 * 3 + 5 * 3  # two prompt rows of 3, five completion rows of 3
    assert micro.prefix_ids.tolist() == [[4, 5, 0], [1, 2, 3]]  # shorter longest completion first
    assert micro.prefix_lengths.tolist() == [2, 3] and micro.rows.tolist() == [3, 4, 0, 1, 2]
    assert micro.group.tolist() == [0, 0, 1, 1, 1] and micro.completion_lengths.tolist() == [2, 0, 2, 1, 3]
    assert micro.input_ids[4].tolist() == [14, 15, 16]
    assert micro.targets.tolist() == [17, 18, 11, 12, 13, 14, 15, 16]
    flat = torch.cat([micro.prefix_ids.flatten(), micro.input_ids.flatten()])
    firsts = micro.positions[[0, 2, 4, 5]]  # every completion's first token is predicted by its prompt's last one
    assert flat[firsts].tolist() == [5, 3, 3, 3]
    assert flat[micro.positions[[1, 3, 6, 7]]].tolist() == [17, 11, 14, 15]  # then by its own previous token
    assert len(pack_trees(prompts, completions, rows_per_micro=3)) == 2  # whole trees per micro-batch


@pytest.mark.parametrize("beta,tis", [(0.0, False), (0.04, True)])
def test_tree_packing_gives_the_same_logprobs_loss_and_gradients_as_flat(tiny_model_dir, beta, tis):
    """`learner.packing: tree` against flat on the same batch, with and without the KL reference pass and
    truncated importance weights, and with multi-turn loss masks (observation tokens masked out)."""
    batch = make_batch(prompts=3, group=4)
    rng = random.Random(1)
    batch.loss_masks = [[float(rng.random() > 0.3) for _ in c] for c in batch.completion_ids]
    if tis:
        batch.sampler_logprobs = [[-rng.random() * 3 for _ in c] for c in batch.completion_ids]
    flat, tree = make_learner(tiny_model_dir, beta=beta), make_learner(tiny_model_dir, beta=beta, packing="tree")
    logp_flat = flat.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    logp_tree = tree.completion_logprobs(batch.prompt_ids, batch.completion_ids)
    for a, b in zip(logp_flat, logp_tree):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    a, b = flat.step(batch), tree.step(batch)
    assert a.loss == pytest.approx(b.loss, abs=1e-5) and a.kl == pytest.approx(b.kl, abs=1e-6)
    assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-4)
    assert a.logical_tokens == b.logical_tokens == sum(map(len, batch.prompt_ids + batch.completion_ids))
    assert a.computed_tokens == forward_positions(pack_sequences(batch.prompt_ids, batch.completion_ids, 5))
    assert b.computed_tokens == forward_positions(pack_trees(batch.prompt_ids, batch.completion_ids, 5))
    for (name, x), y in zip(flat.model.named_parameters(), tree.model.parameters()):
        if x.requires_grad:  # Adam's first step is ±lr per element: at most float-noise gradients may flip
            assert int(((x - y).abs() > 1e-5).sum()) <= max(1, x.numel() // 1000), name


def test_auto_packing_takes_the_layout_whose_forward_runs_fewer_positions(tiny_model_dir):
    learner = make_learner(tiny_model_dir, packing="auto")
    shared = make_batch(prompts=2, group=8)
    shared.completion_ids = [c[:2] for c in shared.completion_ids]  # short completions: the prompts dominate
    flat = forward_positions(pack_sequences(shared.prompt_ids, shared.completion_ids, 5))
    tree = forward_positions(pack_trees(shared.prompt_ids, shared.completion_ids, 5))
    learner.completion_logprobs(shared.prompt_ids, shared.completion_ids)
    assert tree < flat and learner.packing_tokens[1] == tree
    distinct = make_batch(prompts=8, group=1)
    learner.completion_logprobs(distinct.prompt_ids, distinct.completion_ids)
    assert learner.packing_tokens[1] == forward_positions(pack_sequences(distinct.prompt_ids, distinct.completion_ids, 5))


def test_tree_packing_refuses_gradient_checkpointing_and_auto_falls_back_to_flat(tiny_model_dir):
    """Gradient checkpointing drops the decoder's key/value cache that tree packing reads its prompts from."""
    with pytest.raises(ValueError, match="gradient checkpointing"):
        LearnerCore(LearnerConfig(packing="tree"), PolicyConfig(name=tiny_model_dir, lora_rank=8, lora_alpha=16,
                                                                gradient_checkpointing=True))
    learner = LearnerCore(LearnerConfig(packing="auto"), PolicyConfig(name=tiny_model_dir, lora_rank=8, lora_alpha=16,
                                                                      gradient_checkpointing=True))
    shared = make_batch(prompts=2, group=4)
    learner.step(shared)
    assert learner.packing_tokens[1] == forward_positions(pack_sequences(shared.prompt_ids, shared.completion_ids, 8))
