"""The training loop, top to bottom.

    problems of the stage → rollout workers sample G each → verifier pool scores → group advantages
    → learner step → adapter pushed to every worker → (checkpoint, advance the stage, evaluate)

Everything a resumed run needs to continue at the same step with the same data order is in
`RUN_DIR/state.json` plus the learner checkpoint beside it: problems and batch order are functions of
the seed, the stage and the epoch.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import random
import time
from dataclasses import dataclass, field

import yaml

from actors.records import SamplingConfig
from actors.worker import create_rollout_workers, merge_adapter_everywhere, push_adapter
from cluster.config import ConfigError, TrainConfig, data_affecting_changes, dump, rollout_sync
from cluster.curriculum import Curriculum, observe, should_promote, snapshot
from cluster.evaluate import evaluate, prompt_for, sample_and_score
from cluster.raft import raft_selection
from cluster.rollout_log import append_records, truncate_after
from cluster.schedule import (RunState, replacement_problems, stage_curriculum, stage_length, stage_pool,
                              step_problems)
from cluster.tracking import Tracker
from cluster.watchdog import PhaseStalled, Watchdog
from learner.grpo import SPREAD_TOL
from learner.learner import LearnerConfig, TrainBatch, create_learner
from learner.policy import PolicyConfig
from synthesis.generators import generate_problems
from synthesis.problem import Problem, fact_key, solution_text
from verifier_pool.pool import ScoreRequest, VerifierPool
from verifier_pool.reward import RewardWeights

SIGNALS = RewardWeights.SIGNALS
RUN_STATE = "run_state.json"  # the driver's RunState inside the learner checkpoint


# ------------------------------------------------------------------ data


def held_out_problems(cfg: TrainConfig) -> dict[str, list[Problem]]:
    """Per stage, `eval_problems` from the held-out side of the question space, which no training data
    (pretraining, SFT, GRPO) is drawn from."""
    return {s.name: generate_problems(cfg.eval_problems, s.difficulty, topics=s.topics or None,
                                      seed=10_000_019 + cfg.seed * 1000 + i, split="heldout")
            for i, s in enumerate(cfg.stages)}


def sft_problems(cfg: TrainConfig, exclude: set[str]) -> list[Problem]:
    """The SFT warm start's problems: an equal share from each stage's difficulty and topics."""
    share = -(-cfg.sft.problems // len(cfg.stages))
    return [p for i, stage in enumerate(cfg.stages)
            for p in generate_problems(share, stage.difficulty, topics=stage.topics or None,
                                       seed=cfg.seed * 1000 + 900 + i, exclude=exclude, split="train")]


def split_audit(cfg: TrainConfig) -> dict:
    """Facts (see `fact_key`) of every data source of a run — pretraining (for the built-in tiny model), SFT,
    GRPO stages (the fixed schedule's pools; the adaptive curriculum draws from the same `train` side with the
    same exclusions), held-out evaluation — and how many held-out facts each training source shares."""
    from cluster.modelzoo import TINY_MODELS, pretraining_problems

    held_out = held_out_problems(cfg)
    exclude = {fact_key(p) for problems in held_out.values() for p in problems}
    sources: dict[str, set[str]] = {}
    if cfg.model.name in TINY_MODELS:
        sources["pretraining"] = {fact_key(p) for p in pretraining_problems()}
    if cfg.sft.enabled and cfg.sft.data:
        from synthesis.sft_data import load_sft_rows

        sources["sft"] = {r.fact_key() for r in load_sft_rows(cfg.sft.data)[0] if not r.turn} - exclude  # as trained
    elif cfg.sft.enabled:
        sources["sft"] = {fact_key(p) for p in sft_problems(cfg, exclude)}
    sources["grpo"] = {fact_key(p) for i in range(len(cfg.stages)) for p in stage_pool(cfg, i, exclude)}
    return {"heldout_facts": len(exclude), "facts": {k: len(v) for k, v in sources.items()},
            "overlap_with_heldout": {k: len(v & exclude) for k, v in sources.items()}}


# ------------------------------------------------------------------ services


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


@dataclass
class Services:
    """What the job started, filled in as it starts (so a failure half way still knows what to release)."""

    learner: object = None
    workers: list = field(default_factory=list)
    pool: VerifierPool | None = None
    tokenizer: object = None
    retired: list = field(default_factory=list)  # every worker ever in `workers` (to kill those set aside)
    spawned: int = 0  # rollout workers created so far (names rollout-0, rollout-1, ...)


def release(svc: Services) -> None:
    """Stop everything the job started: the verifier pool (its sandbox children die with their actors), the
    rollout workers (after they delete their /dev/shm adapter folders) and the learner (group). Never raises."""
    import ray

    if svc.pool is not None:
        svc.pool.shutdown()
    everyone = list(dict.fromkeys(svc.retired + svc.workers))
    try:
        ray.get([w.close.remote() for w in everyone], timeout=30)
    except Exception:  # noqa: BLE001 - a dead or wedged worker has nothing left to delete from this side
        pass
    for actor in everyone + ([svc.learner] if svc.learner is not None else []):
        try:
            actor.kill() if hasattr(actor, "kill") else ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001
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


class Phase:
    """The loop's current phase, for the failure message (and the test hook `RLVR_TEST_FAIL_IN=<phase>`)."""

    def __init__(self) -> None:
        self.now = "startup"

    def __call__(self, name: str) -> None:
        self.now = name
        if os.environ.get("RLVR_TEST_FAIL_IN") == name:
            raise RuntimeError(f"test hook: failure injected in {name}")


def resolve_model(name: str) -> str:
    """A built-in tiny model's cached path (built on first use), else the name itself (a path or a hub id)."""
    from cluster.modelzoo import TINY_MODELS, tiny_model_path

    return str(tiny_model_path(name=name)) if name in TINY_MODELS else name


def start_services(cfg: TrainConfig, model_path: str, svc: Services) -> Services:
    """The learner (GPU share if asked), the rollout workers (named rollout-i), then the verifier pool on the
    CPUs left, each put into `svc` as soon as it exists."""
    import ray
    from transformers import AutoTokenizer

    stage_steps = sum(s.epochs * -(-s.problems // cfg.batch_size) for s in cfg.stages)
    learner_cfg = LearnerConfig(
        policy=PolicyConfig(model=model_path, lora_rank=cfg.model.lora_rank, lora_alpha=cfg.model.lora_alpha,
                            dtype=cfg.model.dtype, gradient_checkpointing=cfg.model.gradient_checkpointing,
                            liger=cfg.learner.liger),
        lr=cfg.learner.lr, beta=cfg.learner.beta, clip_low=cfg.learner.clip_low, clip_high=cfg.learner.clip_high,
        advantage=cfg.learner.advantage, shaping_coef=cfg.learner.shaping_coef, std_floor=cfg.learner.std_floor,
        max_completion_tokens=cfg.rollout.max_tokens,
        epochs=cfg.learner.epochs, micro_batch_size=cfg.learner.micro_batch_size, max_grad_norm=cfg.learner.max_grad_norm,
        warmup_steps=cfg.learner.warmup_steps, total_steps=max(stage_steps, 1), seed=cfg.seed,
        tis_cap=cfg.learner.tis_cap if cfg.learner.tis != "off" else 0.0,
        torch_threads=cfg.learner.torch_threads)
    learner = svc.learner = create_learner(learner_cfg, num_gpus=cfg.learner.gpus, world_size=cfg.learner.world_size)
    workers = svc.workers = new_rollout_workers(cfg, model_path, cfg.rollout.workers, svc)
    ray.get([learner.ready.remote()] + [w.adapter_version.remote() for w in workers])
    held_here = max(1, cfg.learner.world_size) + cfg.rollout.workers * cfg.rollout.cpus_per_worker  # learner + rollout, on this node or not
    svc.pool = VerifierPool(cfg.verifier.size, timeout=cfg.verifier.timeout, chunk_size=cfg.verifier.chunk_size,
                            reserve_cpus=cfg.verifier.reserve_cpus + held_here, resource=cfg.verifier.resource,
                            chunk_deadline=cfg.verifier.chunk_deadline)
    svc.pool.wait_ready(timeout=120)
    svc.tokenizer = AutoTokenizer.from_pretrained(model_path)
    return svc


# ------------------------------------------------------------------ one step


def uses_sampler_logprobs(cfg: TrainConfig) -> bool:
    """Whether the learner needs the sampler's per-token log-probs (for truncated importance sampling): asking
    vLLM for them costs ~40 % of its throughput, so only then."""
    if cfg.learner.tis == "auto":
        return cfg.rollout.engine == "vllm" or cfg.async_steps > 0
    return cfg.learner.tis == "on"


@dataclass
class Rollout:
    """One step's sampled and scored groups, problem by problem, and which of them the learner trains on."""

    problems: list[Problem]
    rows: list
    breakdowns: list
    timings: dict
    trained: list[bool]
    extra_problems: int = 0  # sampled to replace groups with no correctness spread


def has_spread(breakdowns: list) -> bool:
    correct = [float(b.verdict == "correct") for b in breakdowns]
    return max(correct) - min(correct) > SPREAD_TOL


def rollout_phase(cfg: TrainConfig, svc: Services, problems: list[Problem], seed: int, replace=None,
                  stall_seconds: float | None = None, report=print) -> Rollout:
    """Sample G per problem with whatever adapter the workers hold and score them. With a resample budget
    (DAPO's dynamic sampling), groups whose correctness has no spread are replaced by fresh problems from
    `replace(n, round, taken)` until the batch has `batch_size` groups with spread or the budget of extra problems
    is spent; then the step trains on the groups with spread, topped up with spread-less ones, and the shortfall
    is what it is — never an error."""
    sampling = SamplingConfig(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                              max_tokens=cfg.rollout.max_tokens, logprobs=uses_sampler_logprobs(cfg), seed=seed,
                              seed_per_request=cfg.rollout.seed_per_request)
    timings: dict = {}
    rows, breakdowns = sample_and_score(svc.workers, svc.pool, problems, cfg.group_size, sampling, cfg.prompt,
                                        cfg.reward, timings, policy=cfg.verifier.answer_policy,
                                        chunk_prompts=cfg.rollout.dispatch_prompts, stall_seconds=stall_seconds,
                                        report=report)
    problems, extra, round_ = list(problems), 0, 0
    budget, full = (cfg.curriculum.resample_budget if replace is not None else 0), min(len(problems), cfg.batch_size)
    while extra < budget:
        wanted = full - sum(map(has_spread, breakdowns))
        fresh = replace(min(wanted, budget - extra), round_, {p.question for p in problems}) if wanted > 0 else []
        if not fresh:
            break
        more: dict = {}
        sampling = dataclasses.replace(sampling, seed=seed + 7919 * (round_ + 1))
        fresh_rows, fresh_breakdowns = sample_and_score(svc.workers, svc.pool, fresh, cfg.group_size, sampling,
                                                        cfg.prompt, cfg.reward, more, policy=cfg.verifier.answer_policy,
                                                        chunk_prompts=cfg.rollout.dispatch_prompts,
                                                        stall_seconds=stall_seconds, report=report)
        problems, rows, breakdowns = problems + fresh, rows + fresh_rows, breakdowns + fresh_breakdowns
        timings["rollout_span"] = (timings["rollout_span"][0], more["rollout_span"][1])
        for key in ("rollout_seconds", "score_seconds"):
            timings[key] += more[key]
        extra, round_ = extra + len(fresh), round_ + 1
    order = sorted(range(len(problems)), key=lambda i: not has_spread(breakdowns[i]))  # stable: spread first
    chosen = set(order[:full]) if extra else set(range(len(problems)))
    return Rollout(problems, rows, breakdowns, timings, [i in chosen for i in range(len(problems))], extra)


def learn_phase(cfg: TrainConfig, svc: Services, rollout: Rollout, learner_version: int, busy: "BusyClock",
                deadline: float | None = None) -> tuple[dict, list[dict], object]:
    """The learner step on a scored rollout's trained groups. Returns the step's metrics, its rollout-log
    records (every sampled group, `trained` marking the learner's) and an ObjectRef to the new adapter (None
    when no group was kept); pushing it to the workers is the caller's move."""
    import ray

    G = cfg.group_size
    picked = [i for i, t in enumerate(rollout.trained) if t]
    rows, breakdowns = [rollout.rows[i] for i in picked], [rollout.breakdowns[i] for i in picked]
    correct = [[float(b.verdict == "correct") for b in row] for row in breakdowns]
    keep = [i for i, c in enumerate(correct) if not cfg.drop_zero_spread or max(c) - min(c) > SPREAD_TOL]
    flat = [(c, b) for i in keep for c, b in zip(rows[i], breakdowns[i])]
    metrics = _reward_metrics(correct, breakdowns, rows)
    metrics.update({k: v for k, v in rollout.timings.items() if isinstance(v, float)})
    everything = [float(b.verdict == "correct") for row in rollout.breakdowns for b in row]
    metrics["sampled/accuracy"] = sum(everything) / max(len(everything), 1)
    metrics["sampled/zero_spread_groups"] = 1 - sum(map(has_spread, rollout.breakdowns)) / max(len(rollout.breakdowns), 1)
    metrics["resample/extra_problems"] = rollout.extra_problems
    metrics["resample/shortfall"] = max(0, cfg.batch_size - sum(map(has_spread, rollout.breakdowns)))
    versions = [c.policy_version for row in rows for c in row]
    metrics["staleness"] = learner_version - sum(versions) / max(len(versions), 1)
    weights = None
    if flat and cfg.algo == "raft":
        kept = raft_selection([[b.verdict for b in row] for row in breakdowns], [[b.total for b in row] for row in breakdowns],
                              cfg.raft.keep, cfg.raft.per_problem)
        metrics["raft/kept"] = len(kept)
        metrics["raft/kept_groups"] = len({g for g, _ in kept}) / max(len(rows), 1)
        if kept:
            busy.begin("learn")
            learn = await_learner(svc, svc.learner.sft_step.remote([rows[g][j].prompt_token_ids for g, j in kept],
                                                                   [rows[g][j].text for g, j in kept]), deadline)
            busy.end("learn")
            metrics.update({"learn_seconds": learn["sft_seconds"], "loss": learn["sft_loss"],
                            "grad_norm": learn["grad_norm"], "version": learn["version"],
                            "learner_tokens_per_s": learn["target_tokens"] / max(learn["sft_seconds"], 1e-9)})
            weights = svc.learner.export_adapter.remote()
    elif flat:
        batch = TrainBatch(prompt_ids=[c.prompt_token_ids for c, _ in flat], completion_ids=[c.token_ids for c, _ in flat],
                           rewards=[b.total for _, b in flat], group_size=G,
                           correct=[float(b.verdict == "correct") for _, b in flat], shaping=[b.shaping for _, b in flat],
                           sampler_logprobs=[c.logprobs for c, _ in flat] if uses_sampler_logprobs(cfg) else None)
        busy.begin("learn")
        learn = await_learner(svc, svc.learner.step.remote(batch), deadline)
        busy.end("learn")
        metrics["learn_seconds"] = learn["learn_seconds"]
        metrics.update({k: learn[k] for k in ("loss", "kl", "clip_fraction", "grad_norm", "lr", "version",
                                              "mismatch_kl", "tis_clipped")})
        metrics["learner_tokens_per_s"] = learn["tokens_per_s"]
        weights = svc.learner.export_adapter.remote()
    records = [{"problem_id": p.id, "question": p.question, "gold": p.answer, "form": p.form, "topic": p.topic,
                "difficulty": p.meta.get("d"), "trained": trained,
                "policy": cfg.verifier.answer_policy, "verifier_version": b.verifier_version, "text": c.text,
                "policy_version": c.policy_version, "finish_reason": c.finish_reason, "reward": b.to_dict()}
               for p, row, brow, trained in zip(rollout.problems, rollout.rows, rollout.breakdowns, rollout.trained)
               for c, b in zip(row, brow)]
    return metrics, records, weights


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


class BusyClock:
    """When the accelerator-bound phases (sampling, learning) run, to tell how much of a step neither did:
    the GPU-idle seconds of a shared-GPU box (on CPUs: the time the loop waits on scoring and itself)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.open: dict[str, float] = {}

    def begin(self, key: str, at: float | None = None) -> None:
        self.open[key] = time.perf_counter() if at is None else at

    def end(self, key: str, at: float | None = None) -> None:
        self.spans.append((self.open.pop(key), time.perf_counter() if at is None else at))

    def add(self, span: tuple[float, float]) -> None:
        self.spans.append(span)

    def idle(self, since: float, until: float) -> float:
        """Seconds of [since, until] covered by no span (a phase still running counts as busy until `until`)."""
        spans = sorted((max(a, since), min(b, until)) for a, b in
                       self.spans + [(a, until) for a in list(self.open.values())] if b > since and a < until)
        covered, edge = 0.0, since
        for a, b in spans:
            if b > edge:
                covered += b - max(a, edge)
                edge = b
        self.spans = [(a, b) for a, b in self.spans if b > since]
        return max(0.0, (until - since) - covered)




def _reward_metrics(correct: list[list[float]], breakdowns, rows) -> dict[str, float]:
    flat = [b for row in breakdowns for b in row]
    n = max(len(flat), 1)
    out = {f"reward/{s}": sum(getattr(b, s) for b in flat) / n for s in SIGNALS}
    out["reward/total"] = sum(b.total for b in flat) / n
    out["accuracy"] = sum(b.verdict == "correct" for b in flat) / n
    out["not_final"] = sum(b.verdict == "not_final" for b in flat) / n
    out["zero_spread_groups"] = sum(max(c) - min(c) <= SPREAD_TOL for c in correct) / max(len(correct), 1)
    out["reward/shaping"] = sum(b.shaping for b in flat) / n
    tokens = sum(len(c.token_ids) for row in rows for c in row)
    out["completion_tokens"] = tokens
    return out


# ------------------------------------------------------------------ the run


def train(cfg: TrainConfig, resume: str | None = None, echo=print, force: bool = False) -> dict:
    """Run (or resume) the whole job (`run_job`); returns the per-stage evaluation table. A learner that dies is
    restarted with the whole job from the last checkpoint, `learner.restarts` times per call (the exact-resume
    path: the steps since the checkpoint, or since the start, are sampled and learned again, identically); past
    that the job fails with the resume command."""
    restarts = 0
    while True:
        try:
            return run_job(cfg, resume, echo, force)
        except LearnerDied as died:
            if restarts >= cfg.learner.restarts:
                raise JobFailed(died.phase, died.run_dir, died.error) from died.error
            restarts += 1
            echo(f"{died} ({str(died.error).splitlines()[0][:200]}); restart {restarts}/{cfg.learner.restarts} "
                 f"from the last checkpoint of {died.run_dir}")
            resume, force = str(died.run_dir), False


def run_job(cfg: TrainConfig, resume: str | None = None, echo=print, force: bool = False) -> dict:
    """Run (or resume) the whole job once; returns the per-stage evaluation table.

    SFT warm start (merged into the base: the KL reference), then one loop over GRPO steps. Step n: the
    schedule names its problems (from the run state), the workers sample and the pool scores them, the
    curriculum folds the verdicts in, the learner trains, the adapter goes to the workers; a stage ends when
    the schedule says so (its last batch, or promotion), with its adapter saved and a held-out evaluation.
    With `async_steps: 1` step n+1's rollout runs while step n learns (sampled under adapter n−1)."""
    import ray

    run_dir = pathlib.Path(resume or (cfg.run_dir if cfg.run_dir != "auto" else time.strftime("runs/%Y%m%d-%H%M%S")))
    if not resume and (run_dir / "state.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run: continue it with --resume {run_dir} "
                              f"or pick another run_dir")
    if resume and (run_dir / "config.yaml").exists() and not force:
        changed = data_affecting_changes(yaml.safe_load((run_dir / "config.yaml").read_text()), cfg.to_dict())
        if changed:
            raise ConfigError(f"{changed[0]}: differs from the run's saved config.yaml; resuming with it would not "
                              f"continue the same data order (changed: {', '.join(changed)}; --force accepts it)")
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path, checkpoint = run_dir / "state.json", run_dir / "checkpoint"
    run = RunState.load(state_path)
    if resume and (checkpoint / RUN_STATE).exists():  # the run state saved with the learner's, not a later one
        saved = RunState.load(checkpoint / RUN_STATE)
        run = dataclasses.replace(saved, run_id=saved.run_id or run.run_id)
    (run_dir / "config.yaml").write_text(dump(cfg))
    echo(f"resolved config:\n{dump(cfg)}")
    started = time.perf_counter() - run.elapsed
    model_path = resolve_model(cfg.model.name)  # builds/pretrains the tiny model before Ray takes the cores
    connect_ray(cfg)
    tracker = Tracker(cfg.tracking_uri, cfg.experiment, run_id=run.run_id, run_name=run_dir.name)
    if run.run_id is None:  # from here on a kill at any moment leaves a run dir that resumes into this MLflow run
        tracker.log_params(cfg.to_dict())
        tracker.log_artifact(run_dir / "config.yaml")
        run.run_id = tracker.run_id
        run.save(state_path)
    svc, phase = Services(), Phase()
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-rollout")
    try:
        phase("starting services")
        start_services(cfg, model_path, svc)
        held_out = held_out_problems(cfg)
        exclude = {fact_key(p) for problems in held_out.values() for p in problems}
        if resume:  # the steps after the checkpoint (all of them, killed before the first) are replayed
            adapter = 0
            if checkpoint.exists():
                adapter = ray.get(svc.learner.load.remote(str(checkpoint)))["version"]
                for merged in ray.get(svc.learner.merged_adapters.remote()):
                    merge_adapter_everywhere(svc.workers, merged)
                push_adapter(svc.workers, ray.get(svc.learner.export_adapter.remote()))
            dropped = truncate_after(run_dir / "rollouts.msgpack", run.step)
            tracker.skip_logged()
            echo(f"resumed {run_dir} at stage {run.stage} step {run.step} (adapter v{adapter}); "
                 f"{dropped} rollout-log records of replayed steps dropped")
        log_path = run_dir / "rollouts.msgpack"
        if os.environ.get("RLVR_TEST_MISJUDGE"):  # test hook: a verifier that starts misjudging
            svc.pool.misjudge()
        phase("canary")
        check_canaries(cfg, svc, tracker, run.step, echo)
        sampled_at = {"sft" if cfg.sft.enabled else "start", cfg.stages[-1].name}  # the two ends of the curve

        watchdog = Watchdog(cfg.watchdog.factor, cfg.watchdog.floor_seconds, cfg.watchdog.first_seconds)
        hang = os.environ.get("RLVR_TEST_HANG_IN", "")  # test hook: "PHASE:SECONDS", PHASE rollout|learning|push|evaluation
        if hang.startswith("evaluation:"):
            ray.get(svc.workers[0].hang_next_generate.remote(float(hang.split(":")[1])))

        def timed_evaluate(kind: str, problems: list[Problem], **kwargs) -> dict:
            """`evaluate` under the watchdog's deadline for this kind of evaluation (greedy or sampled)."""
            begin = time.perf_counter()
            result = evaluate(svc.workers, svc.pool, problems, max_tokens=cfg.rollout.max_tokens, template=cfg.prompt,
                              policy=cfg.verifier.answer_policy, stall_seconds=watchdog.deadline(kind), report=echo,
                              **kwargs)
            watchdog.record(kind, time.perf_counter() - begin)
            restore_workers(cfg, svc, model_path, echo)
            return result

        def evaluate_all(label: str) -> None:
            phase("evaluation")
            row = {"checkpoint": label, "minutes": round((time.perf_counter() - started) / 60, 2)}
            for name, problems in held_out.items():
                greedy = timed_evaluate("evaluation", problems)
                row.update({name: greedy["accuracy"], f"{name}_ci": greedy["ci"], f"{name}_per_problem": greedy["per_problem"]})
                if cfg.eval_samples and label in sampled_at:
                    sampled = timed_evaluate("evaluation_sampled", problems, k=cfg.eval_samples,
                                             temperature=cfg.rollout.temperature)
                    row.update({f"{name}~": sampled["accuracy"], f"{name}_pass@{cfg.eval_samples}": sampled["pass@k"],
                                f"{name}_maj@{cfg.eval_samples}": sampled["maj@k"]})
            run.evals.append(row)
            tracker.log_metrics({f"heldout/{k.replace('~', '_sampled')}": v for k, v in row.items()
                                 if isinstance(v, float)}, step=run.step)
            echo("held-out accuracy after " + label + ": " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                                        if isinstance(v, float) and k != "minutes"))

        def save_checkpoint() -> None:
            """The learner's state and the run state in one directory renamed into place (so a kill at any
            moment leaves a matching pair), then the run state beside it for readers."""
            phase("checkpoint")
            run.elapsed = time.perf_counter() - started
            ray.get(svc.learner.save.remote(str(checkpoint), {RUN_STATE: run.to_json()}))
            write_eval_settings(cfg, checkpoint)
            run.save(state_path)

        if not run.evals and not cfg.sft.enabled:
            evaluate_all("start")
        if cfg.sft.enabled and not run.sft_done:
            phase("sft")
            warm_start(cfg, svc, exclude, tracker, echo)
            run.sft_done = True
            evaluate_all("sft")
            merge_adapter_everywhere(svc.workers, ray.get(svc.learner.merge_adapter.remote()))
            echo("[sft] adapter merged into the base weights: the KL reference is now the SFT model")
            save_checkpoint()

        rolling: collections.deque[float] = collections.deque(run.rolling, maxlen=cfg.rolling_window)
        recent: collections.deque[dict] = collections.deque(maxlen=cfg.log_samples)
        busy = BusyClock()
        if hang.split(":")[0] in ("rollout", "learning", "push"):
            where, seconds = hang.split(":")
            target = {"rollout": svc.workers[0].hang_next_generate, "learning": svc.learner.hang_next_step,
                      "push": svc.workers[0].hang_next_load}[where]
            ray.get(target.remote(float(seconds)))

        def push(weights) -> float:
            """The adapter to every worker under the push deadline; a worker that stalls or dies is replaced."""
            phase("push")
            begin = time.perf_counter()
            push_adapter(svc.workers, weights, stall_seconds=watchdog.deadline("push"), report=echo)
            seconds = time.perf_counter() - begin
            watchdog.record("push", seconds)
            restore_workers(cfg, svc, model_path, echo)
            return seconds
        timeout_shares: collections.deque[float] = collections.deque(maxlen=20)
        version = ray.get(svc.learner.ready.remote())["version"]
        pending, unpushed = None, None  # the next step's rollout (async_steps: 1), an adapter not yet pushed
        pool, length = [], 0
        while run.stage < len(cfg.stages):
            stage = cfg.stages[run.stage]
            if not pool:
                pool = stage_pool(cfg, run.stage, exclude) if cfg.curriculum.mode == "fixed" or stage.data else []
                length = stage_length(cfg, run.stage, len(pool) or stage.problems)
            if run.stage_step == 0:
                ray.get(svc.learner.reset_optimizer.remote(cfg.raft.lr if cfg.algo == "raft" else cfg.learner.lr, length))
                run.curriculum = stage_curriculum(cfg, run.stage, run.curriculum).to_dict()

            def rollout_after(state: RunState, seed: int) -> Rollout:
                """The rollout of the step after `state` (its problems and any replacements fixed by `state`)."""
                state = dataclasses.replace(state)
                return rollout_phase(cfg, svc, step_problems(cfg, state, pool, exclude), seed,
                                     lambda n, r, taken: replacement_problems(cfg, state, pool, exclude, n, r, taken),
                                     stall_seconds=watchdog.deadline("rollout"), report=echo)

            step = run.step + 1
            window = time.perf_counter()
            if cfg.canary_every and step % cfg.canary_every == 0:
                phase("canary")
                check_canaries(cfg, svc, tracker, step, echo)
            phase("rollout")
            rollout = pending.result() if pending else rollout_after(run, cfg.seed * 100_003 + step)
            pending = None
            watchdog.record("rollout", rollout.timings["rollout_seconds"])
            restore_workers(cfg, svc, model_path, echo)
            busy.add(rollout.timings["rollout_span"])
            push_seconds = 0.0
            if unpushed is not None:  # the workers are done sampling this step under the adapter before: now push
                push_seconds, unpushed = push(unpushed), None

            curriculum = observe(Curriculum.from_dict(run.curriculum), cfg.curriculum,
                                 [(p, [b.verdict == "correct" for b in brow])
                                  for p, brow in zip(rollout.problems, rollout.breakdowns)])
            rolling.append(sum(b.verdict == "correct" for row in rollout.breakdowns for b in row)
                           / max(sum(map(len, rollout.breakdowns)), 1))
            stage_seconds = run.stage_seconds + time.perf_counter() - window
            stage_over = (run.stage_step + 1 >= length
                          or (cfg.grpo_minutes is not None and stage_seconds >= 60 * cfg.grpo_minutes / len(cfg.stages))
                          or (cfg.curriculum.mode == "adaptive" and should_promote(curriculum, cfg.curriculum))
                          or (stage.advance_accuracy is not None and len(rolling) == rolling.maxlen
                              and sum(rolling) / len(rolling) >= stage.advance_accuracy))
            done = dataclasses.replace(run, step=step, stage_step=run.stage_step + 1, curriculum=curriculum.to_dict(),
                                       rolling=list(rolling), history=run.history + [{"step": step, **snapshot(curriculum)}])
            if cfg.async_steps and not stage_over and step != cfg.max_steps and step % cfg.checkpoint_every:
                # a checkpoint step is a sync point (the next step samples under this step's adapter, as it will
                # after a resume from this checkpoint), so a resumed async run repeats the same data
                pending = prefetch.submit(rollout_after, done, cfg.seed * 100_003 + step + 1)

            phase("learning")
            if os.environ.get("RLVR_TEST_KILL_LEARNER_AT") == str(step):  # test hook: the learner dies, once
                os.environ.pop("RLVR_TEST_KILL_LEARNER_AT")
                svc.learner.kill() if hasattr(svc.learner, "kill") else ray.kill(svc.learner, no_restart=True)
            metrics, records, weights = learn_phase(cfg, svc, rollout, version, busy, watchdog.deadline("learning"))
            if "learn_seconds" in metrics:
                watchdog.record("learning", metrics["learn_seconds"])
            health = reward_health(rollout.breakdowns, timeout_shares)
            timeout_shares.append(health["health/timeouts"])
            metrics.update(health)
            if health["health/identical_rewards"] or health["health/timeout_jump"]:
                echo(f"reward health at step {step}: " + ("every completion got the same reward; "
                     if health["health/identical_rewards"] else "") + (f"timeouts jumped to {health['health/timeouts']:.0%}"
                                                                       if health["health/timeout_jump"] else ""))
            if weights is not None:
                version = metrics["version"]
                if pending is not None:
                    unpushed = weights
                else:
                    push_seconds += push(weights)
            now = time.perf_counter()
            run = dataclasses.replace(done, stage_seconds=run.stage_seconds + now - window)
            metrics.update(snapshot(curriculum), stage_index=run.stage, push_seconds=push_seconds,
                           step_seconds=now - window, gpu_idle_seconds=busy.idle(window, now))
            metrics["gpu_idle_share"] = metrics["gpu_idle_seconds"] / max(metrics["step_seconds"], 1e-9)
            metrics["rollout_tokens_per_s"] = metrics["completion_tokens"] / max(metrics["rollout_seconds"], 1e-9)
            tracker.log_metrics(metrics, step=step)
            logged = [{"step": step, "stage": stage.name, **r} for r in records]
            append_records(log_path, logged)
            recent.extend(logged)
            echo(step_line(cfg, run, len(pool), length, metrics, rollout.extra_problems))

            if stage_over:
                if unpushed is not None:
                    push(unpushed)
                    unpushed = None
                if run.stage_step < length:
                    why = ("promoted: the top difficulty passed for "
                           f"{cfg.curriculum.promote_steps} steps in a row" if cfg.curriculum.mode == "adaptive"
                           and should_promote(curriculum, cfg.curriculum)
                           else f"its share of grpo_minutes={cfg.grpo_minutes} spent" if cfg.grpo_minutes is not None
                           and stage_seconds >= 60 * cfg.grpo_minutes / len(cfg.stages)
                           else f"rolling accuracy {sum(rolling) / len(rolling):.3f} >= {stage.advance_accuracy}")
                    echo(f"stage {stage.name}: {why}, after {run.stage_step} of {length} steps")
                end_stage(cfg, svc, tracker, run, run_dir, stage.name)
                evaluate_all(stage.name)
                _log_samples(tracker, list(recent) or _last_logged(log_path, stage.name, cfg.log_samples), stage.name)
                rolling.clear()
                recent.clear()
                run = dataclasses.replace(run, stage=run.stage + 1, stage_step=0, stage_seconds=0.0, rolling=[])
                pool = []
                save_checkpoint()
            elif step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                save_checkpoint()
            if step == cfg.max_steps and run.stage < len(cfg.stages):
                prefetch.shutdown(wait=True)
                echo(f"stopping at max_steps={step}; continue with: rlvr train --resume {run_dir}")
                return _finish(cfg, svc, tracker, run, run_dir, final=False, echo=echo)

        prefetch.shutdown(wait=True)
        return _finish(cfg, svc, tracker, run, run_dir, final=True, echo=echo)
    except BaseException as exc:
        prefetch.shutdown(wait=False, cancel_futures=True)
        died = learner_died(svc, exc)
        release(svc)
        if died:
            tracker.suspend(f"{phase.now}: the learner died: {type(exc).__name__}")
            raise LearnerDied(phase.now, run_dir, exc) from exc
        tracker.fail(f"{phase.now}: {type(exc).__name__}: {exc}")
        if isinstance(exc, Exception):
            raise JobFailed(phase.now, run_dir, exc) from exc
        raise


def new_rollout_workers(cfg: TrainConfig, model_path: str, count: int, svc: Services) -> list:
    """`count` more rollout workers (named on from `svc.spawned`), remembered in `svc.retired` for release."""
    kwargs = {"model": model_path}
    if cfg.rollout.engine == "hf":
        kwargs.update(max_batch_size=cfg.rollout.max_num_seqs, sync=rollout_sync(cfg.rollout))
    if cfg.rollout.engine == "vllm":
        kwargs.update(gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
                      max_num_seqs=cfg.rollout.max_num_seqs, max_lora_rank=cfg.model.lora_rank)
    workers = create_rollout_workers(count, engine=cfg.rollout.engine, num_gpus=cfg.rollout.gpus_per_worker,
                                     num_cpus=cfg.rollout.cpus_per_worker, torch_threads=cfg.rollout.torch_threads,
                                     first_index=svc.spawned, **kwargs)
    svc.spawned += count
    svc.retired.extend(workers)
    return workers


def restore_workers(cfg: TrainConfig, svc: Services, model_path: str, echo) -> None:
    """Replace rollout workers that died or were set aside as stalled (`generate_across` drops them from
    `svc.workers`): the stalled ones are killed, new ones get the merged SFT weights and the learner's adapter."""
    import ray

    missing = cfg.rollout.workers - len(svc.workers)
    if missing <= 0:
        return
    for actor in svc.retired:
        if actor not in svc.workers:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
    svc.retired = list(svc.workers)
    fresh = new_rollout_workers(cfg, model_path, missing, svc)
    for merged in ray.get(svc.learner.merged_adapters.remote()):
        merge_adapter_everywhere(fresh, merged)
    push_adapter(fresh, ray.get(svc.learner.export_adapter.remote()))
    svc.workers.extend(fresh)
    echo(f"replaced {missing} rollout worker(s): {', '.join(w._rlvr_name for w in fresh)}")


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


def reward_health(breakdowns: list, recent_timeout_shares) -> dict[str, float]:
    """Per-step signs of a sick reward: every completion scored the same total (no signal at all), and the
    share of `timeout` verdicts, flagged as a jump above 5 % and 3× its recent median."""
    flat = [b for row in breakdowns for b in row]
    timeouts = sum(b.verdict == "timeout" for b in flat) / max(len(flat), 1)
    recent = sorted(recent_timeout_shares)
    median = recent[len(recent) // 2] if recent else 0.0
    return {"health/identical_rewards": float(len(flat) > 1 and len({round(b.total, 9) for b in flat}) == 1),
            "health/timeouts": timeouts, "health/timeout_jump": float(timeouts > max(0.05, 3 * median))}


def step_line(cfg: TrainConfig, run: RunState, pool_size: int, length: int, metrics: dict, resampled: int) -> str:
    """The one progress line printed per step."""
    stage = cfg.stages[run.stage]
    if pool_size:
        per_epoch = -(-pool_size // cfg.batch_size)
        where = f"e{(run.stage_step - 1) // per_epoch + 1}/{stage.epochs} b{(run.stage_step - 1) % per_epoch + 1}/{per_epoch}"
    else:
        where = f"{run.stage_step}/{length}"
    line = (f"[{stage.name} {where}] step {run.step}  reward {metrics['reward/total']:.3f}  acc {metrics['accuracy']:.3f}  "
            f"zero-spread {metrics['zero_spread_groups']:.2f}")
    if resampled:
        line += f" (sampled {metrics['sampled/zero_spread_groups']:.2f}, +{resampled} resampled)"
    line += (f"  kl {metrics.get('kl', 0):.4f}  {metrics['rollout_tokens_per_s']:.0f} tok/s  "
             f"rollout {metrics['rollout_seconds']:.1f}s score {metrics['score_seconds']:.1f}s "
             f"learn {metrics.get('learn_seconds', 0):.1f}s push {metrics['push_seconds']:.2f}s  "
             f"step {metrics['step_seconds']:.1f}s idle {metrics['gpu_idle_share']:.0%}")
    if cfg.async_steps:
        line += f"  staleness {metrics['staleness']:.1f}"
    if cfg.curriculum.mode == "adaptive":
        line += "  d " + " ".join(f"{t}={s['d']:.2f}" for t, s in run.curriculum["topics"].items())
    return line


def end_stage(cfg: TrainConfig, svc: Services, tracker: Tracker, run: RunState, run_dir: pathlib.Path, name: str) -> None:
    """The stage's adapter (with how to prompt and judge it) and its curriculum plot, as files and artifacts."""
    import ray

    stage_dir = run_dir / "stages" / name
    ray.get(svc.learner.save.remote(str(stage_dir)))
    write_eval_settings(cfg, stage_dir)
    tracker.log_artifact(stage_dir / "adapter", f"adapters/{name}")
    if run.history:
        plot = plot_curriculum(run.history, run_dir / f"curriculum_{name}.png", f"curriculum up to the end of {name}")
        tracker.log_artifact(plot)


def plot_curriculum(history: list[dict], path: pathlib.Path, title: str) -> pathlib.Path:
    """Difficulty and smoothed pass rate per topic over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    topics = sorted({k.split("/")[1] for row in history for k in row if k.startswith("curriculum/")})
    for topic in topics:
        for axis, key in ((top, "difficulty"), (bottom, "pass_rate")):
            points = [(row["step"], row[f"curriculum/{topic}/{key}"]) for row in history if f"curriculum/{topic}/{key}" in row]
            if points:
                axis.plot(*zip(*points), label=topic)
    top.set_ylabel("difficulty d")
    bottom.set_ylabel("pass rate (smoothed)")
    bottom.set_xlabel("GRPO step")
    top.set_ylim(-0.05, 1.05)
    bottom.set_ylim(-0.05, 1.05)
    top.legend(fontsize=7)
    top.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_eval_settings(cfg: TrainConfig, directory: pathlib.Path) -> None:
    """How the adapter in `directory` was trained to be prompted and judged, for `rlvr eval --adapter`."""
    (directory / "rlvr_eval.json").write_text(json.dumps({
        "prompt": cfg.prompt, "answer_policy": cfg.verifier.answer_policy, "model": cfg.model.name,
        "max_tokens": cfg.rollout.max_tokens}, indent=2))


def _finish(cfg: TrainConfig, svc: Services, tracker: Tracker, run: RunState, run_dir: pathlib.Path, *,
            final: bool, echo) -> dict:
    """Print and log the evaluation table, release the services; the run directory stays resumable."""
    import ray

    table = run.evals
    if final:
        tracker.log_json(table, "heldout_accuracy.json")
    echo(format_table(table, [s.name for s in cfg.stages]))
    run.save(run_dir / "state.json")
    tracker.close()
    versions = ray.get([w.adapter_version.remote() for w in svc.workers])
    learner_state = ray.get(svc.learner.ready.remote())
    release(svc)
    return {"evals": table, "run_dir": str(run_dir), "steps": run.step, "run_id": tracker.run_id,
            "finished": final, "stage": run.stage, "worker_versions": versions,
            "learner_version": learner_state["version"], "learner_step": learner_state["step"]}


def warm_start(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo) -> None:
    """SFT on worked solutions — generated, an equal share from each stage's difficulty and topics (so multi-step
    solutions are seen before the stages that need them), or the verified rows of `sft.data` — then the adapter
    goes to every worker."""
    import ray

    from actors.engine import encode_prompts

    if cfg.sft.data:
        rows = verified_sft_rows(cfg, svc, exclude, tracker, echo)
        prompts = [r.prompt if r.turn else cfg.prompt.format(question=r.prompt) for r in rows]
        targets = [r.target for r in rows]
    else:
        problems = sft_problems(cfg, exclude)
        prompts, targets = [prompt_for(p, cfg.prompt) for p in problems], [solution_text(p, cfg.sft.target) for p in problems]
    ray.get(svc.learner.reset_optimizer.remote(cfg.sft.lr, cfg.sft.steps))
    rng = random.Random(cfg.seed)
    prompt_ids = encode_prompts(svc.tokenizer, prompts)
    for step in range(1, cfg.sft.steps + 1):
        idx = rng.sample(range(len(targets)), min(cfg.sft.batch_size, len(targets)))
        m = ray.get(svc.learner.sft_step.remote([prompt_ids[i] for i in idx], [targets[i] for i in idx]))
        tracker.log_metrics({"sft/loss": m["sft_loss"], "sft/grad_norm": m["grad_norm"]}, step=step)
        if step == 1 or step % 10 == 0 or step == cfg.sft.steps:
            echo(f"[sft] step {step}/{cfg.sft.steps}  loss {m['sft_loss']:.3f}  {m['target_tokens'] / m['sft_seconds']:.0f} tok/s")
    push_adapter(svc.workers, ray.get(svc.learner.export_adapter.remote()))


def verified_sft_rows(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo) -> list:
    """The rows of `sft.data` fit to train on: readable, not a held-out fact, and — for chain-of-thought rows —
    a solution whose own final answer the verifier (lenient policy, in the pool) judges equal to the row's
    answer. Every dropped row is counted by reason, logged (`sft/data_*`) and printed; no usable row is an error."""
    from synthesis.sft_data import load_sft_rows

    try:
        rows, unreadable = load_sft_rows(cfg.sft.data)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sft.data: {exc}") from exc
    fresh = [r for r in rows if r.turn or r.fact_key() not in exclude]
    cot = [r for r in fresh if not r.turn]
    verdicts = svc.pool.score([ScoreRequest(f"sft/{i}", r.solution, r.prompt, r.answer, {}, "lenient")
                               for i, r in enumerate(cot)])
    dropped = collections.Counter(v.verdict for v in verdicts if v.verdict != "correct")
    kept = [r for r, v in zip(cot, verdicts) if v.verdict == "correct"] + [r for r in fresh if r.turn]
    counts = {"rows": len(rows) + unreadable, "unreadable": unreadable, "heldout": len(rows) - len(fresh),
              "cot_kept": len(kept) - (len(fresh) - len(cot)), "turns": len(fresh) - len(cot),
              **{f"dropped_{k}": n for k, n in sorted(dropped.items())}}
    tracker.log_metrics({f"sft/data_{k}": float(v) for k, v in counts.items()}, step=0)
    echo("[sft] " + cfg.sft.data + ": " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not kept:
        raise ConfigError(f"sft.data {cfg.sft.data}: no row is fit to train on ({counts})")
    return kept


def _last_logged(log_path: pathlib.Path, stage: str, n: int) -> list[dict]:
    """The stage's last `n` rollout-log records (only needed when a resumed run sampled none of them)."""
    from cluster.rollout_log import read_records

    return [r for r in read_records(log_path) if r.get("stage") == stage][-n:] if log_path.exists() else []


def _log_samples(tracker: Tracker, rows: list[dict], stage: str) -> None:
    """A table of the stage's last sampled completions with their rewards, as an MLflow artifact."""
    tracker.log_json([{"question": r["question"], "gold": r["gold"], "completion": r["text"],
                       "verdict": r["reward"]["verdict"], "reward": r["reward"]["total"]} for r in rows],
                     f"samples_{stage}.json")


def gains_over(evals: list[dict], stages: list[str], baseline: str = "sft") -> dict | None:
    """Paired gain of the last checkpoint over `baseline` per stage and over all stages' problems together
    (mean greedy accuracy over stages), each with a 95 % bootstrap interval; None without both rows."""
    from cluster.evaluate import paired_gain

    rows = {row["checkpoint"]: row for row in evals}
    if baseline not in rows or len(evals) < 2 or evals[-1]["checkpoint"] == baseline:
        return None
    before, after = rows[baseline], evals[-1]
    if any(f"{s}_per_problem" not in before or f"{s}_per_problem" not in after for s in stages):
        return None
    out = {s: paired_gain(after[f"{s}_per_problem"], before[f"{s}_per_problem"]) for s in stages}
    out["mean"] = paired_gain([x for s in stages for x in after[f"{s}_per_problem"]],
                              [x for s in stages for x in before[f"{s}_per_problem"]])
    return out


def format_table(evals: list[dict], stages: list[str]) -> str:
    """Held-out greedy accuracy per checkpoint and per stage's problems with 95 % bootstrap intervals (and `~`
    sampled accuracy when measured), the minutes elapsed, and the last checkpoint's gain over SFT."""
    sampled = [f"{s}~" for s in stages if any(f"{s}~" in row for row in evals)]
    header = f"{'after':<10}" + "".join(f"{s:>22}" for s in stages) + "".join(f"{c:>9}" for c in sampled) + f"{'minutes':>9}"
    n = max((len(evals[0].get(f"{s}_per_problem", [])) for s in stages), default=0) if evals else 0
    lines = [f"held-out greedy accuracy [95% bootstrap interval], {n} problems per stage never trained on "
             "(name~ = mean over sampled completions)", header, "-" * len(header)]
    for row in evals:
        cells = "".join(f"{row.get(s, 0.0):>8.3f} [{row.get(f'{s}_ci', [0, 0])[0]:.3f},{row.get(f'{s}_ci', [0, 0])[1]:.3f}]"
                        for s in stages)
        lines.append(f"{row['checkpoint']:<10}" + cells + "".join(f"{row[c]:>9.3f}" if c in row else f"{'-':>9}"
                                                                   for c in sampled) + f"{row['minutes']:>9.2f}")
    gains = gains_over(evals, stages)
    if gains:
        lines.append("-" * len(header))
        lines.append(f"{'gain/sft':<10}" + "".join(f"{g['gain']:>+8.3f} [{g['low']:+.3f},{g['high']:+.3f}]"
                                                   for g in (gains[s] for s in stages))
                     + f"   mean over stages {gains['mean']['gain']:+.3f} [{gains['mean']['low']:+.3f},{gains['mean']['high']:+.3f}]")
    return "\n".join(lines)
