"""The loop's typed records: a step's scored groups (`ScoredStep`), what a step logs (`StepResult`) and a
checkpoint's held-out evaluation (`EvalRow`). Each turns itself into MLflow's flat metric names in one place."""
from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field

from actors.records import GroupBatch
from cluster.verifier_role import VerifierStats
from learner.grpo import has_spread
from learner.learner import LearnStats
from verifier_pool.reward import RewardWeights, Verdict


@dataclass
class ScoredStep:
    """One step's scored groups, problem by problem; `trained[i]`: whether group i goes to the learner."""

    groups: list[GroupBatch]
    trained: list[bool]
    rollout_seconds: float = 0.0
    score_seconds: float = 0.0
    rollout_span: tuple[float, float] = (0.0, 0.0)  # perf_counter start and end of sampling
    draw_seconds: float = 0.0  # drawing the problems and any replacements (generators, teacher, screening)
    extra_problems: int = 0  # sampled to replace groups with no correctness spread
    verifier: list[GroupBatch] = field(default_factory=list)  # solver-verifier: groups judging the solver's answers

    @property
    def kept(self) -> list[GroupBatch]:
        return [g for g, t in zip(self.groups, self.trained) if t]

    @property
    def learned(self) -> list[GroupBatch]:
        """What the learner gets: the kept solver groups, then the verifier groups."""
        return self.kept + self.verifier


@dataclass
class GroupStats:
    """Means over the episodes of some groups: reward signals, verdict shares, groups without spread."""

    reward_total: float = 0.0
    reward_shaping: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    accuracy: float = 0.0
    not_final: float = 0.0
    hedged: float = 0.0
    timeouts: float = 0.0
    zero_spread_groups: float = 0.0
    completion_tokens: int = 0
    programs: dict[str, int] = field(default_factory=dict)  # what the episodes' programs did (code-feedback)

    @classmethod
    def of(cls, groups: list[GroupBatch]) -> "GroupStats":
        rewards = [e.reward for g in groups for e in g.episodes]
        n = max(len(rewards), 1)
        return cls(reward_total=sum(r.total for r in rewards) / n, reward_shaping=sum(r.shaping for r in rewards) / n,
                   signals={s: sum(getattr(r, s) for r in rewards) / n for s in RewardWeights.SIGNALS},
                   accuracy=sum(r.verdict == Verdict.CORRECT for r in rewards) / n,
                   not_final=sum(r.verdict == Verdict.NOT_FINAL for r in rewards) / n,
                   hedged=sum(r.verdict == Verdict.HEDGED for r in rewards) / n,
                   timeouts=sum(r.verdict == Verdict.TIMEOUT for r in rewards) / n,
                   zero_spread_groups=sum(not has_spread(g.correct) for g in groups) / max(len(groups), 1),
                   completion_tokens=sum(len(e.token_ids) for g in groups for e in g.episodes),
                   programs=dict(collections.Counter(status for g in groups for e in g.episodes
                                                     for status in e.info.get("programs", ()))))


@dataclass
class RewardHealth:
    """Signs of a sick reward in one step: every completion scored the same total (no signal), and the share of
    `timeout` verdicts, flagged as a jump above 5 % and 3× its recent median."""

    identical_rewards: bool
    timeouts: float
    timeout_jump: bool


@dataclass
class StepTimes:
    rollout: float = 0.0
    score: float = 0.0
    learn: float = 0.0
    push: float = 0.0
    step: float = 0.0
    idle: float = 0.0  # seconds neither sampling nor learning ran (GPU idle on a shared-GPU box)
    draw: float = 0.0  # seconds drawing the step's problems (generators, teacher children, screening)


LEARN_METRICS = ("loss", "kl", "clip_fraction", "grad_norm", "lr", "version", "mismatch_kl", "tis_clipped")


@dataclass
class StepResult:
    """Everything one GRPO (or RAFT) step logs."""

    step: int
    stage: int
    trained: GroupStats  # over the groups the learner got
    sampled: GroupStats  # over every group sampled, replacements included
    extra_problems: int
    shortfall: int  # groups with spread the batch lacked after resampling
    staleness: float  # learner version minus the mean adapter version that sampled the trained groups
    health: RewardHealth
    times: StepTimes
    learn: LearnStats | None = None
    raft_kept: int | None = None  # RAFT: completions kept for the supervised step
    raft_kept_groups: float | None = None
    curriculum: dict[str, float] = field(default_factory=dict)
    stage_end: str | None = None  # why this step ended its stage, if it did
    verifier: VerifierStats | None = None  # solver-verifier: how the verifier role judged

    def metrics(self) -> dict[str, float]:
        """MLflow's flat names."""
        t, s = self.times, self.trained
        out = {f"reward/{k}": v for k, v in s.signals.items()}
        out.update({"reward/total": s.reward_total, "reward/shaping": s.reward_shaping, "accuracy": s.accuracy,
                    "not_final": s.not_final, "hedged": s.hedged, "zero_spread_groups": s.zero_spread_groups,
                    "completion_tokens": s.completion_tokens, "sampled/accuracy": self.sampled.accuracy,
                    "sampled/zero_spread_groups": self.sampled.zero_spread_groups,
                    "resample/extra_problems": self.extra_problems, "resample/shortfall": self.shortfall,
                    "staleness": self.staleness, "health/identical_rewards": float(self.health.identical_rewards),
                    "health/timeouts": self.health.timeouts, "health/timeout_jump": float(self.health.timeout_jump),
                    "rollout_seconds": t.rollout, "score_seconds": t.score, "push_seconds": t.push, "draw_seconds": t.draw,
                    "step_seconds": t.step, "gpu_idle_seconds": t.idle, "gpu_idle_share": t.idle / max(t.step, 1e-9),
                    "rollout_tokens_per_s": s.completion_tokens / max(t.rollout, 1e-9), "stage_index": self.stage})
        if self.learn is not None:
            out.update({k: getattr(self.learn, k) for k in LEARN_METRICS})
            out.update(learn_seconds=self.learn.seconds, learner_tokens_per_s=self.learn.tokens_per_s,
                       **{"learner/logical_tokens": self.learn.logical_tokens,
                          "learner/computed_tokens": self.learn.computed_tokens,
                          "learner/computed_share": self.learn.computed_tokens / max(self.learn.logical_tokens, 1.0)})
        if self.raft_kept is not None:
            out.update({"raft/kept": self.raft_kept, "raft/kept_groups": self.raft_kept_groups})
        out.update({f"programs/{status}": n for status, n in self.sampled.programs.items()})
        if self.verifier is not None:
            out.update({"verifier/approve_right": self.verifier.approve_right,
                        "verifier/approve_wrong": self.verifier.approve_wrong, "verifier/groups": self.verifier.groups})
        out.update(self.curriculum)
        return {k: float(v) for k, v in out.items()}


@dataclass
class SampledEval:
    """Accuracy over `k` sampled completions per problem, with unbiased pass@k and maj@k."""

    accuracy: float
    k: int
    pass_at_k: float
    maj_at_k: float


@dataclass
class StageEval:
    """Greedy accuracy on one stage's held-out problems, its 95 % bootstrap interval, and each problem's score."""

    accuracy: float
    ci: list[float]
    per_problem: list[float]
    sampled: SampledEval | None = None


@dataclass
class EvalRow:
    """A checkpoint's held-out evaluation, stage by stage."""

    checkpoint: str
    minutes: float
    stages: dict[str, StageEval] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        out = {"heldout/minutes": self.minutes}
        for name, e in self.stages.items():
            out[f"heldout/{name}"] = e.accuracy
            if e.sampled is not None:
                out.update({f"heldout/{name}_sampled": e.sampled.accuracy,
                            f"heldout/{name}_pass@{e.sampled.k}": e.sampled.pass_at_k,
                            f"heldout/{name}_maj@{e.sampled.k}": e.sampled.maj_at_k})
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EvalRow":
        stages = {}
        for name, e in data.get("stages", {}).items():
            sampled = SampledEval(**e["sampled"]) if e.get("sampled") else None
            stages[name] = StageEval(e["accuracy"], list(e["ci"]), list(e["per_problem"]), sampled)
        return cls(data["checkpoint"], data["minutes"], stages)
