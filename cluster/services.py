"""The Ray services a job runs on, and their lifecycle: start (learner, rollout fleet, verifier pool), the
reward-health canaries, release, and what a failure means (`JobFailed`, `LearnerDied`). Faults for tests and
`bench/faults.py` enter through a `FaultInjector` handed to `Services`; the default injects nothing."""
from __future__ import annotations

import dataclasses
import os
import pathlib
from dataclasses import dataclass, field
from typing import Callable

from actors.fleet import RolloutFleet
from actors.worker import create_rollout_workers
from cluster.config import TrainConfig, rollout_sync
from cluster.tracking import Tracker
from cluster.watchdog import PhaseStalled
from learner.learner import create_learner
from verifier_pool.pool import VerifierPool


@dataclass
class FaultInjector:
    """Faults a test or a bench asks for: raise in a phase, wedge an actor for some seconds, kill the learner at a
    step (once), make every verifier actor misjudge. Production passes the default, which does nothing."""

    fail_in: str | None = None  # a phase name: raise there
    hang_in: str | None = None  # rollout | learning | push | evaluation
    hang_seconds: float = 0.0
    kill_learner_at: int | None = None
    misjudge: bool = False

    def enter(self, phase: str) -> None:
        if phase == self.fail_in:
            raise RuntimeError(f"fault injected in {phase}")

    def arm(self, svc: "Services", moment: str) -> None:
        """At `start` (services up): a misjudging pool; before the first `evaluation`: a wedged evaluation chunk;
        before `grpo`: a wedged rollout, learner step or weight push."""
        import ray

        if moment == "start" and self.misjudge:
            svc.pool.misjudge()
        wanted = "evaluation" if self.hang_in == "evaluation" else "grpo"
        if self.hang_in is None or moment != wanted:
            return
        worker = svc.fleet.workers[0]
        hook = {"rollout": worker.hang_next_generate, "evaluation": worker.hang_next_generate,
                "learning": svc.learner.hang_next_step, "push": worker.hang_next_load}[self.hang_in]
        ray.get(hook.remote(self.hang_seconds))

    def before_learning(self, svc: "Services", step: int) -> None:
        if self.kill_learner_at == step:
            self.kill_learner_at = None
            kill(svc.learner)


@dataclass
class Services:
    """What the job started, filled in as it starts (so a failure half way still knows what to release), and the
    phase the loop is in (for the failure message)."""

    faults: FaultInjector = field(default_factory=FaultInjector)
    learner: object = None
    fleet: RolloutFleet | None = None
    pool: VerifierPool | None = None
    tokenizer: object = None
    phase_now: str = "startup"

    def phase(self, name: str) -> None:
        self.phase_now = name
        self.faults.enter(name)


def connect_ray(cfg: TrainConfig) -> None:
    """Join `RAY_ADDRESS` (so `ray job submit` works) or start a local cluster with the dashboard on 127.0.0.1.
    A local cluster gets a logical CPU per rollout worker and the learner on top of the machine's cores, so
    the verifier pool (size auto) still gets one actor per core: the loop's phases take turns on the cores."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"])
        return
    extra = cfg.rollout.workers * cfg.rollout.cpus_per_worker + max(1, cfg.learner.world_size)
    cpus = (os.cpu_count() or 1) + int(extra + 0.999)
    try:  # address "local": a cluster of our own, even where another job's local cluster is running
        ray.init(address="local", num_cpus=cpus, include_dashboard=True, dashboard_host="127.0.0.1")
    except Exception:  # noqa: BLE001 - a dashboard that cannot start must not stop training
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, ignore_reinit_error=True)


def resolve_model(name: str) -> str:
    """A built-in tiny model's or a packaged model's cached path (built or dequantised on first use), else the name
    itself (a path or a hub id)."""
    from cluster.modelzoo import PACKAGED_MODELS, TINY_MODELS, packaged_model_path, tiny_model_path

    if name in PACKAGED_MODELS:
        return str(packaged_model_path(name))
    return str(tiny_model_path(name=name)) if name in TINY_MODELS else name


def start_services(cfg: TrainConfig, model_path: str, svc: Services, report: Callable[[str], None]) -> Services:
    """The learner (GPU share if asked), the rollout fleet (workers named rollout-i), then the verifier pool on
    the CPUs left, each put into `svc` as soon as it exists."""
    import ray
    from transformers import AutoTokenizer

    stage_steps = sum(s.epochs * -(-s.problems // cfg.batch_size) for s in cfg.stages)
    svc.learner = create_learner(cfg.learner, dataclasses.replace(cfg.model, name=model_path), seed=cfg.seed,
                                 total_steps=max(stage_steps, 1), max_completion_tokens=cfg.rollout.max_tokens)
    svc.fleet = RolloutFleet(cfg.rollout.workers, lambda first, count: spawn_workers(cfg, model_path, first, count),
                             report=report)
    ray.get(svc.learner.ready.remote())
    svc.fleet.ready()
    held_here = max(1, cfg.learner.world_size) + cfg.rollout.workers * cfg.rollout.cpus_per_worker
    svc.pool = VerifierPool(cfg.verifier.size, timeout=cfg.verifier.timeout, chunk_size=cfg.verifier.chunk_size,
                            reserve_cpus=cfg.verifier.reserve_cpus + held_here, resource=cfg.verifier.resource,
                            chunk_deadline=cfg.verifier.chunk_deadline)
    svc.pool.wait_ready(timeout=120)
    svc.tokenizer = AutoTokenizer.from_pretrained(model_path)
    return svc


def spawn_workers(cfg: TrainConfig, model_path: str, first_index: int, count: int) -> list:
    """`count` rollout workers named rollout-<first_index>..., with the engine the config asks for."""
    kwargs = {"model": model_path, "dtype": cfg.rollout.dtype, "system_prompt": cfg.system_prompt}
    if cfg.rollout.engine == "hf":
        kwargs.update(max_batch_size=cfg.rollout.max_num_seqs, sync=rollout_sync(cfg.rollout))
    if cfg.rollout.engine == "vllm":
        kwargs.update(gpu_memory_utilization=cfg.rollout.gpu_memory_utilization, kv_cache_gib=cfg.rollout.kv_cache_gib,
                      sync=rollout_sync(cfg.rollout),
                      max_num_seqs=cfg.rollout.max_num_seqs, max_lora_rank=cfg.model.lora_rank, seed=cfg.seed,
                      threads=cfg.rollout.torch_threads)
    return create_rollout_workers(count, engine=cfg.rollout.engine, num_gpus=cfg.rollout.gpus_per_worker,
                                  num_cpus=cfg.rollout.cpus_per_worker, torch_threads=cfg.rollout.torch_threads,
                                  first_index=first_index, **kwargs)


def release(svc: Services) -> None:
    """Stop everything the job started: the verifier pool (its sandbox children die with their actors), the
    rollout fleet (after the workers delete their /dev/shm adapter folders) and the learner (group). Never raises."""
    if svc.pool is not None:
        svc.pool.shutdown()
    if svc.fleet is not None:
        svc.fleet.release()
    if svc.learner is not None:
        kill(svc.learner)


def kill(actor) -> None:
    """Kill a Ray actor or a learner group; never raises."""
    import ray

    try:
        actor.kill() if hasattr(actor, "kill") else ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already dead
        pass


class JobFailed(RuntimeError):
    """The job stopped on an error; what it started is gone, the run directory stays resumable."""

    def __init__(self, phase: str, run_dir: pathlib.Path, error: BaseException) -> None:
        self.phase, self.run_dir = phase, run_dir
        super().__init__(f"failed in {phase}: {type(error).__name__}: {error}; "
                         f"resume from the last checkpoint with: rlvr train --resume {run_dir}")


class LearnerDied(RuntimeError):
    """The learner's process died (killed, out of memory): what the job started is gone; `train` restarts the
    job from the last checkpoint (`learner.restarts`)."""

    def __init__(self, phase: str, run_dir: pathlib.Path, error: BaseException) -> None:
        self.phase, self.run_dir, self.error = phase, run_dir, error
        super().__init__(f"the learner died in {phase}: {type(error).__name__}")


def learner_died(svc: Services, error: BaseException) -> bool:
    """Whether `error` is the learner's death (an actor error, and the learner no longer answers)."""
    import ray
    from ray.exceptions import RayActorError

    if svc.learner is None or not isinstance(error, RayActorError):
        return False
    try:
        ray.get(svc.learner.ready.remote(), timeout=30)
    except Exception:  # noqa: BLE001 - dead, or unable to answer: either way not a learner to go on with
        return True
    return False


def await_learner(svc: Services, ref, deadline: float | None):
    """The learner's answer, or `PhaseStalled` with its Python stacks when it gives none within `deadline`."""
    import ray
    from ray.exceptions import GetTimeoutError

    try:
        return ray.get(ref, timeout=deadline)
    except GetTimeoutError:
        try:
            stacks = ray.get(svc.learner.stacks.options(concurrency_group="inspect").remote(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - a learner group or a dead actor: report without stacks
            stacks = f"(no stacks: {type(exc).__name__})"
        raise PhaseStalled(f"the learner gave no answer in {deadline:.0f}s; its stacks:\n{stacks}") from None


def check_canaries(cfg: TrainConfig, svc: Services, tracker: Tracker, step: int, echo) -> None:
    """Every verifier actor scores the known cases in its own worker; a wrong verdict is logged and printed, and
    stops the run under `canary_fail: stop`."""
    failures = {name: f for name, f in svc.pool.canaries().items() if f}
    tracker.log_metrics({"health/canary_failures": float(sum(map(len, failures.values())))}, step=step)
    if failures:
        message = "reward-health canary failed: " + "; ".join(f"{name}: {', '.join(f)}" for name, f in failures.items())
        echo(message)
        if cfg.canary_fail == "stop":
            raise RuntimeError(message)
