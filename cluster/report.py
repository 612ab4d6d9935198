"""What a run tells its user: the step line, reward-health flags, the held-out table with gains over SFT,
the curriculum plot and the stage's sample completions."""
from __future__ import annotations

import pathlib

from actors.records import GroupBatch
from cluster.config import TrainConfig
from cluster.records import EvalRow, RewardHealth, StepResult
from cluster.schedule import RunState
from cluster.tracking import Tracker
from verifier_pool.reward import Verdict


def reward_health(groups: list[GroupBatch], recent_timeout_shares) -> RewardHealth:
    """Every completion scored the same total (no signal at all), and the share of `timeout` verdicts, flagged as
    a jump above 5 % and 3× its recent median."""
    rewards = [e.reward for g in groups for e in g.episodes]
    timeouts = sum(r.verdict == Verdict.TIMEOUT for r in rewards) / max(len(rewards), 1)
    recent = sorted(recent_timeout_shares)
    median = recent[len(recent) // 2] if recent else 0.0
    return RewardHealth(identical_rewards=len(rewards) > 1 and len({round(r.total, 9) for r in rewards}) == 1,
                        timeouts=timeouts, timeout_jump=timeouts > max(0.05, 3 * median))


def health_warning(health: RewardHealth) -> str | None:
    if not (health.identical_rewards or health.timeout_jump):
        return None
    return ("every completion got the same reward; " if health.identical_rewards else "") + (
        f"timeouts jumped to {health.timeouts:.0%}" if health.timeout_jump else "")


def step_line(cfg: TrainConfig, run: RunState, pool_size: int, length: int, result: StepResult) -> str:
    """The one progress line printed per step."""
    stage, t, m = cfg.stages[run.stage], result.times, result.trained
    if pool_size:
        per_epoch = -(-pool_size // cfg.batch_size)
        where = f"e{(run.stage_step - 1) // per_epoch + 1}/{stage.epochs} b{(run.stage_step - 1) % per_epoch + 1}/{per_epoch}"
    else:
        where = f"{run.stage_step}/{length}"
    line = (f"[{stage.name} {where}] step {run.step}  reward {m.reward_total:.3f}  acc {m.accuracy:.3f}  "
            f"zero-spread {m.zero_spread_groups:.2f}")
    if result.extra_problems:
        line += f" (sampled {result.sampled.zero_spread_groups:.2f}, +{result.extra_problems} resampled)"
    kl = result.learn.kl if result.learn is not None else 0.0
    line += (f"  kl {kl:.4f}  {m.completion_tokens / max(t.rollout, 1e-9):.0f} tok/s  "
             f"draw {t.draw:.1f}s rollout {t.rollout:.1f}s score {t.score:.1f}s learn {t.learn:.1f}s push {t.push:.2f}s  "
             f"step {t.step:.1f}s idle {t.idle / max(t.step, 1e-9):.0%}")
    if result.learn is not None and result.learn.computed_tokens != result.learn.logical_tokens:
        line += (f"  forward {result.learn.computed_tokens:.0f}/{result.learn.logical_tokens:.0f} tokens "
                 f"({result.learn.computed_tokens / max(result.learn.logical_tokens, 1.0):.2f})")
    if result.verifier is not None:
        line += (f"  verifier approves right {result.verifier.approve_right:.2f} "
                 f"wrong {result.verifier.approve_wrong:.2f}")
    if result.sampled.programs:
        line += "  programs " + " ".join(f"{k} {v}" for k, v in sorted(result.sampled.programs.items()))
    if cfg.async_steps:
        line += f"  staleness {result.staleness:.1f}"
    if cfg.curriculum.mode != "fixed":
        line += "  d " + " ".join(f"{t}={s['d']:.2f}" for t, s in run.curriculum["topics"].items())
    return line


def eval_line(row: EvalRow) -> str:
    cells = [f"{name} {e.accuracy:.3f}" for name, e in row.stages.items()]
    cells += [f"{name}_sampled {e.sampled.accuracy:.3f}" for name, e in row.stages.items() if e.sampled]
    return f"held-out accuracy after {row.checkpoint}: " + "  ".join(cells)


def gains_over(evals: list[EvalRow], stages: list[str], baseline: str = "sft") -> dict | None:
    """Paired gain of the last checkpoint over `baseline` per stage and over all stages' problems together
    (mean greedy accuracy over stages), each with a 95 % bootstrap interval; None without both rows."""
    from cluster.evaluate import paired_gain

    rows = {row.checkpoint: row for row in evals}
    if baseline not in rows or len(evals) < 2 or evals[-1].checkpoint == baseline:
        return None
    before, after = rows[baseline].stages, evals[-1].stages
    if any(s not in before or s not in after for s in stages):
        return None
    out = {s: paired_gain(after[s].per_problem, before[s].per_problem) for s in stages}
    out["mean"] = paired_gain([x for s in stages for x in after[s].per_problem],
                              [x for s in stages for x in before[s].per_problem])
    return out


def format_table(evals: list[EvalRow], stages: list[str]) -> str:
    """Held-out greedy accuracy per checkpoint and per stage's problems with 95 % bootstrap intervals (and `~`
    sampled accuracy when measured), the minutes elapsed, and the last checkpoint's gain over SFT."""
    sampled = [s for s in stages if any(s in row.stages and row.stages[s].sampled for row in evals)]
    header = (f"{'after':<10}" + "".join(f"{s:>22}" for s in stages) + "".join(f"{s + '~':>9}" for s in sampled)
              + f"{'minutes':>9}")
    n = max((len(evals[0].stages[s].per_problem) for s in stages if s in evals[0].stages), default=0) if evals else 0
    lines = [f"held-out greedy accuracy [95% bootstrap interval], {n} problems per stage never trained on "
             "(name~ = mean over sampled completions)", header, "-" * len(header)]
    for row in evals:
        cells = ""
        for s in stages:
            e = row.stages.get(s)
            acc, (low, high) = (e.accuracy, e.ci) if e else (0.0, (0.0, 0.0))
            cells += f"{acc:>8.3f} [{low:.3f},{high:.3f}]"
        tilde = "".join(f"{row.stages[s].sampled.accuracy:>9.3f}" if s in row.stages and row.stages[s].sampled
                        else f"{'-':>9}" for s in sampled)
        lines.append(f"{row.checkpoint:<10}" + cells + tilde + f"{row.minutes:>9.2f}")
    gains = gains_over(evals, stages)
    if gains:
        lines.append("-" * len(header))
        lines.append(f"{'gain/sft':<10}" + "".join(f"{g['gain']:>+8.3f} [{g['low']:+.3f},{g['high']:+.3f}]"
                                                   for g in (gains[s] for s in stages))
                     + f"   mean over stages {gains['mean']['gain']:+.3f} [{gains['mean']['low']:+.3f},{gains['mean']['high']:+.3f}]")
    return "\n".join(lines)


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


def log_samples(tracker: Tracker, records: list[dict], stage: str) -> None:
    """A table of the stage's last sampled completions with their rewards, as an MLflow artifact."""
    tracker.log_json([{"question": r["question"], "gold": r["gold"], "completion": r["text"],
                       "verdict": r["reward"]["verdict"], "reward": r["reward"]["total"]} for r in records],
                     f"samples_{stage}.json")


def last_logged(log_path: pathlib.Path, stage: str, n: int) -> list[dict]:
    """The stage's last `n` rollout-log records (only needed when a resumed run sampled none of them)."""
    from cluster.rollout_log import read_records

    return [r for r in read_records(log_path) if r.get("stage") == stage][-n:] if log_path.exists() else []
