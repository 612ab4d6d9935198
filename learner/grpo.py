"""GRPO as pure tensor functions: group advantages, per-token log-probabilities, the clipped loss with KL.

Read top to bottom: correctness (and a little shaping) of G samples per prompt → advantages → per-token
logp under the policy, the sampler (old) and the reference → `-min(ρA, clip(ρ)A) + β·k3`, aggregated over
the batch's tokens (a token mean, or a token sum over a constant for Dr. GRPO).
"""
from __future__ import annotations

import torch

ESTIMATORS = ("grpo", "dr_grpo", "rloo")
SPREAD_TOL = 1e-6


def group_advantages(correct: torch.Tensor, group_size: int, *, estimator: str = "grpo",
                     shaping: torch.Tensor | None = None, shaping_coef: float = 0.05,
                     std_floor: float = 0.1) -> torch.Tensor:
    """Advantages led by correctness, for samples laid out group by group ([B*G]).

    The estimator sees only correctness `c` (1 for a verified answer, else 0):
    - `grpo`: `(c - mean_g) / max(std_g, std_floor)` (the floor keeps near-constant groups from exploding);
    - `dr_grpo`: `c - mean_g` (centred only; pair it with a token sum over a constant, see `grpo_loss`);
    - `rloo`: `c - mean of the other G-1` = `G/(G-1)·(c - mean_g)` (leave-one-out baseline).
    Shaping (format, length, …, scaled to [0, 1]) enters as a small additive term `shaping_coef·(s - mean_g s)`
    and is never std-normalised: std-normalising rewards turned a 0.005 wording spread in an all-wrong group
    into ±1.5 of advantage. With `shaping_coef ≤ 0.05` a group whose correctness has no spread gets
    |A| ≤ 0.05, while any group where correctness differs has max |A| ≥ 0.5, so wording can at most break ties.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {estimator!r}; expected one of {ESTIMATORS}")
    if correct.numel() % group_size:
        raise ValueError(f"{correct.numel()} samples do not split into groups of {group_size}")
    grouped = correct.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if estimator == "grpo":
        centred = centred / grouped.std(dim=1, keepdim=True, unbiased=False).clamp(min=std_floor)
    elif estimator == "rloo":
        centred = centred * group_size / max(group_size - 1, 1)
    centred = torch.where(spread_per_group(grouped)[:, None] > SPREAD_TOL, centred, torch.zeros_like(centred))
    if shaping is not None and shaping_coef:
        s = shaping.float().view(-1, group_size)
        centred = centred + shaping_coef * (s - s.mean(dim=1, keepdim=True))
    return centred.view(-1)


def spread_per_group(grouped: torch.Tensor) -> torch.Tensor:
    return grouped.max(dim=1).values - grouped.min(dim=1).values


def zero_spread_fraction(correct: torch.Tensor, group_size: int, tol: float = SPREAD_TOL) -> float:
    """Share of groups whose correctness has no spread (all right or all wrong, within `tol`): they carry no
    correctness signal."""
    return (spread_per_group(correct.float().view(-1, group_size)) <= tol).float().mean().item()


class _TokenLogprobs(torch.autograd.Function):
    """log p(token) = logit[token] - logsumexp(logits), in float32 chunks of rows, keeping no float32
    copy of the logits for backward (the gradient `onehot - softmax` is recomputed chunk by chunk)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        flat, flat_t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        lse = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
        picked = torch.empty_like(lse)
        for i in range(0, flat.shape[0], chunk):
            rows = flat[i : i + chunk].float()
            lse[i : i + chunk] = torch.logsumexp(rows, dim=-1)
            picked[i : i + chunk] = rows.gather(1, flat_t[i : i + chunk, None]).squeeze(1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk = chunk
        return (picked - lse).view(targets.shape)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        flat, flat_t, flat_g = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), grad_out.reshape(-1)
        grad = torch.empty_like(flat)
        for i in range(0, flat.shape[0], ctx.chunk):
            probs = torch.exp(flat[i : i + ctx.chunk].float() - lse[i : i + ctx.chunk, None])
            g = flat_g[i : i + ctx.chunk, None]
            rows = -probs * g
            rows.scatter_add_(1, flat_t[i : i + ctx.chunk, None], g)
            grad[i : i + ctx.chunk] = rows.to(grad.dtype)
        return grad.view_as(logits), None, None


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor | None = None,
                   *, chunk_rows: int = 1024) -> torch.Tensor:
    """Per-token log-probabilities of the taken tokens: `logits[:, t]` scores `input_ids[:, t + 1]`.
    Returns [B, T-1] (zeros where `completion_mask[:, 1:]` is 0), never holding a float32
    log-softmax of the whole vocabulary (a 151,936-token vocabulary at 8 × 640 is 3 GB per copy)."""
    logp = _TokenLogprobs.apply(logits[:, :-1], input_ids[:, 1:].contiguous(), chunk_rows)
    if completion_mask is not None:
        logp = logp * completion_mask[:, 1:].to(logp.dtype)
    return logp


def grpo_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2, beta: float = 0.04,
              normalizer: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Per token `-min(ρA, clip(ρ, 1-clip_low, 1+clip_high)A) + β·k3`, averaged over the tokens of `mask`
    (or summed and divided by `normalizer`, the batch's token count, when accumulating micro-batches).
    k3 = exp(ref - logp) - (ref - logp) - 1, an unbiased, non-negative KL estimate."""
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype)[:, None]
    ratio = torch.exp(logp - logp_old)
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = torch.zeros_like(logp)
    if logp_ref is not None and beta != 0.0:
        delta = logp_ref - logp
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + beta * kl
    tokens = mask.sum().clamp(min=1.0)
    loss = (per_token * mask).sum() / (normalizer if normalizer is not None else tokens)
    with torch.no_grad():
        was_clipped = ((ratio < 1.0 - clip_low) & (adv < 0)) | ((ratio > 1.0 + clip_high) & (adv > 0))
        metrics = {
            "clip_fraction": ((was_clipped.to(mask.dtype) * mask).sum() / tokens).item(),
            "kl": ((kl * mask).sum() / tokens).item(),
            "ratio": ((ratio * mask).sum() / tokens).item(),
            "tokens": mask.sum().item(),
        }
    return loss, metrics
