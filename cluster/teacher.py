"""The teacher in the loop (`curriculum.mode: teacher`, seed 001): problems are rewritten in symbolic space by
strategies the run learns.

Every problem the student has been sampled on becomes a parent, in one of three contexts: `hard` (pass rate at
least `teacher.edge` below `curriculum.target`), `easy` (as far above) or `near` (closer than that: a problem with
correctness spread, whose children keep the student at its edge). For each child the teacher picks a context, a
parent in it and a strategy — an operator recipe (`synthesis.operators`, e.g. `add_step` or `drop_step+smaller_
constants`), or `revisit`, the parent asked again unchanged — by a discounted UCB bandit per context: a candidate
parent is drawn from each context and the (parent, strategy) with the highest upper bound wins, so the run learns
which parents are worth rewriting as well as how.
When the child's group has been sampled, its strategy earns

    closeness = 1 − |p − target| / max(target, 1 − target)      (p: the student's pass rate on the child)
    reward    = closeness + novelty · [the child's symbolic structure is new to the run]

The bandit's statistics decay by `teacher.discount` per step, because the student moves. The rest of each batch
comes from the adaptive controller (difficulty per topic), so teacher mode is the adaptive curriculum with
siblings replaced by taught children. With `teacher.screen` above 1 the teacher proposes that many candidates per
batch slot and keeps those whose pass rate the student's own policy predicts nearest the target (`screened`,
`pass_rate_predictor`): a child's group is then sampled only when the student is likely to half-solve it. All state
is plain data in the curriculum dict of the run state: a resumed run makes the same choices as one that never
stopped.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

from cluster.config import REVISIT, TeacherConfig
from synthesis.llm_teacher import PromptBook, prompt_for, record, settle_trials, start_book, start_trial, worst_prompt
from synthesis.operators import OPERATOR_STYLES, modify, structure_key
from synthesis.problem import Problem, fact_key, question_key

PARENTS = 64  # parents remembered per context, newest last
SEEN = 4096  # structure keys remembered for novelty
CONTEXTS = ("near", "hard", "easy")
FALLBACKS = 3  # next-best strategies tried for a parent when the chosen one makes no child


@dataclass
class Arm:
    """A strategy's discounted statistics in one context: pulls and summed reward."""

    pulls: float = 0.0
    reward: float = 0.0


@dataclass
class Teacher:
    arms: dict[str, dict[str, Arm]]  # context (see CONTEXTS) → strategy → Arm
    parents: list[dict] = field(default_factory=list)  # {"problem": Problem dict, "pass_rate": float}
    seen: list[str] = field(default_factory=list)  # structure keys of the problems sampled, oldest first
    last: dict[str, float] = field(default_factory=dict)  # the last step's `teacher_snapshot`, logged with the curriculum
    prompts: dict | None = None  # an LLM teacher's `PromptBook.to_dict()` (strategy prompts and their trials)
    steps: int = 0  # steps observed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Teacher":
        arms = {ctx: {s: Arm(**a) for s, a in by.items()} for ctx, by in data["arms"].items()}
        strategies = next(iter(arms.values()), {})
        arms.update({ctx: {s: Arm() for s in strategies} for ctx in CONTEXTS if ctx not in arms})
        return cls(arms, list(data["parents"]), list(data["seen"]), dict(data.get("last", {})), data.get("prompts"),
                   int(data.get("steps", 0)))


@dataclass(frozen=True)
class StrategyReward:
    """What one taught child earned its strategy."""

    strategy: str
    context: str
    pass_rate: float
    novel: bool
    reward: float
    prompt_version: int | None = None  # an LLM teacher's prompt version that made the child


def start_teacher(cfg: TeacherConfig, previous: dict | None = None) -> Teacher:
    if previous:
        return Teacher.from_dict(previous)
    book = start_book([s for s in cfg.strategies if s != REVISIT]).to_dict() if cfg.model != "offline" else None
    return Teacher({ctx: {s: Arm() for s in cfg.strategies} for ctx in CONTEXTS}, prompts=book)


def context_of(pass_rate: float, target: float, edge: float) -> str:
    if abs(pass_rate - target) < edge:
        return "near"
    return "easy" if pass_rate > target else "hard"


def strategy_reward(pass_rate: float, target: float, novel: bool, novelty: float) -> float:
    return 1 - abs(pass_rate - target) / max(target, 1 - target) + (novelty if novel else 0.0)


def ranked(arms: dict[str, Arm], allowed: list[str], pending: dict[str, int],
           exploration: float) -> list[tuple[str, float]]:
    """The allowed strategies with their upper confidence bounds, highest first; pulls already handed out this step
    count, so one batch spreads over the arms. An arm never pulled comes first (ties in `allowed` order)."""
    total = sum(arms[s].pulls + pending.get(s, 0) for s in allowed) + 1

    def bound(s: str) -> float:
        n = arms[s].pulls + pending.get(s, 0)
        if n <= 0:
            return math.inf
        return arms[s].reward / max(arms[s].pulls, 1e-9) + exploration * math.sqrt(math.log(total) / n)

    return sorted(((s, bound(s)) for s in allowed), key=lambda sb: -sb[1])


def observe_teacher(teacher: Teacher, cfg: TeacherConfig, target: float, groups: list[tuple[Problem, list[bool]]],
                    llm=None) -> Teacher:
    """Fold one step's verdicts in: taught children reward their strategies (and an LLM teacher's prompt versions),
    every problem with a symbolic form becomes a parent (`recent_parents`)."""
    arms = {ctx: {s: Arm(a.pulls * cfg.discount, a.reward * cfg.discount) for s, a in by.items()}
            for ctx, by in teacher.arms.items()}
    seen, rewards, parents = list(teacher.seen), [], list(teacher.parents)
    known = set(seen)
    for problem, correct in groups:
        if not correct:
            continue
        rate = sum(correct) / len(correct)
        key = (problem.meta or {}).get("structure") or (structure_key(problem.symbolic) if problem.symbolic else None)
        strategy = (problem.meta or {}).get("strategy")
        if problem.source == "teacher" and strategy in arms.get(problem.meta.get("context"), {}):
            novel = key not in known and strategy != REVISIT
            r = StrategyReward(strategy, problem.meta["context"], rate, novel,
                               strategy_reward(rate, target, novel, cfg.novelty), problem.meta.get("prompt_version"))
            arm = arms[r.context][strategy]
            arm.pulls, arm.reward = arm.pulls + 1, arm.reward + r.reward
            rewards.append(r)
        if key and key not in known:
            known.add(key)
            seen.append(key)
        if problem.symbolic is not None:
            parents.append({"problem": problem.to_dict(), "pass_rate": rate})
    taught = Teacher(arms, recent_parents(parents, target, cfg.edge), seen[-SEEN:], prompts=teacher.prompts,
                     steps=teacher.steps + 1)
    if taught.prompts is not None:
        taught.prompts = optimised_prompts(PromptBook.from_dict(taught.prompts), cfg, rewards, taught.steps,
                                           llm).to_dict()
    taught.last = teacher_snapshot(taught, rewards)
    return taught


def recent_parents(parents: list[dict], target: float, edge: float) -> list[dict]:
    """The newest `PARENTS` parents of each context, oldest first, one entry per question (its newest pass rate):
    problems near the target are few in a batch, and a short memory of all parents would hold only a handful."""
    newest = {}
    for entry in parents:
        newest.pop(entry["problem"]["question"], None)
        newest[entry["problem"]["question"]] = entry
    kept, counts = [], dict.fromkeys(CONTEXTS, 0)
    for entry in reversed(newest.values()):
        context = context_of(entry["pass_rate"], target, edge)
        if counts[context] < PARENTS:
            counts[context] += 1
            kept.append(entry)
    return kept[::-1]


def optimised_prompts(book: PromptBook, cfg: TeacherConfig, rewards: list[StrategyReward], step: int,
                      llm=None) -> PromptBook:
    """The prompt book after a step (OPRO): rewards credited to the prompt versions that earned them, finished
    trials settled, and every `prompt_every` steps a rewrite of the lowest-scoring prompt put on trial."""
    for r in rewards:
        if r.prompt_version is not None:
            book = record(book, r.strategy, r.prompt_version, r.reward)
    book = settle_trials(book, cfg.trial_children)
    worst = worst_prompt(book, cfg.trial_children)
    if llm is not None and worst is not None and step % cfg.prompt_every == 0:
        _, text = llm.run([], improve=(book, worst.strategy))
        if text and text != worst.text:
            book = start_trial(book, worst.strategy, text)
    return book


@dataclass(frozen=True)
class Pick:
    """One child to make: from which parent, in which context, by which strategy (and a partner to compose with);
    `fallbacks`, the next-best strategies for the parent, are tried in turn when one makes no child (an operator
    that does not apply to the parent, such as `drop_step` on a single operation)."""

    parent: Problem
    context: str
    strategy: str
    partner: Problem
    fallbacks: tuple[str, ...] = ()


def picks(teacher: Teacher, cfg: TeacherConfig, target: float, k: int, rng: random.Random) -> list[Pick]:
    """`k` (parent, strategy) picks. For each, one parent is drawn from every context that has parents, the bandit
    proposes its best strategy among those that apply to the parent's style, and the proposal with the highest upper
    bound wins (ties drawn at random); pulls handed out in this batch count, so the batch spreads over the arms."""
    parents = [(Problem.from_dict(entry["problem"]), entry["pass_rate"]) for entry in teacher.parents]
    by_context: dict[str, list[Problem]] = {ctx: [] for ctx in CONTEXTS}
    by_topic: dict[str, list[Problem]] = {}
    for parent, rate in parents:
        by_context[context_of(rate, target, cfg.edge)].append(parent)
        by_topic.setdefault(parent.topic, []).append(parent)
    out, pending = [], {ctx: {} for ctx in CONTEXTS}
    for _ in range(k):
        proposals = []
        for context, candidates in by_context.items():
            if not candidates:
                continue
            parent = rng.choice(candidates)
            allowed = [s for s in cfg.strategies if s == REVISIT
                       or all(parent.symbolic.style in OPERATOR_STYLES[op] for op in s.split("+"))]
            if allowed:
                order = ranked(teacher.arms[context], allowed, pending[context], cfg.exploration)
                proposals.append((order[0][1], rng.random(), parent, context, [s for s, _ in order]))
        if not proposals:
            continue
        _, _, parent, context, order = max(proposals, key=lambda x: x[:2])
        pending[context][order[0]] = pending[context].get(order[0], 0) + 1
        out.append(Pick(parent, context, order[0], rng.choice(by_topic[parent.topic]),
                        tuple(order[1 : 1 + FALLBACKS])))
    return out


def taught_problems(teacher: Teacher, cfg: TeacherConfig, target: float, n: int, rng: random.Random,
                    exclude: set[str], llm=None) -> list[Problem]:
    """Up to `n` children of the teacher's parents, each by the strategy the bandit picks for its parent's context:
    made by the operators (offline) or by the LLM from the strategy's current prompt, or the parent itself again
    (`revisit`). None holds a held-out fact; no two ask the same question."""
    from synthesis.generators import in_split

    if not teacher.parents:
        return []
    if llm is None:
        chosen = picks(teacher, cfg, target, 3 * n, rng)
        made = (operator_child(p, rng, exclude) for p in chosen)
    else:
        chosen = picks(teacher, cfg, target, 2 * n, rng)
        book = PromptBook.from_dict(teacher.prompts)
        asked = [(i, p) for i, p in enumerate(chosen) if p.strategy != REVISIT]
        written, _ = llm.run([(p.parent, prompt_for(book, p.strategy, i)) for i, p in asked]) if asked else ([], [])
        children = dict(zip((i for i, _ in asked), (child for child, _ in written)))
        made = ((revisited(p.parent, exclude) if p.strategy == REVISIT else children[i], p.strategy)
                for i, p in enumerate(chosen))
        made = ((child if child is not None and fact_key(child) not in exclude and in_split(fact_key(child), "train")
                 else None, strategy) for child, strategy in made)
    out, questions = [], set()
    for pick, (child, strategy) in zip(chosen, made):
        if child is not None and child.question not in questions:
            questions.add(child.question)
            out.append(dataclasses.replace(child, meta={**child.meta, "strategy": strategy, "context": pick.context}))
        if len(out) >= n:
            break
    return out


def operator_child(pick: Pick, rng: random.Random, exclude: set[str]) -> tuple[Problem | None, str]:
    """The child the pick's strategy makes, else the first its fallbacks make, with the strategy that made it."""
    for strategy in (pick.strategy, *pick.fallbacks):
        if strategy == REVISIT:
            child = revisited(pick.parent, exclude)
        else:
            child = modify(pick.parent, tuple(strategy.split("+")), rng, partner=pick.partner, exclude=exclude)
        if child is not None:
            return child, strategy
    return None, pick.strategy


def revisited(parent: Problem, exclude: set[str]) -> Problem | None:
    """The parent asked again, unchanged, as a taught problem: one the student half-solves is worth another group
    until it is learned (its pass rate on the very same question is far more stable than on any rewrite of it)."""
    from synthesis.generators import in_split

    fact = fact_key(parent)
    if parent.symbolic is None or fact in exclude or not in_split(fact, "train"):
        return None
    meta = {**{k: v for k, v in parent.meta.items() if k not in ("strategy", "context", "recipe", "prompt_version")},
            "parent": parent.id, "structure": structure_key(parent.symbolic)}
    return dataclasses.replace(parent, id=f"{parent.topic}-t-{question_key(parent.question)}", source="teacher",
                               meta=meta)


def screened(candidates: list[Problem], predicted: list[float | None], n: int, target: float) -> list[Problem]:
    """The `n` candidates to sample, in their drawn order: those whose predicted pass rate is nearest the target
    (ties: drawn first; the prediction kept in `meta["predicted_pass_rate"]`), and the candidates with no prediction
    (no worked solution to score) in their share of the draw, first drawn first."""
    if len(predicted) != len(candidates):
        raise ValueError(f"{len(predicted)} predictions for {len(candidates)} candidates")
    unknown = [i for i, q in enumerate(predicted) if q is None]
    known = sorted((abs(q - target), i) for i, q in enumerate(predicted) if q is not None)
    keep_unknown = min(len(unknown), round(len(unknown) * n / max(len(candidates), 1)))
    chosen = unknown[:keep_unknown] + [i for _, i in known[: n - keep_unknown]]
    chosen += unknown[keep_unknown : keep_unknown + n - len(chosen)]
    return [candidates[i] if predicted[i] is None else
            dataclasses.replace(candidates[i], meta={**candidates[i].meta, "predicted_pass_rate": predicted[i]})
            for i in sorted(chosen)]


def pass_rate_predictor(cfg, fleet, stall_seconds: float | None = None):
    """`predict(problems)`: the student's pass rate on each problem as the probability its policy gives the problem's
    worked solution (`sft.target` style) after the rollout prompt — one scoring pass, no sampling; None for a
    problem without a worked solution. With short worked answers (the tiny model's drills) a correct completion is
    nearly always the worked solution, so the probability tracks the pass rate at temperature 1; with long free-form
    reasoning it is a lower bound that only ranks problems."""
    from actors.environments import make_env
    from cluster.episodes import env_spec
    from synthesis.problem import solution_text

    environment = make_env(env_spec(cfg))

    def predict(problems: list[Problem]) -> list[float | None]:
        scored = [p for p in problems if p.solution]
        logps = iter(fleet.score([environment.init(p) for p in scored],
                                 [solution_text(p, cfg.sft.target) for p in scored], stall_seconds=stall_seconds)
                     if scored else [])
        return [math.exp(next(logps)) if p.solution else None for p in problems]

    return predict


def metric_name(strategy: str) -> str:
    """A strategy as MLflow accepts it in a metric name (no `+`): `add_step+add_step` → `add_step.then.add_step`."""
    return strategy.replace("+", ".then.")


def teacher_snapshot(teacher: Teacher, rewards: list[StrategyReward]) -> dict[str, float]:
    """Per step: each strategy's mean reward and pulls this step, and the bandit's running value per context."""
    out: dict[str, float] = {"teacher/parents": len(teacher.parents), "teacher/structures_seen": len(teacher.seen)}
    for strategy in sorted({r.strategy for r in rewards}):
        mine = [r for r in rewards if r.strategy == strategy]
        out[f"teacher/{metric_name(strategy)}/children"] = len(mine)
        out[f"teacher/{metric_name(strategy)}/reward"] = sum(r.reward for r in mine) / len(mine)
        out[f"teacher/{metric_name(strategy)}/pass_rate"] = sum(r.pass_rate for r in mine) / len(mine)
    for context, arms in teacher.arms.items():
        for strategy, arm in arms.items():
            if arm.pulls > 0:
                out[f"teacher/{context}/{metric_name(strategy)}/value"] = arm.reward / arm.pulls
    if teacher.prompts is not None:
        book = PromptBook.from_dict(teacher.prompts)
        out.update({f"teacher/{metric_name(s)}/prompt_version": v for s, v in book.versions().items()})
        out["teacher/prompt_trials"] = len(book.trials)
        out["teacher/prompts_retired"] = len(book.retired)
    return out


def teacher_client(cfg, run_dir):
    """The LLM side of `teacher.model` (None offline): a Grok teacher whose replies are cached in the run directory,
    so a resumed run replays them."""
    if cfg.curriculum.mode != "teacher" or cfg.teacher.model == "offline":
        return None
    import json
    import pathlib

    from synthesis.grok import ResolverConfig
    from synthesis.llm_teacher import GrokTeacher

    path = pathlib.Path(run_dir) / "teacher_replies.jsonl"
    cache = dict(json.loads(line) for line in path.read_text().splitlines()) if path.exists() else {}
    t = cfg.teacher
    return GrokTeacher(ResolverConfig(model=t.model, api_host=t.api_host, insecure=t.insecure,
                                      concurrency=t.concurrency), cache=cache, cache_path=path)
