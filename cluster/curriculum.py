"""A closed-loop curriculum: each topic's difficulty follows the model's measured pass rate.

The controller keeps, per topic, a continuous difficulty d in [0, 1] (see `synthesis.generators`: levels
1/2/3 are d = 0, 0.5, 1) and a smoothed pass rate. After every step it folds the step's verdicts in and moves
d toward the difficulty where the pass rate equals `target` (0.5 by default: a group of G completions then
has the most correctness spread, so the most learning signal):

    p  ← (1 − smoothing) · p + smoothing · (correct / completions of the topic this step)
    d  ← clip(d + step_size · (p − target), stage low, stage high)

This is a Robbins–Monro iteration on the pass-rate curve, which falls with d: above the target d rises,
below it d falls, and it settles where p(d) = target when that point lies in the stage's range (with
`step_size` 0.2 and `smoothing` 0.5 it settles within a few steps on the simulated students of the tests,
and the fluctuation left is about step_size × the pass-rate noise of one step). Topics are mixed in
proportion to p(1 − p) + `mix_floor` (the correctness variance of a completion: most signal at p = 0.5).
A share of every batch are siblings of recently half-solved problems (same template, new numbers, or one more
step when d has risen: `synthesis.generators.sibling`).

A stage is promoted (`curriculum.mode: adaptive`) when every topic sits at the stage's top difficulty with
p ≥ `promote_pass` for `promote_steps` consecutive steps; `fixed` keeps the preset's stages and data.
Everything here is pure data in and out; the state is a dict in the run state, so a resumed run makes the
same decisions as one that never stopped.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from cluster.config import CurriculumConfig, TeacherConfig
from synthesis.generators import generate_problems, sibling
from synthesis.problem import Problem

FRONTIER = 64  # half-solved problems remembered as parents for siblings


@dataclass
class TopicState:
    d: float
    pass_rate: float | None = None  # smoothed; None before the topic's first verdicts
    completions: int = 0


@dataclass
class Curriculum:
    topics: dict[str, TopicState]
    low: float
    high: float
    passing_steps: int = 0  # consecutive steps at the top difficulty with pass rate ≥ promote_pass
    frontier: list[dict] = field(default_factory=list)  # Problem dicts, newest last
    teacher: dict | None = None  # `cluster.teacher.Teacher.to_dict()` in `mode: teacher`

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Curriculum":
        topics = {t: TopicState(**s) for t, s in data["topics"].items()}
        return cls(topics, data["low"], data["high"], data["passing_steps"], list(data["frontier"]), data.get("teacher"))


def start_stage(mix: dict[str, float], low: float, high: float, previous: Curriculum | None = None,
                teacher: TeacherConfig | None = None) -> Curriculum:
    """The controller for a stage over difficulties [low, high]: every topic starts at the stage's own level
    (`high`) with no pass-rate estimate, and eases down from there while the model passes less than the target.
    Starting at the top rather than where the last stage ended matters when a topic's levels are not ordered
    by the model's pass rate (the tiny model passes short chains of small numbers, level 3, more often than one
    operation on numbers up to 99, level 2). Half-solved parents, and the teacher (when `teacher` is given), carry
    over."""
    from cluster.teacher import start_teacher

    topics = {t: TopicState(high) for t, weight in mix.items() if weight > 0}
    taught = start_teacher(teacher, previous.teacher if previous else None).to_dict() if teacher else None
    return Curriculum(topics, low, high, 0, list(previous.frontier) if previous else [], taught)


def observe(cur: Curriculum, cfg: CurriculumConfig, groups: list[tuple[Problem, list[bool]]],
            teacher: TeacherConfig | None = None, llm=None) -> Curriculum:
    """Fold one step's verdicts (problem, correctness of each of its completions) into the state, the teacher's
    too when it has one."""
    topics = {t: dataclasses.replace(s) for t, s in cur.topics.items()}
    for topic, state in topics.items():
        verdicts = [c for problem, correct in groups if problem.topic == topic for c in correct]
        if not verdicts:
            continue
        rate = sum(verdicts) / len(verdicts)
        state.pass_rate = rate if state.pass_rate is None else (1 - cfg.smoothing) * state.pass_rate + cfg.smoothing * rate
        state.completions += len(verdicts)
        state.d = min(max(state.d + cfg.step_size * (state.pass_rate - cfg.target), cur.low), cur.high)
    at_top = all(s.d >= cur.high - 1e-9 and s.pass_rate is not None and s.pass_rate >= cfg.promote_pass
                 for s in topics.values())
    half_solved = [p.to_dict() for p, correct in groups if 0 < sum(correct) < len(correct) and p.topic in topics]
    taught = cur.teacher
    if cur.teacher is not None and teacher is not None:
        from cluster.teacher import Teacher, observe_teacher

        taught = observe_teacher(Teacher.from_dict(cur.teacher), teacher, cfg.target, groups, llm).to_dict()
    return Curriculum(topics, cur.low, cur.high, cur.passing_steps + 1 if at_top else 0,
                      (cur.frontier + half_solved)[-FRONTIER:], taught)


def should_promote(cur: Curriculum, cfg: CurriculumConfig) -> bool:
    return cur.passing_steps >= cfg.promote_steps


def topic_weights(cur: Curriculum, cfg: CurriculumConfig) -> dict[str, float]:
    """Mixing weights ∝ p(1 − p) + mix_floor (an unobserved topic counts as p = 0.5), normalised."""
    raw = {t: (0.25 if s.pass_rate is None else s.pass_rate * (1 - s.pass_rate)) + cfg.mix_floor
           for t, s in cur.topics.items()}
    total = sum(raw.values())
    return {t: w / total for t, w in raw.items()}


def next_problems(cur: Curriculum, cfg: CurriculumConfig, n: int, seed: str, exclude: set[str],
                  teacher: TeacherConfig | None = None, llm=None) -> list[Problem]:
    """`n` training problems for a step: `sibling_share` of them mutated from half-solved parents at their
    topic's current difficulty (with a teacher: its `share` taught children instead), the rest fresh, topics drawn
    by `topic_weights`. Deterministic in (state, seed); held-out facts (`exclude`) and the held-out side of the
    split never appear."""
    rng = random.Random(seed)
    out: list[Problem] = []
    seen: set[str] = set()
    if cur.teacher is not None and teacher is not None:
        from cluster.teacher import Teacher, taught_problems

        out = taught_problems(Teacher.from_dict(cur.teacher), teacher, cfg.target, round(teacher.share * n), rng,
                              exclude, llm)
        seen.update(p.question for p in out)
    elif cur.frontier:
        for _ in range(round(cfg.sibling_share * n)):
            parent = Problem.from_dict(rng.choice(cur.frontier))
            child = sibling(parent, cur.topics[parent.topic].d, rng, exclude=exclude)
            if child is not None and child.question not in seen:
                seen.add(child.question)
                out.append(child)
    weights = topic_weights(cur, cfg)
    names = sorted(weights)
    counts = {t: 0 for t in names}
    for topic in rng.choices(names, [weights[t] for t in names], k=n - len(out)):
        counts[topic] += 1
    for topic in names:
        if counts[topic]:
            fresh = generate_problems(counts[topic] + len(seen), d=round(cur.topics[topic].d, 4), topics={topic: 1.0},
                                      seed=rng.getrandbits(31), exclude=exclude, split="train")
            fresh = [p for p in fresh if p.question not in seen][: counts[topic]]
            seen.update(p.question for p in fresh)
            out.extend(fresh)
    rng.shuffle(out)
    return out


def snapshot(cur: Curriculum) -> dict[str, float]:
    """Per-topic difficulty and pass rate, as logged every step."""
    out = {}
    for topic, s in cur.topics.items():
        out[f"curriculum/{topic}/difficulty"] = s.d
        if s.pass_rate is not None:
            out[f"curriculum/{topic}/pass_rate"] = s.pass_rate
    return {**out, **(cur.teacher or {}).get("last", {})}
