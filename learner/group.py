"""A data-parallel learner: N `LearnerCore` actors in a Ray placement group, joined by torch.distributed (NCCL
on GPUs, gloo on CPUs). Each takes a shard of the batch (whole groups), gradients are summed over ranks before
every optimiser step, so every rank holds the same weights; rank 0 exports the adapter and writes checkpoints.

To the driver the group looks like one learner actor: `group.step.remote(batch)` returns one ObjectRef, which
resolves to rank 0's result once every rank has finished (an error on any rank surfaces there).
"""
from __future__ import annotations

from typing import Any

from learner.learner import LearnerConfig, LearnerCore, TrainBatch, learner_placement
from learner.policy import PolicyConfig


def shard_batch(batch: TrainBatch, rank: int, world_size: int) -> TrainBatch:
    """Rank `rank`'s contiguous share of the batch's groups (a group never straddles two ranks, so its
    advantages are the same as on one learner)."""
    groups = len(batch.rewards) // batch.group_size
    lo, hi = groups * rank // world_size, groups * (rank + 1) // world_size
    a, b = lo * batch.group_size, hi * batch.group_size

    def cut(values):
        return None if values is None else values[a:b]

    return TrainBatch(batch.prompt_ids[a:b], batch.completion_ids[a:b], batch.rewards[a:b], batch.group_size,
                      sampler_logprobs=cut(batch.sampler_logprobs),
                      correct=cut(batch.correct), shaping=cut(batch.shaping), loss_masks=cut(batch.loss_masks))


def shard_rows(rows: list, rank: int, world_size: int) -> list:
    return rows[len(rows) * rank // world_size : len(rows) * (rank + 1) // world_size]


def _first(*results: Any) -> Any:
    return results[0]


class _Method:
    def __init__(self, group: "LearnerGroup", name: str) -> None:
        self.group, self.name = group, name

    def remote(self, *args: Any) -> Any:
        return self.group.call(self.name, *args)


class LearnerGroup:
    """The learner's ranks (`{name}-0` … `{name}-N-1`, N and the GPUs each from `cfg.world_size` / `cfg.gpus` as
    `learner_placement` reads them) in one placement group; arguments as `create_learner`'s."""

    def __init__(self, cfg: LearnerConfig, policy: PolicyConfig, *, seed: int = 0, total_steps: int = 1000,
                 max_completion_tokens: int = 256, name: str = "learner") -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        world_size, gpus_each = learner_placement(cfg)
        if world_size < 2:
            raise ValueError("a LearnerGroup needs at least 2 ranks; use create_learner for one")
        self.world_size = world_size
        bundle = {"CPU": 1.0, **({"GPU": gpus_each} if gpus_each else {})}
        self.placement = placement_group([dict(bundle) for _ in range(world_size)], strategy="PACK")
        ray.get(self.placement.ready(), timeout=600)
        cls = ray.remote(LearnerCore)
        self.actors = [cls.options(name=f"{name}-{rank}", num_cpus=1, num_gpus=gpus_each,
                                   scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, placement_group_bundle_index=rank))
                       .remote(cfg, policy, seed=seed, total_steps=total_steps,
                               max_completion_tokens=max_completion_tokens, rank=rank, world_size=world_size)
                       for rank in range(world_size)]
        address, port = ray.get(self.actors[0].__ray_call__.remote(_free_address))
        backend = "nccl" if gpus_each else "gloo"
        ray.get([a.init_distributed.remote(address, port, backend) for a in self.actors])
        self._first = ray.remote(num_cpus=0)(_first)

    def call(self, method: str, *args: Any):
        """Run `method` on every rank (the batch sharded for `step`/`sft_step`); one ObjectRef for rank 0's result."""
        refs = []
        for rank, actor in enumerate(self.actors):
            call_args = args
            if method == "step":
                call_args = (shard_batch(args[0], rank, self.world_size),)
            elif method == "sft_step":
                call_args = tuple(shard_rows(a, rank, self.world_size) for a in args)
            refs.append(getattr(actor, method).remote(*call_args))
        return self._first.remote(*refs)

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_") or not hasattr(LearnerCore, method):
            raise AttributeError(method)
        return _Method(self, method)

    def kill(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for actor in self.actors:
            ray.kill(actor)
        remove_placement_group(self.placement)


def _free_address(_actor: Any) -> tuple[str, int]:
    """This node's address and a free TCP port, for the process group's rendezvous."""
    import socket

    import ray

    with socket.socket() as sock:
        sock.bind(("", 0))
        return ray.util.get_node_ip_address(), sock.getsockname()[1]
