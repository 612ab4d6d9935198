"""The learner: GRPO steps on LoRA weights (`LearnerCore`, plain Python) and its thin Ray actor shell."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field

import torch

from learner.adapter import AdapterWeights, export_adapter, load_adapter_weights
from learner.grpo import group_advantages, grpo_loss, zero_spread_fraction
from learner.policy import PackedBatch, PolicyConfig, completion_logprobs, load_policy, pack, reference_logprobs


@dataclass
class LearnerConfig:
    """Optimisation and GRPO settings (the policy itself is `policy`)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    total_steps: int = 1000
    schedule: str = "constant_with_warmup"
    max_grad_norm: float = 1.0
    micro_batch_size: int = 8
    epochs: int = 1
    clip_low: float = 0.2
    clip_high: float = 0.2
    beta: float = 0.04
    advantage: str = "grpo"  # grpo | dr_grpo | rloo, see grpo.group_advantages
    shaping_coef: float = 0.05
    std_floor: float = 0.1
    max_completion_tokens: int = 256  # Dr. GRPO's constant: the loss is a token sum / (completions × this)
    logp_old: str = "auto"
    chunk_rows: int = 1024
    seed: int = 0


@dataclass
class TrainBatch:
    """One step's data: G completions per prompt laid out group by group, with their rewards.
    `sampler_logprobs` (per completion token) are used as `logp_old` when `logp_old="sampler"`."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rewards: list[float]
    group_size: int
    sampler_logprobs: list[list[float]] | None = None
    correct: list[float] | None = None  # 1.0 for a verified answer; None: `rewards` lead the advantages
    shaping: list[float] | None = None  # the non-correctness signals in [0, 1]


def _pad(rows: list[list[float]], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row[:width], dtype=torch.float32)
    return out


class LearnerCore:
    """Holds the policy, its optimiser and schedule; one `step` = advantages → (ref, old) logp → updates."""

    def __init__(self, cfg: LearnerConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.model, self.tokenizer = load_policy(cfg.policy)
        self.device = next(self.model.parameters()).device
        self.merged: list[AdapterWeights] = []  # adapters folded into the base weights, in order
        self._track_trainable()
        self.step_count = 0
        self.version = 0

    def _track_trainable(self) -> None:
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.master = [p.detach().float().clone() if p.dtype != torch.float32 else p for p in self.trainable]
        self._new_optimizer()

    def merge_adapter(self) -> AdapterWeights:
        """Fold the current adapter into the base weights and continue in a fresh (zero) adapter on top.

        After the SFT warm start this makes the SFT model the reference: disabling the adapter (the KL
        reference) now gives the SFT model, so β > 0 means "stay near SFT", not "go back before it". The
        policy's outputs do not change. Returns the merged adapter, which every rollout worker must merge too.
        """
        weights = self.export_adapter()
        self._fold_into_base(weights)
        self.version += 1
        return weights

    def _fold_into_base(self, weights: AdapterWeights) -> None:
        from peft import get_peft_model

        from learner.policy import lora_config

        load_adapter_weights(self.model, weights)
        base = self.model.merge_and_unload()
        self.model = get_peft_model(base, lora_config(self.cfg.policy), autocast_adapter_dtype=False)
        dtype = next(base.parameters()).dtype
        for param in self.model.parameters():
            if param.requires_grad:
                param.data = param.data.to(dtype if self.cfg.policy.adapter_dtype == "auto"
                                           else getattr(torch, self.cfg.policy.adapter_dtype))
        self.model.to(self.device)
        self.merged.append(weights)
        self._track_trainable()

    def _new_optimizer(self) -> None:
        """AdamW (and its LR schedule) over fp32 master weights: the LoRA parameters themselves when they are
        fp32, else fp32 copies of the bf16 ones (mixed precision without per-layer casts)."""
        from transformers import get_scheduler

        cfg = self.cfg
        self.optimizer = torch.optim.AdamW(self.master, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.scheduler = get_scheduler(cfg.schedule, self.optimizer, num_warmup_steps=cfg.warmup_steps,
                                       num_training_steps=cfg.total_steps)

    def reset_optimizer(self, lr: float | None = None, total_steps: int | None = None) -> None:
        """A fresh AdamW and schedule (a new stage, or SFT → GRPO), optionally with a new LR and length."""
        if lr is not None:
            self.cfg.lr = lr
        if total_steps is not None:
            self.cfg.total_steps = total_steps
        self._new_optimizer()

    def optimizer_step(self) -> float:
        """Clip the gradient, step AdamW on the master weights, copy them back; returns the gradient norm."""
        for master, param in zip(self.master, self.trainable):
            if master is not param:
                master.grad = None if param.grad is None else param.grad.float()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.master, self.cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            for master, param in zip(self.master, self.trainable):
                if master is not param:
                    param.copy_(master)
                    param.grad = None
        return grad_norm

    def _sync_master_from_model(self) -> None:
        with torch.no_grad():
            for master, param in zip(self.master, self.trainable):
                if master is not param:
                    master.copy_(param.float())

    # ------------------------------------------------------------ GRPO

    def _micro_batches(self, packed: PackedBatch) -> list[torch.Tensor]:
        """Row indices per micro-batch, rows of similar length together (less padding)."""
        lengths = packed.attention_mask.sum(dim=1)
        order = torch.argsort(lengths, descending=True)
        return list(torch.split(order, self.cfg.micro_batch_size))

    def _no_grad_logprobs(self, packed: PackedBatch, micro: list[torch.Tensor], reference: bool) -> torch.Tensor:
        out = torch.zeros(packed.completion_mask[:, packed.prompt_len:].shape, dtype=torch.float32, device=self.device)
        fn = reference_logprobs if reference else completion_logprobs
        with torch.no_grad():
            for idx in micro:
                sub = packed.rows(idx)
                out[idx, : sub.input_ids.shape[1] - sub.prompt_len] = fn(self.model, sub, chunk_rows=self.cfg.chunk_rows).float()
        return out

    def step(self, batch: TrainBatch) -> dict[str, float]:
        """One GRPO step on a batch: `epochs` optimiser updates; returns loss, KL, clip fraction, grad norm,
        zero-spread groups, tokens/s and the new adapter version."""
        cfg, start = self.cfg, time.perf_counter()
        self.model.train()
        rewards = torch.tensor(batch.rewards, dtype=torch.float32)
        correct = torch.tensor(batch.correct, dtype=torch.float32) if batch.correct is not None else rewards
        shaping = torch.tensor(batch.shaping, dtype=torch.float32) if batch.shaping is not None else None
        packed = pack(batch.prompt_ids, batch.completion_ids, self.tokenizer.pad_token_id)
        packed.extras["advantages"] = group_advantages(correct, batch.group_size, estimator=cfg.advantage,
                                                       shaping=shaping, shaping_coef=cfg.shaping_coef,
                                                       std_floor=cfg.std_floor)
        c_len = packed.input_ids.shape[1] - packed.prompt_len
        use_sampler = cfg.logp_old == "sampler" or (cfg.logp_old == "auto" and batch.sampler_logprobs is not None
                                                    and cfg.epochs > 1)
        if use_sampler:
            if batch.sampler_logprobs is None:
                raise ValueError("logp_old='sampler' needs the batch's sampler_logprobs")
            packed.extras["logp_old"] = _pad(batch.sampler_logprobs, c_len)
        packed = packed.to(self.device)
        micro = self._micro_batches(packed)
        if cfg.beta != 0.0:
            packed.extras["logp_ref"] = self._no_grad_logprobs(packed, micro, reference=True)
        if cfg.epochs > 1 and not use_sampler:
            packed.extras["logp_old"] = self._no_grad_logprobs(packed, micro, reference=False)
        tokens = float(packed.completion_mask.sum())
        normalizer = tokens if cfg.advantage != "dr_grpo" else float(len(batch.completion_ids) * cfg.max_completion_tokens)
        totals = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "ratio": 0.0}
        grad_norm = 0.0
        for _ in range(cfg.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for idx in micro:
                sub = packed.rows(idx)
                logp = completion_logprobs(self.model, sub, chunk_rows=cfg.chunk_rows).float()
                loss, m = grpo_loss(
                    logp, sub.extras.get("logp_old", logp.detach()), sub.extras.get("logp_ref"),
                    sub.extras["advantages"], sub.completion_mask[:, sub.prompt_len:],
                    clip_low=cfg.clip_low, clip_high=cfg.clip_high, beta=cfg.beta, normalizer=normalizer,
                )
                loss.backward()
                share = m["tokens"] / tokens / cfg.epochs
                totals["loss"] += loss.item() / cfg.epochs
                for key in ("kl", "clip_fraction", "ratio"):
                    totals[key] += m[key] * share
            grad_norm = self.optimizer_step()
        self.step_count += 1
        self.version += 1
        seconds = time.perf_counter() - start
        return {
            **totals, "grad_norm": grad_norm, "lr": self.scheduler.get_last_lr()[0],
            "zero_spread_groups": zero_spread_fraction(correct, batch.group_size),
            "reward_mean": float(rewards.mean()), "completion_tokens": tokens,
            "tokens_per_s": float(packed.attention_mask.sum()) * max(cfg.epochs, 1) / seconds,
            "learn_seconds": seconds, "step": self.step_count, "version": self.version,
        }

    def sft_step(self, prompt_ids: list[list[int]], targets: list[str]) -> dict[str, float]:
        """One supervised step on (prompt token ids, target text) pairs; see `learner.sft`."""
        from learner.sft import sft_step

        metrics = sft_step(self, prompt_ids, targets)
        self.step_count += 1
        self.version += 1
        return {**metrics, "step": self.step_count, "version": self.version}

    def completion_logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of completions under the current policy (no gradients)."""
        self.model.eval()
        packed = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id).to(self.device)
        logp = self._no_grad_logprobs(packed, self._micro_batches(packed), reference=False)
        return [logp[i, : len(c)].tolist() for i, c in enumerate(completion_ids)]

    # ------------------------------------------------------------ weights

    def export_adapter(self) -> AdapterWeights:
        return export_adapter(self.model, self.version)

    def save(self, directory: str | os.PathLike) -> str:
        """Adapter, optimiser, scheduler, step and version, written to a temp dir then renamed into place."""
        target = pathlib.Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.export_adapter().save(tmp / "adapter")
        for i, weights in enumerate(self.merged):
            weights.save(tmp / "merged" / str(i))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "master": [m.detach().cpu() for m in self.master], "rng": torch.get_rng_state()},
                   tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": self.step_count, "version": self.version,
                                                    "config": asdict(self.cfg)}, indent=2, default=str))
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        return str(target)

    def load(self, directory: str | os.PathLike) -> dict:
        """Resume exactly: adapter, optimiser and scheduler state, step and version."""
        path = pathlib.Path(directory)
        merged = sorted((path / "merged").iterdir(), key=lambda p: int(p.name)) if (path / "merged").exists() else []
        for folder in merged[len(self.merged):]:
            self._fold_into_base(AdapterWeights.load(folder))
        load_adapter_weights(self.model, AdapterWeights.load(path / "adapter"))
        trainer = torch.load(path / "trainer_state.pt", map_location=self.device, weights_only=False)
        with torch.no_grad():
            for master, saved in zip(self.master, trainer["master"]):
                master.copy_(saved)
        self.optimizer.load_state_dict(trainer["optimizer"])
        self.scheduler.load_state_dict(trainer["scheduler"])
        torch.set_rng_state(trainer["rng"].cpu())
        state = json.loads((path / "state.json").read_text())
        self.step_count, self.version = state["step"], state["version"]
        return {"step": self.step_count, "version": self.version}

    def load_adapter_from(self, directory: str | os.PathLike) -> int:
        """Start a new stage from another run's or stage's adapter (a checkpoint dir or an adapter dir):
        the weights are copied, the optimiser and schedule start fresh, the version moves on."""
        load_adapter_weights(self.model, AdapterWeights.load(directory))
        self._sync_master_from_model()
        self._new_optimizer()
        self.version += 1
        return self.version

    def merged_adapters(self) -> list[AdapterWeights]:
        """The adapters folded into the base weights, in order (a resumed run re-sends them to its workers)."""
        return list(self.merged)

    def ready(self) -> dict:
        return {"device": str(self.device), "version": self.version, "step": self.step_count,
                "trainable_parameters": sum(p.numel() for p in self.trainable)}


def create_learner(cfg: LearnerConfig, *, num_gpus: float = 0.0, name: str = "learner"):
    """The `Learner` Ray actor: a named shell around `LearnerCore`."""
    import ray

    return ray.remote(LearnerCore).options(name=name, num_gpus=num_gpus, num_cpus=1).remote(cfg)
