"""RAFT (reward-ranked fine-tuning): keep the verified completions of each group and fine-tune on them.

With `algo: raft` a step samples G completions per problem like GRPO, then, instead of a policy-gradient
update, takes one supervised step on at most `raft.per_problem` completions per problem: those the verifier
judged correct (`raft.keep: correct`), or the highest-reward ones when some are correct (`top_reward`, which
orders the correct ones by the shaping signals). A pass over a stage's problems is one RAFT cycle
(`raft.cycles` of them per stage, or the stage's `epochs`). Groups with no kept completion cost sampling only.
"""
from __future__ import annotations

from verifier_pool.reward import Verdict


def raft_selection(verdicts: list[list[str]], rewards: list[list[float]], keep: str, per_problem: int) -> list[tuple[int, int]]:
    """(group, completion) indices to fine-tune on: per group at most `per_problem` correct completions, in
    completion order (`correct`) or by reward, highest first (`top_reward`); ties keep completion order."""
    chosen = []
    for g, (row_verdicts, row_rewards) in enumerate(zip(verdicts, rewards)):
        correct = [j for j, v in enumerate(row_verdicts) if v == Verdict.CORRECT]
        if keep == "top_reward":
            correct.sort(key=lambda j: -row_rewards[j])
        chosen += [(g, j) for j in correct[:per_problem]]
    return chosen
