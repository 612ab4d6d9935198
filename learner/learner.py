"""The learner: GRPO steps on LoRA weights (`LearnerCore`, plain Python) and its thin Ray actor shell."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

from learner.adapter import AdapterWeights, export_adapter, load_adapter_weights
from learner.grpo import group_advantages, grpo_loss, truncated_is_weights, zero_spread_fraction
from learner.policy import (TREE_NEEDS_CACHE, PackedSequences, PolicyConfig, checkpointing_on, forward_positions,
                            load_policy, pack_sequences, pack_trees, packed_logprobs)


@dataclass
class LearnerConfig:
    """The `learner:` section of the training config: optimisation, GRPO and placement settings. The policy
    (model and LoRA) is `PolicyConfig`, the `model:` section; run-given values (seed, total steps, the rollout's
    max tokens) are `LearnerCore`'s keyword arguments."""

    lr: float = 1e-5
    beta: float = 0.04
    clip_low: float = 0.2
    clip_high: float = 0.2
    epochs: int = 1
    micro_batch_size: int = 8  # rows per micro-batch (GRPO packs several short sequences into one row)
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    gpus: float = 0.0
    advantage: str = "grpo"  # grpo | dr_grpo | rloo (correctness-led) | reward: the seed's (r - mean)/(std + eps)
    shaping_coef: float = 0.05  # weight of the centred shaping tie-breaker beside correctness
    std_floor: float = 0.1
    tis: str = "auto"  # truncated importance sampling sampler → learner: auto (on with vLLM or async_steps), on, off
    tis_cap: float = 2.0  # cap of the TIS weights when the batch carries sampler logprobs (`tis: off`: no weights)
    world_size: int = 0  # data-parallel learner ranks (0: one per whole GPU of `gpus`, else 1; ≥ 2 on CPUs: gloo)
    liger: str | bool = "auto"  # Liger's fused RMSNorm/SwiGLU/RoPE kernels: auto (CUDA + installed), true, false
    torch_threads: int = 0  # CPU threads for the learner (0: every core this process may use; Ray's default is 1)
    restarts: int = 1  # a learner that dies is restarted from the last checkpoint this many times per run
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    schedule: str = "constant_with_warmup"  # constant | constant_with_warmup | cosine | linear, for GRPO, SFT and RAFT
    min_lr: float = 0.0  # cosine: the LR it decays to (SLM-Math: 5e-6 → 1e-7); 0: to zero
    chunk_rows: int = 1024  # rows of the fused LM head + log-softmax computed at a time
    packing: str = "flat"  # flat | tree (each group's prompt forwarded once) | auto (the layout whose forward runs fewer positions)


@dataclass
class LearnStats:
    """What one learner step (GRPO, SFT or RAFT) reports: `tokens` are the completion (or target) tokens trained
    on, over every rank; `seconds` the step's wall time; `version` the adapter version it produced."""

    loss: float
    grad_norm: float
    lr: float
    seconds: float
    tokens: float
    tokens_per_s: float
    version: int
    step: int
    kl: float = 0.0
    clip_fraction: float = 0.0
    ratio: float = 1.0
    mismatch_kl: float = 0.0
    tis_clipped: float = 0.0
    zero_spread_groups: float = 0.0
    reward_mean: float = 0.0
    logical_tokens: float = 0.0  # prompt + completion tokens of every sequence
    computed_tokens: float = 0.0  # positions the forward passes ran, padding included (tree: each shared prompt once)

    def metrics(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrainBatch:
    """One step's data: G completions per prompt laid out group by group, with their rewards.
    `sampler_logprobs` (per completion token) give the truncated importance weights and the mismatch metrics."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    rewards: list[float]
    group_size: int
    sampler_logprobs: list[list[float]] | None = None
    correct: list[float] | None = None  # 1.0 for a verified answer; None: `rewards` lead the advantages
    shaping: list[float] | None = None  # the non-correctness signals in [0, 1]
    loss_masks: list[list[int]] | None = None  # per completion token: 1 trained, 0 context (an observation); None: all 1

    def trained_tokens(self) -> int:
        return sum(map(sum, self.loss_masks)) if self.loss_masks is not None else sum(map(len, self.completion_ids))


@dataclass
class MicroBatchTargets:
    """Per completion token of one packed micro-batch, what its loss is computed against (fixed for the step)."""

    advantages: torch.Tensor
    sampler: torch.Tensor | None = None  # the sampler's log-probs (when the batch carries them)
    reference: torch.Tensor | None = None  # adapter off (when β ≠ 0)
    old: torch.Tensor | None = None  # the step's starting log-probs (when epochs > 1; else the current ones detached)
    mask: torch.Tensor | None = None  # 1 trained, 0 an observation's token (when the batch has loss masks)


def _flat_tokens(rows: list[list[float]], packed: PackedSequences, lengths: list[int]) -> torch.Tensor:
    """Per-token values given per sequence (e.g. sampler log-probs), in the packed micro-batch's token order."""
    parts = []
    for i in packed.rows.tolist():
        row = list(rows[i][: lengths[i]])
        parts.append(torch.tensor(row + [0.0] * (lengths[i] - len(row)), dtype=torch.float32))
    return torch.cat(parts) if parts else torch.zeros(0)


class LearnerCore:
    """Holds the policy, its optimiser and schedule; one `step` = advantages → (ref, old) logp → updates."""

    def __init__(self, cfg: LearnerConfig, policy: PolicyConfig, *, seed: int = 0, total_steps: int = 1000,
                 max_completion_tokens: int = 256, rank: int = 0, world_size: int = 1) -> None:
        """`total_steps`: the LR schedule's length; `max_completion_tokens`: Dr. GRPO's constant (the loss is a
        token sum / (completions × this)), the rollout's max_tokens."""
        torch.manual_seed(seed)
        if cfg.torch_threads >= 0:
            torch.set_num_threads(cfg.torch_threads or len(os.sched_getaffinity(0)))
        self.cfg = dataclasses.replace(cfg)  # a private copy: `reset_optimizer` changes its lr
        self.policy = policy
        self.seed, self.total_steps, self.max_completion_tokens = seed, total_steps, max_completion_tokens
        self.tis_cap = cfg.tis_cap if cfg.tis != "off" else 0.0  # 0: no importance weights
        self.rank, self.world_size = rank, world_size
        self.model, self.tokenizer = load_policy(policy, liger=cfg.liger)
        self.device = next(self.model.parameters()).device
        self.checkpointing = checkpointing_on(policy, self.device)
        if cfg.packing == "tree" and self.checkpointing:
            raise ValueError(TREE_NEEDS_CACHE)
        self.merged: list[AdapterWeights] = []  # adapters folded into the base weights, in order
        self._track_trainable()
        self.step_count = 0
        self.version = 0

    def _track_trainable(self) -> None:
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.master = [p.detach().float().clone() if p.dtype != torch.float32 else p for p in self.trainable]
        self._new_optimizer()

    def begin_full_sft(self) -> int:
        """`sft.mode: full`: every base weight trainable (fp32 masters, a fresh optimizer), the adapter frozen at
        zero, so SFT steps fine-tune the whole model; `merge_adapter` afterwards returns to LoRA on top of it.
        Returns the trainable parameter count."""
        for name, param in self.model.named_parameters():
            param.requires_grad = "lora_" not in name
        self._track_trainable()
        return sum(p.numel() for p in self.trainable)

    def save_model(self, directory: str | os.PathLike) -> str:
        """The base weights (adapter left out) as a model directory that transformers and vLLM load, with the
        tokenizer: the model a full SFT made, for the rollout engines. Rank 0 writes."""
        path = pathlib.Path(directory)
        if self.rank == 0:
            base = self.model.get_base_model()
            state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if "lora_" not in k}
            base.save_pretrained(path, state_dict=state)
            self.tokenizer.save_pretrained(path)
        return str(path)

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
        self.model = get_peft_model(base, lora_config(self.policy), autocast_adapter_dtype=False)
        dtype = next(base.parameters()).dtype
        for param in self.model.parameters():
            if param.requires_grad:
                param.data = param.data.to(dtype if self.policy.adapter_dtype == "auto"
                                           else getattr(torch, self.policy.adapter_dtype))
        self.model.to(self.device)
        self.merged.append(weights)
        self._track_trainable()

    def _new_optimizer(self) -> None:
        """AdamW (and its LR schedule) over fp32 master weights: the LoRA parameters themselves when they are
        fp32, else fp32 copies of the bf16 ones (mixed precision without per-layer casts)."""
        from transformers import get_scheduler

        cfg = self.cfg
        self.optimizer = torch.optim.AdamW(self.master, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        cosine_floor = cfg.schedule == "cosine" and cfg.min_lr > 0
        self.scheduler = get_scheduler("cosine_with_min_lr" if cosine_floor else cfg.schedule, self.optimizer,
                                       num_warmup_steps=cfg.warmup_steps, num_training_steps=self.total_steps,
                                       scheduler_specific_kwargs={"min_lr": cfg.min_lr} if cosine_floor else None)

    def reset_optimizer(self, lr: float | None = None, total_steps: int | None = None) -> None:
        """A fresh AdamW and schedule (a new stage, or SFT → GRPO), optionally with a new LR and length (kept
        for later resets, `load_adapter_from` and checkpoints)."""
        if lr is not None:
            self.cfg = dataclasses.replace(self.cfg, lr=lr)
        if total_steps is not None:
            self.total_steps = total_steps
        self._new_optimizer()

    def init_distributed(self, address: str, port: int, backend: str) -> int:
        """Join the data-parallel group (rank `self.rank` of `self.world_size`): gloo on CPUs, NCCL on GPUs."""
        import datetime

        import torch.distributed as dist

        dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=self.rank,
                                world_size=self.world_size, timeout=datetime.timedelta(minutes=10))
        return self.rank

    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over the data-parallel group (in place); nothing to do for a single learner."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def global_sum(self, values: list[float]) -> list[float]:
        return self._all_reduce(torch.tensor(values, dtype=torch.float64, device=self.device)).tolist()

    def accumulate_gradients(self) -> None:
        """Move the micro-batch's gradients into the fp32 master gradients (bf16 `param.grad` never accumulates
        across micro-batches, which would round away small contributions)."""
        for master, param in zip(self.master, self.trainable):
            if master is param or param.grad is None:
                continue
            if master.grad is None:
                master.grad = param.grad.float()
            else:
                master.grad += param.grad.float()
            param.grad = None

    def optimizer_step(self) -> float:
        """All-reduce the gradients (data-parallel), clip, step AdamW on the master weights, copy them back;
        returns the gradient norm."""
        self.accumulate_gradients()
        if self.world_size > 1:
            grads = [m.grad if m.grad is not None else torch.zeros_like(m) for m in self.master]
            flat = self._all_reduce(torch.cat([g.flatten() for g in grads]))
            for master, part in zip(self.master, torch.split(flat, [g.numel() for g in grads])):
                master.grad = part.view_as(master).clone()
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

    def _micro_batches(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[PackedSequences]:
        """Packed rows, `micro_batch_size` rows per micro-batch: flat (rows as long as the longest sequence) or
        tree (each group's prompt forwarded once, its keys and values read by each completion; never under
        gradient checkpointing, which drops the cache); `auto` takes the layout whose forward runs fewer positions.
        `packing_tokens`: the batch's tokens, and the positions the chosen layout's forward runs, padding included."""
        pad, micro = self.tokenizer.pad_token_id, self.cfg.micro_batch_size
        layouts = {}
        if self.cfg.packing != "tree":
            layouts["flat"] = pack_sequences(prompt_ids, completion_ids, micro, pad_id=pad)
        if self.cfg.packing == "tree" or (self.cfg.packing == "auto" and not self.checkpointing):
            layouts["tree"] = pack_trees(prompt_ids, completion_ids, micro, pad_id=pad)
        chosen = min(layouts.values(), key=forward_positions)
        self.packing_tokens = (float(sum(map(len, prompt_ids)) + sum(map(len, completion_ids))),
                               float(forward_positions(chosen)))
        return [m.to(self.device) for m in chosen]

    def _no_grad_logprobs(self, micro: PackedSequences, reference: bool = False) -> torch.Tensor:
        with torch.no_grad():
            if reference:
                with self.model.disable_adapter():
                    return packed_logprobs(self.model, micro, chunk_rows=self.cfg.chunk_rows).float()
            return packed_logprobs(self.model, micro, chunk_rows=self.cfg.chunk_rows).float()

    def hang_next_step(self, seconds: float) -> None:
        """Test hook: the next `step` sleeps this long first (a wedged learner)."""
        self._hang_seconds = seconds

    def stacks(self) -> str:
        """Every thread's Python stack in this actor (call it in the `inspect` concurrency group while a step runs)."""
        import sys
        import threading
        import traceback

        names = {t.ident: t.name for t in threading.enumerate()}
        return "\n".join(f"--- thread {names.get(i, i)}\n" + "".join(traceback.format_stack(f))
                         for i, f in sys._current_frames().items())

    def step(self, batch: TrainBatch) -> LearnStats:
        """One GRPO step on a batch (this rank's share of it when data-parallel): `epochs` optimiser updates.

        Sequences are packed into micro-batches without padding; per micro-batch: the reference log-probs
        (adapter off, when β > 0), the proximal log-probs (this step's starting policy: recomputed when
        epochs > 1, else the current ones detached), truncated importance weights from the sampler's log-probs
        when the batch carries them, the clipped loss. Gradients accumulate in fp32 and are summed over ranks,
        the loss is normalised by the whole batch's tokens, so N ranks make the same update as one.
        Returns loss, KL, clip fraction, grad norm, sampler mismatch, tokens/s and the new adapter version."""
        if getattr(self, "_hang_seconds", 0.0):
            seconds, self._hang_seconds = self._hang_seconds, 0.0
            time.sleep(seconds)
        cfg, start = self.cfg, time.perf_counter()
        self.model.train()
        rewards = torch.tensor(batch.rewards, dtype=torch.float32)
        correct = torch.tensor(batch.correct, dtype=torch.float32) if batch.correct is not None else rewards
        shaping = torch.tensor(batch.shaping, dtype=torch.float32) if batch.shaping is not None else None
        advantages = group_advantages(rewards if cfg.advantage == "reward" else correct, batch.group_size,
                                      estimator=cfg.advantage, shaping=shaping,
                                      shaping_coef=cfg.shaping_coef, std_floor=cfg.std_floor).to(self.device)
        lengths = [len(c) for c in batch.completion_ids]
        micro = self._micro_batches(batch.prompt_ids, batch.completion_ids)
        targets = [self._targets(m, advantages, batch, lengths) for m in micro]
        tokens, completions, seq_tokens = self.global_sum([float(batch.trained_tokens()), float(len(lengths)),
                                                            float(sum(map(len, batch.prompt_ids)) + sum(lengths))])
        normalizer = tokens if cfg.advantage != "dr_grpo" else completions * self.max_completion_tokens
        totals = dict.fromkeys(("loss", "kl", "clip_fraction", "ratio", "mismatch_kl", "tis_clipped"), 0.0)
        grad_norm = 0.0
        for _ in range(cfg.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for m, t in zip(micro, targets):
                self._micro_step(m, t, tokens, normalizer, totals)
            grad_norm = self.optimizer_step()
        totals = dict(zip(totals, self.global_sum(list(totals.values()))))
        self.step_count += 1
        self.version += 1
        seconds = time.perf_counter() - start
        return LearnStats(
            **totals, grad_norm=grad_norm, lr=self.scheduler.get_last_lr()[0],
            zero_spread_groups=zero_spread_fraction(correct, batch.group_size),
            reward_mean=float(rewards.mean()), tokens=tokens,
            logical_tokens=self.packing_tokens[0], computed_tokens=self.packing_tokens[1],
            tokens_per_s=seq_tokens * max(cfg.epochs, 1) / seconds,
            seconds=seconds, step=self.step_count, version=self.version,
        )

    def _targets(self, micro: PackedSequences, advantages: torch.Tensor, batch: TrainBatch,
                 lengths: list[int]) -> MicroBatchTargets:
        """A micro-batch's advantages, loss mask and, before any update of the step, its sampler, reference and old
        log-probs."""
        targets = MicroBatchTargets(advantages[micro.token_rows()])
        if batch.sampler_logprobs is not None:
            targets.sampler = _flat_tokens(batch.sampler_logprobs, micro, lengths).to(self.device)
        if batch.loss_masks is not None:
            targets.mask = _flat_tokens(batch.loss_masks, micro, lengths).to(self.device)
        if self.cfg.beta != 0.0:
            targets.reference = self._no_grad_logprobs(micro, reference=True)
        if self.cfg.epochs > 1:
            targets.old = self._no_grad_logprobs(micro)
        return targets

    def _micro_step(self, micro: PackedSequences, targets: MicroBatchTargets, tokens: float, normalizer: float,
                    totals: dict[str, float]) -> None:
        """Forward, loss and backward of one micro-batch (gradients into the fp32 masters); adds its share of the
        step's metrics to `totals`. `tokens` is the whole batch's completion token count, over every rank."""
        cfg = self.cfg
        logp = packed_logprobs(self.model, micro, chunk_rows=cfg.chunk_rows).float()
        old = targets.old if targets.old is not None else logp.detach()
        weights = None
        if targets.sampler is not None and self.tis_cap > 0:
            weights = truncated_is_weights(old, targets.sampler, self.tis_cap)
        mask = targets.mask if targets.mask is not None else torch.ones_like(logp)
        loss, metrics = grpo_loss(logp, old, targets.reference, targets.advantages, mask,
                                  clip_low=cfg.clip_low, clip_high=cfg.clip_high, beta=cfg.beta,
                                  normalizer=normalizer, is_weights=weights)
        loss.backward()
        self.accumulate_gradients()
        share = metrics["tokens"] / tokens / cfg.epochs
        totals["loss"] += loss.item() / cfg.epochs
        for key in ("kl", "clip_fraction", "ratio"):
            totals[key] += metrics[key] * share
        if targets.sampler is not None:
            with torch.no_grad():
                log_r = old - targets.sampler
                mismatch, capped = torch.exp(log_r) - 1 - log_r, None if weights is None else weights >= self.tis_cap
                if targets.mask is not None:
                    mismatch = mismatch * targets.mask
                    capped = None if capped is None else capped & (targets.mask > 0)
                totals["mismatch_kl"] += float(mismatch.sum()) / tokens / cfg.epochs
                if capped is not None:
                    totals["tis_clipped"] += float(capped.sum()) / tokens / cfg.epochs

    def sft_step(self, prompt_ids: list[list[int]], targets: list[str]) -> LearnStats:
        """One supervised step on (prompt token ids, target text) pairs; see `learner.sft`."""
        from learner.sft import sft_step

        stats = sft_step(self, prompt_ids, targets)
        self.step_count += 1
        self.version += 1
        return dataclasses.replace(stats, step=self.step_count, version=self.version)

    def completion_logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of completions under the current policy (no gradients)."""
        self.model.eval()
        out: list[list[float]] = [[] for _ in completion_ids]
        for m in self._micro_batches(prompt_ids, completion_ids):
            logp, owner = self._no_grad_logprobs(m).tolist(), m.token_rows().tolist()
            for value, row in zip(logp, owner):
                out[row].append(value)
        return out

    # ------------------------------------------------------------ weights

    def export_adapter(self) -> AdapterWeights:
        return export_adapter(self.model, self.version)

    def save(self, directory: str | os.PathLike, files: dict[str, str] | None = None) -> str:
        """Adapter, optimiser, scheduler, step and version, written to a temp dir then renamed into place
        (by rank 0 alone when data-parallel: every rank holds the same weights). `files` (name → text) go in
        the same directory, so a caller's state (the driver's run state) is checkpointed atomically with it."""
        target = pathlib.Path(directory)
        if self.rank != 0:
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.export_adapter().save(tmp / "adapter")
        for i, weights in enumerate(self.merged):
            weights.save(tmp / "merged" / str(i))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "master": [m.detach().cpu() for m in self.master], "rng": torch.get_rng_state()},
                   tmp / "trainer_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": self.step_count, "version": self.version,
                                                    "config": asdict(self.cfg), "policy": asdict(self.policy)},
                                                   indent=2, default=str))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
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
        trainer = torch.load(path / "trainer_state.pt", map_location=self.device, weights_only=True)
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

    def fold_in(self, directory: str | os.PathLike) -> list[AdapterWeights]:
        """Start from an SFT adapter made elsewhere (`init_adapter`): a checkpoint's merged adapters and its adapter,
        or a plain adapter directory, folded into the base weights in order — so the KL reference is that model —
        with a fresh zero adapter on top. Returns what was folded, for the rollout workers to merge too."""
        path = pathlib.Path(directory)
        folders = sorted((path / "merged").iterdir(), key=lambda p: int(p.name)) if (path / "merged").is_dir() else []
        folders.append(path / "adapter" if (path / "adapter" / "adapter_config.json").exists() else path)
        folded = []
        for folder in folders:
            self.version += 1
            weights = dataclasses.replace(AdapterWeights.load(folder), version=self.version)
            self._fold_into_base(weights)
            folded.append(weights)
        return folded

    def merged_adapters(self) -> list[AdapterWeights]:
        """The adapters folded into the base weights, in order (a resumed run re-sends them to its workers)."""
        return list(self.merged)

    def ready(self) -> dict:
        return {"device": str(self.device), "version": self.version, "step": self.step_count,
                "trainable_parameters": sum(p.numel() for p in self.trainable)}


def learner_placement(cfg: LearnerConfig) -> tuple[int, float]:
    """(ranks, GPUs per rank) for `learner.gpus` / `learner.world_size`: `world_size` ranks when set, else one
    per whole GPU when `gpus` ≥ 2, else one; the GPUs are split evenly over the ranks."""
    world = cfg.world_size or (int(cfg.gpus) if cfg.gpus >= 2 else 1)
    return world, (cfg.gpus / world if cfg.gpus else 0.0)


def create_learner(cfg: LearnerConfig, policy: PolicyConfig, *, seed: int = 0, total_steps: int = 1000,
                   max_completion_tokens: int = 256, name: str = "learner"):
    """The learner: one named Ray actor around `LearnerCore` (a fraction of a GPU, one GPU, or the CPU), or, for
    `cfg.gpus` ≥ 2 whole GPUs or `cfg.world_size` ≥ 2, a data-parallel `LearnerGroup` that the driver uses the same
    way."""
    import ray

    run = {"seed": seed, "total_steps": total_steps, "max_completion_tokens": max_completion_tokens}
    world, _ = learner_placement(cfg)
    if world > 1:
        from learner.group import LearnerGroup

        return LearnerGroup(cfg, policy, **run, name=name)
    core = ray.remote(concurrency_groups={"inspect": 1})(LearnerCore)
    return core.options(name=name, num_gpus=cfg.gpus, num_cpus=1).remote(cfg, policy, **run)
