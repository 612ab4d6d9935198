"""The training loop, top to bottom: `train_step` is one GRPO step, `run_stages` the stages around it.

    choose problems → sample G episodes each → score → select groups → learn → push the adapter → log

Everything a resumed run needs to continue at the same step with the same data order is the `RunState` saved
with the learner's checkpoint: problems and batch order are functions of the seed, the stage and the step.
With `async_steps: 1` step n+1's rollout runs while step n learns (sampled under adapter n−1).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import pathlib
import time
from dataclasses import dataclass, field
from typing import Callable

from cluster.checkpoint import base_model, load_run_state, prepare_run_dir, save_checkpoint, write_eval_settings
from cluster.config import TrainConfig, dump
from cluster.curriculum import Curriculum, observe, should_promote, snapshot
from cluster.data import held_out_facts, held_out_problems
from cluster.episodes import env_spec, sample_step
from cluster.evaluate import evaluate
from cluster.learn import learn
from cluster.records import EvalRow, SampledEval, ScoredStep, StageEval, StepResult, StepTimes, GroupStats
from cluster.report import (eval_line, format_table, health_warning, last_logged, log_samples, plot_curriculum,
                            reward_health, step_line)
from cluster.rollout_log import append_records, truncate_after
from cluster.schedule import (RunState, replacement_problems, stage_curriculum, stage_length, stage_pool, teacher_of,
                              step_problems)
from cluster.teacher import pass_rate_predictor, teacher_client
from cluster.services import (FaultInjector, JobFailed, LearnerDied, Services, check_canaries, connect_ray,
                              learner_died, release, resolve_model, start_services)
from cluster.tracking import Tracker
from cluster.verifier_role import VerifierStats
from cluster.warm_start import warm_start
from cluster.watchdog import BusyClock, Watchdog
from learner.grpo import has_spread
from synthesis.problem import Problem


@dataclass
class Loop:
    """What the run loop keeps between steps beside the checkpointed `RunState`: the run's fixed context, the
    stage's problems, the one-step-ahead rollout (`pending`) and an adapter not yet pushed (`unpushed`)."""

    cfg: TrainConfig
    run_dir: pathlib.Path
    tracker: Tracker
    held_out: dict[str, list[Problem]]
    echo: Callable[[str], None]
    started: float
    watchdog: Watchdog
    prefetch: concurrent.futures.ThreadPoolExecutor
    exclude: set[str] = field(default_factory=set)
    busy: BusyClock = field(default_factory=BusyClock)
    pending: concurrent.futures.Future | None = None
    unpushed: object = None
    version: int = 0
    pool: list[Problem] = field(default_factory=list)
    pool_stage: int = -1
    length: int = 0
    rolling: collections.deque = field(default_factory=collections.deque)
    recent: collections.deque = field(default_factory=collections.deque)
    timeout_shares: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    teacher_llm: object = None  # `cluster.teacher.teacher_client`: an LLM teacher, None offline


def train_step(state: RunState, loop: Loop, svc: Services) -> tuple[RunState, StepResult]:
    """One step: the step's groups (sampled now, or ahead while the last step learned), the curriculum and the
    stage-end decision, the next step's rollout started (async), the learner step, the adapter pushed, the log."""
    cfg, step, window = loop.cfg, state.step + 1, time.perf_counter()
    if cfg.canary_every and step % cfg.canary_every == 0:
        svc.phase("canary")
        check_canaries(cfg, svc, loop.tracker, step, loop.echo)
    svc.phase("rollout")
    scored = loop.pending.result() if loop.pending else sample_after(state, loop, svc, rollout_seed(cfg, step))
    loop.pending = None
    loop.watchdog.record("rollout", scored.rollout_seconds)
    loop.busy.add(scored.rollout_span)
    push_seconds = push_unpushed(loop, svc)
    curriculum = observe(Curriculum.from_dict(state.curriculum), cfg.curriculum,
                         [(g.problem, [e.correct == 1.0 for e in g.episodes]) for g in scored.groups], teacher_of(cfg),
                         loop.teacher_llm)
    sampled = GroupStats.of(scored.groups)
    loop.rolling.append(sampled.accuracy)
    stage_end = stage_end_reason(cfg, state, loop.length, curriculum, list(loop.rolling),
                                 state.stage_seconds + time.perf_counter() - window)
    done = dataclasses.replace(state, step=step, stage_step=state.stage_step + 1, curriculum=curriculum.to_dict(),
                               rolling=list(loop.rolling), history=state.history + [{"step": step, **snapshot(curriculum)}])
    if cfg.async_steps and stage_end is None and step != cfg.max_steps and step % cfg.checkpoint_every:
        loop.pending = loop.prefetch.submit(sample_after, done, loop, svc, rollout_seed(cfg, step + 1))
    svc.phase("learning")
    svc.faults.before_learning(svc, step)
    learned = learn(cfg, svc, scored, loop.busy, loop.watchdog.deadline("learning"))
    staleness, health = staleness_of(scored, loop.version), reward_health(scored.groups, loop.timeout_shares)
    loop.timeout_shares.append(health.timeouts)
    if learned.stats is not None:
        loop.watchdog.record("learning", learned.stats.seconds)
        loop.version = learned.stats.version
    if learned.weights is not None and loop.pending is not None:
        loop.unpushed = learned.weights
    elif learned.weights is not None:
        push_seconds += push(loop, svc, learned.weights)
    now = time.perf_counter()
    state = dataclasses.replace(done, stage_seconds=state.stage_seconds + now - window)
    result = step_result(cfg, scored, sampled, learned, state, health, staleness, curriculum,
                         StepTimes(scored.rollout_seconds, scored.score_seconds, learned.stats.seconds if learned.stats
                                   else 0.0, push_seconds, now - window, loop.busy.idle(window, now),
                                   scored.draw_seconds), stage_end)
    log_step(loop, state, scored, result)
    return state, result


def sample_after(state: RunState, loop: Loop, svc: Services, seed: int) -> ScoredStep:
    """The scored rollout of the step after `state`: its problems and any replacements are fixed by `state`."""
    cfg, state = loop.cfg, dataclasses.replace(state)
    predict = (pass_rate_predictor(cfg, svc.fleet, loop.watchdog.deadline("rollout"))
               if teacher_of(cfg) is not None and cfg.teacher.screen > 1 else None)
    drawing = [0.0]

    def timed(draw, *args):
        begin = time.perf_counter()
        try:
            return draw(*args)
        finally:
            drawing[0] += time.perf_counter() - begin

    problems = timed(step_problems, cfg, state, loop.pool, loop.exclude, loop.teacher_llm, predict)
    scored = sample_step(cfg, svc.fleet, svc.pool, problems, seed,
                         lambda n, r, taken: timed(replacement_problems, cfg, state, loop.pool, loop.exclude, n, r,
                                                   taken, loop.teacher_llm, predict),
                         stall_seconds=loop.watchdog.deadline("rollout"))
    return dataclasses.replace(scored, draw_seconds=drawing[0])


def rollout_seed(cfg: TrainConfig, step: int) -> int:
    return cfg.seed * 100_003 + step


def stage_end_reason(cfg: TrainConfig, state: RunState, length: int, curriculum: Curriculum, rolling: list[float],
                     stage_seconds: float) -> str | None:
    """Whether the step after `state` ends its stage, and why: the stage's last batch, promotion by the adaptive
    curriculum, the stage's share of `grpo_minutes` spent, or the rolling accuracy at `advance_accuracy`."""
    stage = cfg.stages[state.stage]
    if state.stage_step + 1 >= length:
        return f"its last batch ({length} steps)"
    if cfg.curriculum.mode != "fixed" and should_promote(curriculum, cfg.curriculum):
        return f"promoted: the top difficulty passed for {cfg.curriculum.promote_steps} steps in a row"
    if cfg.grpo_minutes is not None and stage_seconds >= 60 * cfg.grpo_minutes / len(cfg.stages):
        return f"its share of grpo_minutes={cfg.grpo_minutes} spent"
    if (stage.advance_accuracy is not None and len(rolling) == cfg.rolling_window
            and sum(rolling) / len(rolling) >= stage.advance_accuracy):
        return f"rolling accuracy {sum(rolling) / len(rolling):.3f} >= {stage.advance_accuracy}"
    return None


def staleness_of(scored: ScoredStep, learner_version: int) -> float:
    """How many adapter versions behind the learner the trained episodes were sampled, on average."""
    versions = [e.policy_version for g in scored.kept for e in g.episodes]
    return learner_version - sum(versions) / max(len(versions), 1)


def step_result(cfg: TrainConfig, scored: ScoredStep, sampled: GroupStats, learned, state: RunState, health, staleness: float,
                curriculum: Curriculum, times: StepTimes, stage_end: str | None) -> StepResult:
    with_spread = sum(has_spread(g.correct) for g in scored.groups)
    verifier = VerifierStats.of(scored.verifier) if cfg.rollout.env == "solver-verifier" else None
    return StepResult(step=state.step, stage=state.stage, trained=GroupStats.of(scored.kept), verifier=verifier,
                      sampled=sampled, extra_problems=scored.extra_problems,
                      shortfall=max(0, cfg.batch_size - with_spread),
                      staleness=staleness, health=health, times=times, learn=learned.stats,
                      raft_kept=learned.raft_kept, raft_kept_groups=learned.raft_kept_groups,
                      curriculum=snapshot(curriculum), stage_end=stage_end)


def log_step(loop: Loop, state: RunState, scored: ScoredStep, result: StepResult) -> None:
    """The step's metrics to MLflow, every episode to the rollout log, the step line (and a health warning)."""
    cfg = loop.cfg
    warning = health_warning(result.health)
    if warning:
        loop.echo(f"reward health at step {state.step}: {warning}")
    loop.tracker.log_metrics(result.metrics(), step=state.step)
    stage = cfg.stages[state.stage].name
    records = [{"step": state.step, "stage": stage, **record}
               for g, trained in list(zip(scored.groups, scored.trained)) + [(g, True) for g in scored.verifier]
               for record in episode_records(cfg, g, trained)]
    append_records(loop.run_dir / "rollouts.msgpack", records)
    loop.recent.extend(records)
    loop.echo(step_line(cfg, state, len(loop.pool), loop.length, result))


def episode_records(cfg: TrainConfig, group, trained: bool) -> list[dict]:
    """The rollout log's records of one group: every episode with its problem, verdict and reward breakdown."""
    p = group.problem
    return [{"problem_id": p.id, "question": p.question, "gold": p.answer, "form": p.form, "topic": p.topic,
             "difficulty": p.meta.get("d"), "predicted_pass_rate": p.meta.get("predicted_pass_rate"),
             "trained": trained, "policy": cfg.verifier.answer_policy, "verifier_version": e.reward.verifier_version,
             "text": e.transcript, "env": e.env, "role": group.role, "policy_version": e.policy_version,
             "finish_reason": e.finish_reason, "reward": e.reward.to_dict()}
            for e in group.episodes]


def push(loop: Loop, svc: Services, weights) -> float:
    """The adapter to every worker under the push deadline (the fleet replaces a worker that stalls or dies)."""
    svc.phase("push")
    begin = time.perf_counter()
    svc.fleet.push(weights, stall_seconds=loop.watchdog.deadline("push"))
    seconds = time.perf_counter() - begin
    loop.watchdog.record("push", seconds)
    return seconds


def push_unpushed(loop: Loop, svc: Services) -> float:
    """Async: the workers are done sampling under the adapter before the last; now the last one goes out."""
    if loop.unpushed is None:
        return 0.0
    weights, loop.unpushed = loop.unpushed, None
    return push(loop, svc, weights)


# ------------------------------------------------------------------ the run around the steps


def run_stages(state: RunState, loop: Loop, svc: Services) -> RunState:
    """GRPO steps stage by stage; a stage ends with its adapter saved, a held-out evaluation and a checkpoint.
    Stops (checkpointed, resumable) at `max_steps`."""
    cfg = loop.cfg
    while state.stage < len(cfg.stages):
        state = begin_stage(state, loop, svc)
        state, result = train_step(state, loop, svc)
        if result.stage_end is not None:
            state = end_stage(state, loop, svc, result.stage_end)
        elif state.step % cfg.checkpoint_every == 0 or state.step == cfg.max_steps:
            checkpoint(state, loop, svc)
        if state.step == cfg.max_steps and state.stage < len(cfg.stages):
            loop.echo(f"stopping at max_steps={state.step}; continue with: rlvr train --resume {loop.run_dir}")
            break
    return state


def begin_stage(state: RunState, loop: Loop, svc: Services) -> RunState:
    """The stage's problems and length (once per stage); at its first step a fresh optimiser and curriculum."""
    import ray

    cfg, stage = loop.cfg, loop.cfg.stages[state.stage]
    if loop.pool_stage != state.stage:
        fixed = cfg.curriculum.mode == "fixed" or stage.data
        loop.pool = stage_pool(cfg, state.stage, loop.exclude) if fixed else []
        loop.length, loop.pool_stage = stage_length(cfg, state.stage, len(loop.pool) or stage.problems), state.stage
    if state.stage_step == 0:
        ray.get(svc.learner.reset_optimizer.remote(cfg.raft.lr if cfg.algo == "raft" else cfg.learner.lr, loop.length))
        state = dataclasses.replace(state, curriculum=stage_curriculum(cfg, state.stage, state.curriculum).to_dict())
    return state


def end_stage(state: RunState, loop: Loop, svc: Services, reason: str) -> RunState:
    """The stage's adapter (with how to prompt and judge it), its curriculum plot and sample completions, a
    held-out evaluation, then the next stage from a checkpoint."""
    import ray

    cfg, name = loop.cfg, cfg_stage_name(loop.cfg, state)
    push_unpushed(loop, svc)
    loop.echo(f"stage {name} ends: {reason}, after {state.stage_step} of {loop.length} steps")
    stage_dir = loop.run_dir / "stages" / name
    ray.get(svc.learner.save.remote(str(stage_dir)))
    write_eval_settings(cfg, stage_dir, base_model(cfg, loop.run_dir))
    loop.tracker.log_artifact(stage_dir / "adapter", f"adapters/{name}")
    if state.history:
        loop.tracker.log_artifact(plot_curriculum(state.history, loop.run_dir / f"curriculum_{name}.png",
                                                  f"curriculum up to the end of {name}"))
    evaluate_checkpoint(state, loop, svc, name)
    log_samples(loop.tracker, list(loop.recent) or last_logged(loop.run_dir / "rollouts.msgpack", name,
                                                                cfg.log_samples), name)
    loop.rolling.clear()
    loop.recent.clear()
    state = dataclasses.replace(state, stage=state.stage + 1, stage_step=0, stage_seconds=0.0, rolling=[])
    checkpoint(state, loop, svc)
    return state


def cfg_stage_name(cfg: TrainConfig, state: RunState) -> str:
    return cfg.stages[state.stage].name


def checkpoint(state: RunState, loop: Loop, svc: Services) -> None:
    svc.phase("checkpoint")
    state.elapsed = time.perf_counter() - loop.started
    save_checkpoint(loop.cfg, svc.learner, state, loop.run_dir)


def evaluate_checkpoint(state: RunState, loop: Loop, svc: Services, label: str) -> None:
    """Greedy accuracy on every stage's held-out problems (and, after SFT or the start and after the last stage,
    `eval_samples` sampled completions each), appended to `state.evals`, logged and printed."""
    cfg = loop.cfg
    svc.phase("evaluation")
    row = EvalRow(label, round((time.perf_counter() - loop.started) / 60, 2))
    sampled_at = {"sft" if cfg.sft.enabled else "start", cfg.stages[-1].name}
    for name, problems in loop.held_out.items():
        greedy = timed_evaluate(loop, svc, "evaluation", problems)
        row.stages[name] = StageEval(greedy["accuracy"], greedy["ci"], greedy["per_problem"])
        if cfg.eval_samples and label in sampled_at:
            sampled = timed_evaluate(loop, svc, "evaluation_sampled", problems, k=cfg.eval_samples,
                                     temperature=cfg.rollout.temperature)
            row.stages[name].sampled = SampledEval(sampled["accuracy"], cfg.eval_samples, sampled["pass@k"],
                                                   sampled["maj@k"])
    state.evals.append(row)
    loop.tracker.log_metrics(row.metrics(), step=state.step)
    loop.echo(eval_line(row))


def timed_evaluate(loop: Loop, svc: Services, kind: str, problems: list[Problem], **kwargs) -> dict:
    """`evaluate` under the watchdog's deadline for this kind of evaluation (greedy or sampled)."""
    begin = time.perf_counter()
    result = evaluate(svc.fleet, svc.pool, problems, env_spec(loop.cfg), max_tokens=loop.cfg.rollout.max_tokens,
                      policy=loop.cfg.verifier.answer_policy, stall_seconds=loop.watchdog.deadline(kind), **kwargs)
    loop.watchdog.record(kind, time.perf_counter() - begin)
    return result


def warm_up(state: RunState, loop: Loop, svc: Services) -> RunState:
    """Before GRPO: the start's evaluation, or the SFT warm start, its evaluation and its adapter merged into the
    base weights everywhere (the KL reference becomes the SFT model), checkpointed."""
    import ray

    cfg = loop.cfg
    if cfg.init_adapter and not state.sft_done:
        for weights in ray.get(svc.learner.fold_in.remote(cfg.init_adapter)):
            svc.fleet.merge(weights)
        loop.echo(f"[init] {cfg.init_adapter} folded into the base weights: the KL reference is that model")
        state.sft_done = True
        evaluate_checkpoint(state, loop, svc, "sft")
        checkpoint(state, loop, svc)
    if not state.evals and not cfg.sft.enabled:
        evaluate_checkpoint(state, loop, svc, "start")
    if cfg.sft.enabled and not state.sft_done:
        svc.phase("sft")
        warm_start(cfg, svc, loop.exclude, loop.tracker, loop.echo, loop.run_dir)
        state.sft_done = True
        evaluate_checkpoint(state, loop, svc, "sft")
        svc.fleet.merge(ray.get(svc.learner.merge_adapter.remote()))
        loop.echo("[sft] adapter merged into the base weights: the KL reference is now the SFT model")
        checkpoint(state, loop, svc)
    return state


def restore(state: RunState, loop: Loop, svc: Services) -> None:
    """Resume: the learner loads the checkpoint, the workers get its merged adapters and its adapter, and the
    steps after it (all of them when killed before the first) are replayed."""
    import ray

    checkpoint_dir, adapter = loop.run_dir / "checkpoint", 0
    if checkpoint_dir.exists():
        adapter = ray.get(svc.learner.load.remote(str(checkpoint_dir)))["version"]
        for merged in ray.get(svc.learner.merged_adapters.remote()):
            svc.fleet.merge(merged)
        svc.fleet.push(ray.get(svc.learner.export_adapter.remote()))
    dropped = truncate_after(loop.run_dir / "rollouts.msgpack", state.step)
    loop.tracker.skip_logged()
    loop.echo(f"resumed {loop.run_dir} at stage {state.stage} step {state.step} (adapter v{adapter}); "
              f"{dropped} rollout-log records of replayed steps dropped")


def train(cfg: TrainConfig, resume: str | None = None, echo=print, force: bool = False,
          faults: FaultInjector | None = None) -> dict:
    """Run (or resume) the whole job (`run_job`); returns the per-stage evaluation table. A learner that dies is
    restarted with the whole job from the last checkpoint, `learner.restarts` times per call (the exact-resume
    path: the steps since the checkpoint, or since the start, are sampled and learned again, identically); past
    that the job fails with the resume command."""
    faults, restarts = faults or FaultInjector(), 0
    while True:
        try:
            return run_job(cfg, resume, echo, force, faults)
        except LearnerDied as died:
            if restarts >= cfg.learner.restarts:
                raise JobFailed(died.phase, died.run_dir, died.error) from died.error
            restarts += 1
            echo(f"{died} ({str(died.error).splitlines()[0][:200]}); restart {restarts}/{cfg.learner.restarts} "
                 f"from the last checkpoint of {died.run_dir}")
            resume, force = str(died.run_dir), False


def run_job(cfg: TrainConfig, resume: str | None, echo, force: bool, faults: FaultInjector) -> dict:
    """Run (or resume) the whole job once: services, SFT warm start, the stages; everything released at the end
    or on any failure, which is reported as `JobFailed` (or `LearnerDied`, which `train` restarts)."""
    run_dir = prepare_run_dir(cfg, resume, force)
    state = load_run_state(run_dir, resume)
    echo(f"resolved config:\n{dump(cfg)}")
    started = time.perf_counter() - state.elapsed
    model_path = resolve_model(base_model(cfg, run_dir))  # builds/pretrains the tiny model before Ray takes the cores
    connect_ray(cfg)
    tracker = Tracker(cfg.tracking_uri, cfg.experiment, run_id=state.run_id, run_name=run_dir.name)
    if state.run_id is None:  # from here on a kill at any moment leaves a run dir that resumes into this MLflow run
        tracker.log_params(cfg.to_dict())
        tracker.log_artifact(run_dir / "config.yaml")
        state.run_id = tracker.run_id
        state.save(run_dir / "state.json")
    svc = Services(faults=faults)
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-rollout")
    try:
        svc.phase("starting services")
        start_services(cfg, model_path, svc, report=echo)
        held_out = held_out_problems(cfg)
        loop = Loop(cfg, run_dir, tracker, held_out, echo, started,
                    Watchdog(cfg.watchdog.factor, cfg.watchdog.floor_seconds, cfg.watchdog.first_seconds), prefetch,
                    exclude=held_out_facts(held_out), rolling=collections.deque(state.rolling, maxlen=cfg.rolling_window),
                    recent=collections.deque(maxlen=cfg.log_samples), teacher_llm=teacher_client(cfg, run_dir))
        if resume:
            restore(state, loop, svc)
        return run_loop(state, loop, svc)
    except BaseException as exc:
        prefetch.shutdown(wait=False, cancel_futures=True)
        died = learner_died(svc, exc)
        release(svc)
        if died:
            tracker.suspend(f"{svc.phase_now}: the learner died: {type(exc).__name__}")
            raise LearnerDied(svc.phase_now, run_dir, exc) from exc
        tracker.fail(f"{svc.phase_now}: {type(exc).__name__}: {exc}")
        if isinstance(exc, Exception):
            raise JobFailed(svc.phase_now, run_dir, exc) from exc
        raise


def run_loop(state: RunState, loop: Loop, svc: Services) -> dict:
    """Canaries, warm start, the stages, the final table."""
    import ray

    svc.faults.arm(svc, "start")
    svc.phase("canary")
    check_canaries(loop.cfg, svc, loop.tracker, state.step, loop.echo)
    svc.faults.arm(svc, "evaluation")
    state = warm_up(state, loop, svc)
    svc.faults.arm(svc, "grpo")
    loop.version = ray.get(svc.learner.ready.remote())["version"]
    if loop.cfg.max_steps != 0:
        state = run_stages(state, loop, svc)
    loop.prefetch.shutdown(wait=True)
    return finish(state, loop, svc, final=state.stage >= len(loop.cfg.stages))


def finish(state: RunState, loop: Loop, svc: Services, *, final: bool) -> dict:
    """Print and log the evaluation table, release the services; the run directory stays resumable."""
    import ray

    cfg = loop.cfg
    if final:
        loop.tracker.log_json([row.to_dict() for row in state.evals], "heldout_accuracy.json")
    loop.echo(format_table(state.evals, [s.name for s in cfg.stages]))
    state.save(loop.run_dir / "state.json")
    loop.tracker.close()
    versions = svc.fleet.versions()
    learner_state = ray.get(svc.learner.ready.remote())
    release(svc)
    return {"evals": state.evals, "run_dir": str(loop.run_dir), "steps": state.step, "run_id": loop.tracker.run_id,
            "finished": final, "stage": state.stage, "worker_versions": versions,
            "learner_version": learner_state["version"], "learner_step": learner_state["step"]}
