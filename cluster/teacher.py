"""The teacher in the loop (`curriculum.mode: teacher`, seed 001): problems near the edge of the model are rewritten
in symbolic space by strategies the run learns.

Every step, the problems whose pass rate lies far from `curriculum.target` (at least `teacher.edge` away) become
parents. For each child the teacher picks a parent and a strategy — an operator recipe
(`synthesis.operators`, e.g. `add_step` or `change_constant+add_distractor`) — by a discounted UCB bandit with one
context per side of the target (a parent the model finds too easy wants other strategies than one it finds too
hard). When the child's group has been sampled, its strategy earns

    closeness = 1 − |p − target| / max(target, 1 − target)      (p: the student's pass rate on the child)
    reward    = closeness + novelty · [the child's symbolic structure is new to the run]

The bandit's statistics decay by `teacher.discount` per step, because the student moves. The rest of each batch
comes from the adaptive controller (difficulty per topic), so teacher mode is the adaptive curriculum with
siblings replaced by taught children. All state is plain data in the curriculum dict of the run state: a resumed
run makes the same choices as one that never stopped.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

from cluster.config import TeacherConfig
from synthesis.operators import modify
from synthesis.problem import Problem

PARENTS = 64  # parents remembered, newest last
SEEN = 4096  # structure keys remembered for novelty
APPLIES = {"change_constant": {"expression", "equation", "roots", "story"},
           "add_step": {"expression", "equation", "story"}, "other_unknown": {"expression", "equation"},
           "compose": {"expression", "story"}, "swap_operation": {"expression"}, "add_distractor": {"story"}}


@dataclass
class Arm:
    """A strategy's discounted statistics in one context: pulls and summed reward."""

    pulls: float = 0.0
    reward: float = 0.0


@dataclass
class Teacher:
    arms: dict[str, dict[str, Arm]]  # context ("easy" | "hard") → strategy → Arm
    parents: list[dict] = field(default_factory=list)  # {"problem": Problem dict, "pass_rate": float}
    seen: list[str] = field(default_factory=list)  # structure keys of children and parents, oldest first
    last: dict[str, float] = field(default_factory=dict)  # the last step's `teacher_snapshot`, logged with the curriculum

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Teacher":
        arms = {ctx: {s: Arm(**a) for s, a in by.items()} for ctx, by in data["arms"].items()}
        return cls(arms, list(data["parents"]), list(data["seen"]), dict(data.get("last", {})))


@dataclass(frozen=True)
class StrategyReward:
    """What one taught child earned its strategy."""

    strategy: str
    context: str
    pass_rate: float
    novel: bool
    reward: float


def start_teacher(cfg: TeacherConfig, previous: dict | None = None) -> Teacher:
    if previous:
        return Teacher.from_dict(previous)
    return Teacher({ctx: {s: Arm() for s in cfg.strategies} for ctx in ("easy", "hard")})


def context_of(pass_rate: float, target: float) -> str:
    return "easy" if pass_rate > target else "hard"


def strategy_reward(pass_rate: float, target: float, novel: bool, novelty: float) -> float:
    return 1 - abs(pass_rate - target) / max(target, 1 - target) + (novelty if novel else 0.0)


def choose(arms: dict[str, Arm], allowed: list[str], pending: dict[str, int], exploration: float) -> str:
    """The allowed strategy with the highest upper confidence bound; pulls already handed out this step count, so
    one batch spreads over the arms. An arm never pulled comes first (in `allowed` order)."""
    total = sum(arms[s].pulls + pending.get(s, 0) for s in allowed) + 1

    def bound(s: str) -> float:
        n = arms[s].pulls + pending.get(s, 0)
        if n <= 0:
            return math.inf
        return arms[s].reward / max(arms[s].pulls, 1e-9) + exploration * math.sqrt(math.log(total) / n)

    return max(allowed, key=lambda s: (bound(s), -allowed.index(s)))


def observe_teacher(teacher: Teacher, cfg: TeacherConfig, target: float,
                    groups: list[tuple[Problem, list[bool]]]) -> Teacher:
    """Fold one step's verdicts in: taught children reward their strategies, problems far from the target become
    parents."""
    arms = {ctx: {s: Arm(a.pulls * cfg.discount, a.reward * cfg.discount) for s, a in by.items()}
            for ctx, by in teacher.arms.items()}
    seen, rewards, parents = list(teacher.seen), [], list(teacher.parents)
    known = set(seen)
    for problem, correct in groups:
        if not correct:
            continue
        rate = sum(correct) / len(correct)
        key = (problem.meta or {}).get("structure")
        strategy = (problem.meta or {}).get("strategy")
        if problem.source == "teacher" and strategy in arms.get(problem.meta.get("context"), {}):
            novel = key not in known
            r = StrategyReward(strategy, problem.meta["context"], rate, novel,
                               strategy_reward(rate, target, novel, cfg.novelty))
            arm = arms[r.context][strategy]
            arm.pulls, arm.reward = arm.pulls + 1, arm.reward + r.reward
            rewards.append(r)
        if key and key not in known:
            known.add(key)
            seen.append(key)
        if problem.symbolic is not None and abs(rate - target) >= cfg.edge:
            parents.append({"problem": problem.to_dict(), "pass_rate": rate})
    taught = Teacher(arms, parents[-PARENTS:], seen[-SEEN:])
    taught.last = teacher_snapshot(taught, rewards)
    return taught


def taught_problems(teacher: Teacher, cfg: TeacherConfig, target: float, n: int, rng: random.Random,
                    exclude: set[str]) -> list[Problem]:
    """Up to `n` children of the teacher's parents, each by the strategy the bandit picks for its parent's context;
    none holds a held-out fact or repeats a question."""
    if not teacher.parents:
        return []
    out, questions, pending = [], set(), {"easy": {}, "hard": {}}
    for _ in range(3 * n):
        if len(out) >= n:
            break
        entry = rng.choice(teacher.parents)
        parent, context = Problem.from_dict(entry["problem"]), context_of(entry["pass_rate"], target)
        allowed = [s for s in cfg.strategies if all(parent.symbolic.style in APPLIES[op] for op in s.split("+"))]
        if not allowed:
            continue
        strategy = choose(teacher.arms[context], allowed, pending[context], cfg.exploration)
        pending[context][strategy] = pending[context].get(strategy, 0) + 1
        partners = [p for p in teacher.parents if p["problem"]["topic"] == parent.topic]
        partner = Problem.from_dict(rng.choice(partners)["problem"])
        child = modify(parent, tuple(strategy.split("+")), rng, partner=partner, exclude=exclude)
        if child is None or child.question in questions:
            continue
        questions.add(child.question)
        out.append(dataclasses.replace(child, meta={**child.meta, "strategy": strategy, "context": context}))
    return out


def teacher_snapshot(teacher: Teacher, rewards: list[StrategyReward]) -> dict[str, float]:
    """Per step: each strategy's mean reward and pulls this step, and the bandit's running value per context."""
    out: dict[str, float] = {"teacher/parents": len(teacher.parents), "teacher/structures_seen": len(teacher.seen)}
    for strategy in sorted({r.strategy for r in rewards}):
        mine = [r for r in rewards if r.strategy == strategy]
        out[f"teacher/{strategy}/children"] = len(mine)
        out[f"teacher/{strategy}/reward"] = sum(r.reward for r in mine) / len(mine)
        out[f"teacher/{strategy}/pass_rate"] = sum(r.pass_rate for r in mine) / len(mine)
    for context, arms in teacher.arms.items():
        for strategy, arm in arms.items():
            if arm.pulls > 0:
                out[f"teacher/{context}/{strategy}/value"] = arm.reward / arm.pulls
    return out
