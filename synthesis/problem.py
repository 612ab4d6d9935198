"""`Problem`, the record that crosses from synthesis to the driver, and the XML worked solution."""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Problem:
    """A question with a ground-truth answer (a string SymPy can parse), its difficulty, topic and origin.
    `solution` is a worked solution in our XML format (usable as an SFT target), empty when unknown; `form`
    is the form the answer must take when the form is the task (the strict verifier checks it)."""

    id: str
    question: str
    answer: str
    difficulty: int = 1
    topic: str = "unknown"
    source: str = "generated"
    meta: dict = field(default_factory=dict)
    solution: str = ""
    form: str = ""  # "" (a value), or the form that is the task: "factored", "expanded", "simplified"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def worked_solution(steps: list[str], answer: str) -> str:
    """The XML target: one reasoning line per step, then the final answer."""
    reasoning = "\n".join(steps)
    return f"<response><reasoning>{reasoning}</reasoning><final_answer>{answer}</final_answer></response>"


def question_key(question: str) -> str:
    """A hash of the question with case, spacing and punctuation folded: equal keys are duplicates."""
    folded = re.sub(r"[^a-z0-9+\-*/^=().]", "", question.lower())
    return hashlib.sha1(folded.encode()).hexdigest()[:16]
