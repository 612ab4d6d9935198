"""GRPO as pure tensor functions: group advantages, per-token log-probabilities, the clipped loss with KL.

Read top to bottom: correctness (and a little shaping) of G samples per prompt → advantages → per-token
logp under the policy, the sampler (old) and the reference → `-min(ρA, clip(ρ)A) + β·k3`, aggregated over
the batch's tokens (a token mean, or a token sum over a constant for Dr. GRPO).
"""
from __future__ import annotations

import torch

ESTIMATORS = ("grpo", "dr_grpo", "rloo", "reward")
REWARD_EPS = 1e-4
SPREAD_TOL = 1e-6


def group_advantages(correct: torch.Tensor, group_size: int, *, estimator: str = "grpo",
                     shaping: torch.Tensor | None = None, shaping_coef: float = 0.05,
                     std_floor: float = 0.1) -> torch.Tensor:
    """Advantages led by correctness, for samples laid out group by group ([B*G]).

    The estimator sees only correctness `c` (1 for a verified answer, else 0):
    - `grpo`: `(c - mean_g) / max(std_g, std_floor)` (the floor keeps near-constant groups from exploding);
    - `dr_grpo`: `c - mean_g` (centred only; pair it with a token sum over a constant, see `grpo_loss`);
    - `rloo`: `c - mean of the other G-1` = `G/(G-1)·(c - mean_g)` (leave-one-out baseline);
    - `reward`: the seed's own formula, `(r - mean_g r) / (std_g r + ε)` on the weighted reward total passed as
      `correct` — no floor, no shaping term, groups without correctness spread kept — so shaping alone can move
      an all-wrong group's advantages to ±1.
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
    if estimator == "reward":
        return (centred / (grouped.std(dim=1, keepdim=True, unbiased=False) + REWARD_EPS)).view(-1)
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


def has_spread(correct: list[float], tol: float = SPREAD_TOL) -> bool:
    """Whether a group's correctness has spread (some right, some wrong): the one test of it in the project,
    the plain-list twin of `spread_per_group(...) > tol`."""
    return bool(correct) and max(correct) - min(correct) > tol


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


def linear_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                    chunk_rows: int = 1024) -> torch.Tensor:
    """log p(target) from hidden states and the LM head, `hidden @ weight.T` fused with the log-softmax: logits
    exist one chunk of rows at a time, in forward and (recomputed) in backward, never for the whole batch. The
    packed learner path runs the head only on the rows that predict a completion token ([M, H] → [M])."""
    return _LinearLogprobs.apply(hidden, weight, targets, chunk_rows)


class _LinearLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        lse = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        picked = torch.empty_like(lse)
        for i in range(0, hidden.shape[0], chunk):
            logits = (hidden[i : i + chunk] @ weight.T).float()
            lse[i : i + chunk] = torch.logsumexp(logits, dim=-1)
            picked[i : i + chunk] = logits.gather(1, targets[i : i + chunk, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk = chunk
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden, weight, targets, lse = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        for i in range(0, hidden.shape[0], ctx.chunk):
            h = hidden[i : i + ctx.chunk]
            g = grad_out[i : i + ctx.chunk, None].float()
            d_logits = -torch.exp((h @ weight.T).float() - lse[i : i + ctx.chunk, None]) * g
            d_logits.scatter_add_(1, targets[i : i + ctx.chunk, None], g)
            d_logits = d_logits.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[i : i + ctx.chunk] = d_logits @ weight
            if grad_weight is not None:
                grad_weight += (d_logits.T @ h).float()
        return grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype), None, None


def truncated_is_weights(logp_learner: torch.Tensor, logp_sampler: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance sampling (TIS): per token `min(π_learner / π_sampler, cap)`, no gradient.

    The sampler (vLLM, or an adapter one step old under `async_steps: 1`) is not exactly the policy the
    learner differentiates; weighting each token's policy-gradient term by this ratio makes the update an
    estimate under the learner's policy, and the cap bounds its variance (Yao et al., 2025)."""
    return torch.exp(logp_learner.detach().float() - logp_sampler.float()).clamp(max=cap)


def grpo_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, *, clip_low: float = 0.2, clip_high: float = 0.2, beta: float = 0.04,
              normalizer: float | None = None, is_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Per token `-w·min(ρA, clip(ρ, 1-clip_low, 1+clip_high)A) + β·k3`, averaged over the tokens of `mask`
    (or summed and divided by `normalizer`, the batch's token count, when accumulating micro-batches).
    ρ is against `logp_old`, the learner's own log-probs before this step's updates (the proximal policy);
    `w` are truncated importance weights from the sampler to that policy (1 without them). `advantages` is one
    per row ([B], broadcast over tokens) or one per token (the shape of `logp`, for packed sequences).
    k3 = exp(ref - logp) - (ref - logp) - 1, an unbiased, non-negative KL estimate."""
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype)
    if adv.dim() < logp.dim():
        adv = adv[:, None]
    ratio = torch.exp(logp - logp_old)
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if is_weights is not None:
        per_token = per_token * is_weights.to(logp.dtype)
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
