"""The verifier's verdicts.

A `str` enum: a verdict equals, hashes and formats as its plain value (`Verdict.CORRECT == "correct"`,
`f"{Verdict.CORRECT}" == "correct"`), so comparisons with plain strings, JSON, msgpack and the rollout logs already
on disk keep working. The wire (`RewardBreakdown.to_dict`, sandbox replies) carries the plain string; what is read
back from it is turned into a `Verdict` again (`Verdict(value)`).
"""
from __future__ import annotations

import enum


class Verdict(str, enum.Enum):
    CORRECT = "correct"  # the answer equals the gold one
    WRONG = "wrong"  # parsed, and not equal
    NOT_FINAL = "not_final"  # equal in value, but not in the final form the strict policy asks for
    HEDGED = "hedged"  # the final statement commits to no one answer: rival values, a negation, a hedge, a condition
    UNPARSABLE = "unparsable"  # no answer, or one that cannot be read as mathematics
    TIMEOUT = "timeout"  # the comparison (or the chunk holding it) overran its deadline
    ERROR = "error"  # the verifier itself failed (a dead actor, bad weights)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)
