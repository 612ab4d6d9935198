"""SFT warm start: LoRA supervised fine-tuning on (prompt, target) pairs, loss on the target tokens only."""
from __future__ import annotations

import time

import torch

from learner.learner import LearnStats
from learner.policy import completion_logprobs, pack


def encode_target(tokenizer, target: str) -> list[int]:
    """Target token ids ending in EOS, so the model learns to stop."""
    return tokenizer(target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def sft_loss(model, prompt_ids: list[list[int]], target_ids: list[list[int]], pad_id: int, device) -> torch.Tensor:
    """Mean negative log-likelihood of the target tokens given the prompts."""
    packed = pack(prompt_ids, target_ids, pad_id).to(device)
    logp = completion_logprobs(model, packed)
    mask = packed.completion_mask[:, packed.prompt_len:].to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


def sft_step(learner, prompt_ids: list[list[int]], targets: list[str]) -> LearnStats:
    """One optimiser step of SFT on the learner's policy (micro-batched, gradient accumulated). Prompts come
    as token ids, encoded the way the rollout engines encode them (`actors.engine.encode_prompts`). `tokens` are
    the batch's target tokens over every rank; `step`/`version` are the learner's before the step (its caller,
    `LearnerCore.sft_step`, moves them on)."""
    start = time.perf_counter()
    tok, cfg = learner.tokenizer, learner.cfg
    target_ids = [encode_target(tok, t) for t in targets]
    total = learner.global_sum([float(sum(len(t) for t in target_ids))])[0]  # the whole batch's, over every rank
    learner.model.train()
    learner.optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for i in range(0, len(prompt_ids), cfg.micro_batch_size):
        p, t = prompt_ids[i : i + cfg.micro_batch_size], target_ids[i : i + cfg.micro_batch_size]
        loss = sft_loss(learner.model, p, t, tok.pad_token_id, learner.device) * (sum(len(x) for x in t) / total)
        loss.backward()
        learner.accumulate_gradients()
        loss_sum += loss.item()
    grad_norm = learner.optimizer_step()
    loss_sum = learner.global_sum([loss_sum])[0]
    seconds = time.perf_counter() - start
    return LearnStats(loss=loss_sum, grad_norm=grad_norm, lr=learner.scheduler.get_last_lr()[0], seconds=seconds,
                      tokens=total, tokens_per_s=total / max(seconds, 1e-9), version=learner.version,
                      step=learner.step_count)
