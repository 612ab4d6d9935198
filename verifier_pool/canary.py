"""Reward-health canaries: known completions with known verdicts, scored inside each verifier actor's own
worker during a run, so a verifier that starts misjudging (a broken dependency, a sandbox that no longer
answers, a worker with a different SymPy) is noticed before the policy learns from it."""
from __future__ import annotations

from dataclasses import dataclass

from verifier_pool.verdict import Verdict

_RESPONSE = "<response><reasoning>{work}</reasoning><final_answer>{answer}</final_answer></response>"


@dataclass(frozen=True)
class Canary:
    name: str
    completion: str
    question: str
    gold: str
    verdict: Verdict  # what the strict policy must say


CANARIES: tuple[Canary, ...] = (
    Canary("right", _RESPONSE.format(work="2 + 3 = 5", answer="5"), "What is 2 + 3?", "5", Verdict.CORRECT),
    Canary("equal_value", _RESPONSE.format(work="1/2 = 0.5", answer="0.5"), "What is 1/2 as a decimal?", "1/2",
           Verdict.CORRECT),
    Canary("wrong", _RESPONSE.format(work="2 + 3 = 6", answer="6"), "What is 2 + 3?", "5", Verdict.WRONG),
    Canary("restated_question", _RESPONSE.format(work="work", answer="2 + 3"), "What is 2 + 3?", "5",
           Verdict.NOT_FINAL),
    Canary("hostile_code", _RESPONSE.format(work="work", answer="__import__('os').system('true')"), "What is 2 + 3?",
           "5", Verdict.NOT_FINAL),
    Canary("huge_power", _RESPONSE.format(work="work", answer="9**9**9**9**9"), "What is 2 + 3?", "5",
           Verdict.NOT_FINAL),
    Canary("hedged", _RESPONSE.format(work="2 + 3 = 5", answer="5, or maybe 6"), "What is 2 + 3?", "5", Verdict.HEDGED),
)


def canary_failures(verdicts: list[str]) -> list[str]:
    """The canaries (by name, with the verdict given) whose verdict is not the known one."""
    return [f"{c.name}: {got} (expected {c.verdict})" for c, got in zip(CANARIES, verdicts, strict=True)
            if got != c.verdict]
