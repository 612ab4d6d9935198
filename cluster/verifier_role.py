"""The verifier role of `rollout.env: solver-verifier` (SLM-Math's solver–verifier, both roles trained).

After a step's solver groups are scored, as many right as wrong solutions (each group's first of each, the larger
class cut to the smaller) go to the same policy as a verifier: G replies to
"check it step by step, then say CORRECT or WRONG" form a verifier group. A reply earns 1 when its last verdict word
agrees with SymPy's verdict on the judged answer (CORRECT for a right one, WRONG for any other verdict) and 0
otherwise — an UNCLEAR reply or none earns 0 too, so the group-relative advantage always favours deciding right.
The verifier groups join the step's GRPO batch beside the solver groups."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from actors.records import EnvSpec, GroupBatch, SamplingConfig
from cluster.agents import verdict_word
from synthesis.agent_data import APPROVAL, CHECK_PROMPT, REJECTION, shown
from synthesis.problem import Problem
from verifier_pool.reward import RewardBreakdown, Verdict

def judged_solutions(groups: list[GroupBatch]) -> list[tuple[GroupBatch, int]]:
    """Which solver episodes the verifier judges: as many right as wrong ones, each group giving at most its first
    right and its first wrong one. Balance matters: the solver is mostly wrong early on, and an agreement reward over
    a mostly-wrong judged set is met best by rejecting everything."""
    def first(g: GroupBatch, right: bool) -> int | None:
        return next((j for j, e in enumerate(g.episodes) if (e.verdict == Verdict.CORRECT) == right), None)

    rights = [(g, first(g, True)) for g in groups if first(g, True) is not None]
    wrongs = [(g, first(g, False)) for g in groups if first(g, False) is not None]
    n = min(len(rights), len(wrongs))
    return [pick for pair in zip(rights[:n], wrongs[:n]) for pick in pair]


def check_problem(group: GroupBatch, index: int) -> Problem:
    """The verifier's task for one solver episode; its `answer` is the verdict SymPy's judgement calls for."""
    p, episode = group.problem, group.episodes[index]
    right = episode.verdict == Verdict.CORRECT
    return Problem(id=f"{p.id}/check{index}", question=CHECK_PROMPT.format(question=p.question,
                                                                          solution=shown(episode.final_text)),
                   answer=APPROVAL if right else REJECTION, difficulty=p.difficulty, topic=p.topic,
                   source="verifier", meta={**p.meta, "judged": f"{p.id}/{index}", "judged_right": right})


def agreement(reply: str, expected: str) -> RewardBreakdown:
    """The verifier reply's reward: 1 when its verdict word is the expected one, else 0."""
    word = verdict_word(reply)
    agrees = float(word == expected)
    return RewardBreakdown(agrees, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, agrees,
                           Verdict.CORRECT if agrees else Verdict.WRONG, word, 0.0, reason="verifier agreement")


@dataclass
class VerifierStats:
    """How the verifier judged this step's solutions: the share of its replies approving right ones, and wrong ones."""

    approve_right: float = 0.0
    approve_wrong: float = 0.0
    groups: int = 0

    @classmethod
    def of(cls, groups: list[GroupBatch]) -> "VerifierStats":
        verifier = [g for g in groups if g.role == "verifier"]

        def approval(right: bool) -> float:
            replies = [e.reward.extracted == APPROVAL for g in verifier if g.problem.meta["judged_right"] == right
                       for e in g.episodes]
            return sum(replies) / max(len(replies), 1)

        return cls(approval(True), approval(False), len(verifier))


def verifier_groups(fleet, solver_groups: list[GroupBatch], group_size: int, sampling: SamplingConfig,
                    stall_seconds: float | None = None) -> list[GroupBatch]:
    """G verifier replies for each judged solver episode, rewarded by agreement (no verifier-pool call: the reward
    compares two words; SymPy's judgement of the solution is already in the solver episode's breakdown)."""
    problems = [check_problem(g, j) for g, j in judged_solutions(solver_groups)]
    if not problems:
        return []
    groups = fleet.run_episodes(problems, EnvSpec("answer", template="{question}"), group_size, sampling,
                                stall_seconds=stall_seconds)
    for g in groups:
        for e in g.episodes:
            e.reward = agreement(e.final_text, g.problem.answer)
    return [dataclasses.replace(g, role="verifier") for g in groups]
