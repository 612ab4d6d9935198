import math

import pytest
import torch

from learner.grpo import group_advantages, grpo_loss, token_logprobs, zero_spread_fraction


def test_group_advantages_by_hand():
    c = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(c, 4)
    assert torch.allclose(adv[:4], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-5)
    assert torch.equal(adv[4:], torch.zeros(4))
    centred = group_advantages(c, 4, estimator="dr_grpo")
    assert torch.allclose(centred[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    loo = group_advantages(c, 4, estimator="rloo")
    # leave-one-out: a right answer's baseline is the other three (1/3 right): 1 - 1/3
    assert torch.allclose(loo[:4], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert zero_spread_fraction(c, 4) == 0.5
    with pytest.raises(ValueError):
        group_advantages(torch.ones(6), 4)
    with pytest.raises(ValueError, match="estimator"):
        group_advantages(c, 4, estimator="ppo")


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
def test_correctness_leads_and_shaping_only_breaks_ties(estimator):
    """Hand-built groups of 8: all wrong with a small wording spread, one right, all right."""
    all_wrong = [0.0] * 8
    one_right = [1.0] + [0.0] * 7
    all_right = [1.0] * 8
    correct = torch.tensor(all_wrong + one_right + all_right)
    shaping = torch.tensor([0.300, 0.305, 0.301, 0.302, 0.300, 0.304, 0.303, 0.300] + [0.5] * 8
                           + [0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(correct, 8, estimator=estimator, shaping=shaping).view(3, 8)
    wrong_group, right_group, all_right_group = adv.abs().max(dim=1).values
    assert right_group >= 10 * wrong_group and wrong_group > 0
    assert right_group >= 10 * all_right_group.clamp(min=0)
    assert all_right_group <= 0.05 * 0.8 / 2 + 1e-6  # only the tie-breaking shaping term
    assert adv[1, 0] > 0 > adv[1, 1]  # the right answer up, the wrong ones down
    # a big wording spread still cannot outweigh correctness
    loud = torch.tensor([0.0, 1.0] * 4 + [0.0] * 8 + [0.0] * 8)
    adv = group_advantages(correct, 8, estimator=estimator, shaping=loud).view(3, 8)
    assert adv[0].abs().max() <= 0.05 + 1e-6 and adv[1, 0] >= 0.5
    # zero spread is judged on correctness with a tolerance, not on float equality of totals
    assert zero_spread_fraction(correct, 8) == pytest.approx(2 / 3)
    assert zero_spread_fraction(torch.tensor([0.0, 1e-9] * 4), 8) == 1.0


def test_the_seeds_reward_estimator_normalises_the_total_so_shaping_alone_moves_an_all_wrong_group():
    """`advantage: reward` is `(r - mean r) / (std r + eps)` on the weighted total, as seed 000 writes it: an
    all-wrong group whose totals differ only by shaping gets advantages of size 1, where `grpo` gives it zero."""
    totals = torch.tensor([0.10, 0.12, 0.10, 0.12] + [0.9, 0.1, 0.1, 0.1])
    adv = group_advantages(totals, 4, estimator="reward").view(2, 4)
    expected = (totals.view(2, 4) - totals.view(2, 4).mean(1, keepdim=True)) / (
        totals.view(2, 4).std(1, unbiased=False, keepdim=True) + 1e-4)
    assert torch.allclose(adv, expected) and adv[0].abs().max() > 0.99
    assert group_advantages(torch.zeros(4), 4, estimator="grpo").abs().max() == 0
    assert torch.equal(group_advantages(torch.full((4,), 0.2), 4, estimator="reward"), torch.zeros(4))


def _naive_logprobs(logits, ids, mask):
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(2, ids[:, 1:, None]).squeeze(2)
    return logp * mask[:, 1:]


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_token_logprobs_matches_log_softmax_values_and_gradients(chunk):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, requires_grad=True)
    ids = torch.randint(0, 11, (3, 7))
    mask = torch.ones(3, 7)
    mask[0, 5:] = 0
    ours = token_logprobs(logits, ids, mask, chunk_rows=chunk)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = _naive_logprobs(ref_logits, ids, mask)
    assert torch.allclose(ours, ref, atol=1e-5)
    weights = torch.randn_like(ref)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-5)


def test_token_logprobs_bf16_logits_keep_dtype_of_gradient():
    logits = torch.randn(2, 4, 9, dtype=torch.bfloat16, requires_grad=True)
    ids = torch.randint(0, 9, (2, 4))
    out = token_logprobs(logits, ids)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_grpo_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    mask = torch.ones(1, 2)
    loss, m = grpo_loss(logp, old, None, torch.tensor([1.0]), mask, beta=0.0)
    assert loss.item() == pytest.approx(-(1.0 + 0.5) / 2)
    assert m["clip_fraction"] == 0.0 and m["ratio"] == pytest.approx(0.75)
    # negative advantage: token 1 gives 1; ratio 0.5 < 0.8 is clipped: -min(-0.5, -0.8) = 0.8
    loss, m = grpo_loss(logp, old, None, torch.tensor([-1.0]), mask, beta=0.0)
    assert loss.item() == pytest.approx((1.0 + 0.8) / 2)
    assert m["clip_fraction"] == 0.5
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    loss, m = grpo_loss(logp, old, ref, torch.tensor([1.0]), mask, beta=0.1)
    k3 = (0.5 - math.log(0.5) - 1.0) / 2
    assert m["kl"] == pytest.approx(k3)
    assert loss.item() == pytest.approx(-0.75 + 0.1 * k3)


def test_token_mean_over_the_batch_and_normalizer():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = grpo_loss(logp, logp, None, torch.tensor([1.0, -1.0]), mask, beta=0.0)
    assert loss.item() == pytest.approx(-(3 - 1) / 4)
    loss, _ = grpo_loss(logp, logp, None, torch.tensor([1.0, -1.0]), mask, beta=0.0, normalizer=8.0)
    assert loss.item() == pytest.approx(-(3 - 1) / 8)


def test_zero_advantage_and_zero_beta_give_zero_gradient():
    logp = torch.randn(2, 5, requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach() + 0.1, torch.randn(2, 5), torch.zeros(2), torch.ones(2, 5), beta=0.0)
    loss.backward()
    assert torch.count_nonzero(logp.grad) == 0


def test_ratios_outside_the_clip_range_carry_no_surrogate_gradient():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.1, 0.5, 0.9]])).requires_grad_(True)
    loss, _ = grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 4), beta=0.0)
    loss.backward()
    assert logp.grad[0, 0] == 0  # ratio 1.5 > 1.2 with A > 0: clipped
    assert logp.grad[0, 1] != 0 and logp.grad[0, 2] != 0 and logp.grad[0, 3] != 0
    logp.grad = None
    loss, _ = grpo_loss(logp, old, None, torch.tensor([-1.0]), torch.ones(1, 4), beta=0.0)
    loss.backward()
    assert logp.grad[0, 2] == 0  # ratio 0.5 < 0.8 with A < 0: clipped
    assert logp.grad[0, 0] != 0


def test_positive_advantage_raises_the_completion_logprob_after_one_step():
    torch.manual_seed(0)
    logits = torch.zeros(1, 6, 10, requires_grad=True)
    ids = torch.randint(0, 10, (1, 6))
    mask = torch.ones(1, 6)
    opt = torch.optim.SGD([logits], lr=1.0)
    before = token_logprobs(logits, ids, mask).sum().item()
    logp = token_logprobs(logits, ids, mask)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0]), mask[:, 1:], beta=0.0)
    loss.backward()
    opt.step()
    assert token_logprobs(logits, ids, mask).sum().item() > before
