"""`Problem`, the record that crosses from synthesis to the driver, and the XML worked solution."""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import asdict, dataclass, field

from synthesis.symbolic import Symbolic


@dataclass(frozen=True)
class Problem:
    """A question with a ground-truth answer (a string SymPy can parse), its difficulty, topic and origin.
    `solution` is a worked solution in our XML format (usable as an SFT target), empty when unknown; `form`
    is the form the answer must take when the form is the task (the strict verifier checks it); `symbolic` is the
    problem as variables, constraints and a target (`synthesis.symbolic`), None for dataset problems."""

    id: str
    question: str
    answer: str
    difficulty: int = 1
    topic: str = "unknown"
    source: str = "generated"
    meta: dict = field(default_factory=dict)
    solution: str = ""
    form: str = ""  # "" (a value), or the form that is the task: "factored", "expanded", "simplified"
    symbolic: Symbolic | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["symbolic"] = self.symbolic.to_dict() if self.symbolic is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if isinstance(known.get("symbolic"), dict):
            known["symbolic"] = Symbolic.from_dict(known["symbolic"])
        return cls(**known)


def worked_solution(steps: list[str], answer: str) -> str:
    """The XML target: one reasoning line per step, then the final answer."""
    reasoning = "\n".join(steps)
    return f"<response><reasoning>{reasoning}</reasoning><final_answer>{answer}</final_answer></response>"


def solution_steps(solution: str) -> list[str]:
    """The reasoning lines of a `worked_solution` (its inverse, less the answer); ValueError when it has none."""
    match = re.search(r"<reasoning>(.*?)</reasoning>", solution, re.S)
    if match is None:
        raise ValueError("not a worked solution: no <reasoning> block")
    return match.group(1).splitlines()


SOLUTION_STYLES = ("xml", "plain")


def solution_text(problem: "Problem", style: str) -> str:
    """A problem's worked solution as a training target: `xml` (its `solution`, the markup the default prompt asks
    for) or `plain` (the same reasoning lines, then "The answer is …." — the way the tiny model's pretraining texts
    end, which the strict verifier reads as a final answer, in about two thirds of the XML's tokens)."""
    if style == "xml":
        return problem.solution
    if style != "plain":
        raise ValueError(f"unknown solution style {style!r}; expected one of {SOLUTION_STYLES}")
    return "\n".join(solution_steps(problem.solution) + [f"The answer is {problem.answer}."])


def _canonical(node: ast.AST) -> str:
    """A canonical spelling of a SymPy-source expression tree: sums and products flattened and their operands
    sorted (so `12 * 11` and `11 * 12`, `(10 + 4) + 9` and `9 + (4 + 10)` agree), numbers normalised, and a
    `sympify('…')` wrapper read through. The tree is only read, never evaluated."""
    if isinstance(node, ast.Expression):
        return _canonical(node.body)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        kind = type(node.op)
        operands, stack = [], [node]
        while stack:
            n = stack.pop()
            if isinstance(n, ast.BinOp) and isinstance(n.op, kind):
                stack += [n.left, n.right]
            else:
                operands.append(_canonical(n))
        return ("+" if kind is ast.Add else "*").join(sorted(operands)).join("()")
    if isinstance(node, ast.BinOp):
        return f"({_canonical(node.left)}{type(node.op).__name__}{_canonical(node.right)})"
    if isinstance(node, ast.UnaryOp):
        return f"{type(node.op).__name__}{_canonical(node.operand)}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return _canonical(ast.parse(node.value.replace("^", "**"), mode="eval"))
        return repr(node.value)
    if isinstance(node, ast.Call):
        name = _canonical(node.func)
        if name == "sympify" and len(node.args) == 1:
            return _canonical(node.args[0])
        return f"{name}[{','.join(_canonical(a) for a in node.args)}]"
    if isinstance(node, ast.Name):
        return node.id
    return ast.dump(node, annotate_fields=False)


def fact_key(problem: "Problem") -> str:
    """The key of the fact a problem tests: its symbolic instance (`meta["recompute"]`, the SymPy source that
    computes the answer) in canonical form, so "What is 11 * 12?" and "What is 12 * 11?" share a key; problems
    without one (datasets) fall back to `question_key`. Held-out/train splits and exclusions use this key."""
    source = (problem.meta or {}).get("recompute")
    if not source:
        return question_key(problem.question)
    try:
        canonical = _canonical(ast.parse(source, mode="eval"))
    except (SyntaxError, ValueError, RecursionError):
        return question_key(problem.question)
    return hashlib.sha1(f"{problem.topic}|{canonical}".encode()).hexdigest()[:16]


def question_key(question: str) -> str:
    """A hash of the question with case, spacing and punctuation folded: equal keys are duplicates."""
    folded = re.sub(r"[^a-z0-9+\-*/^=().]", "", question.lower())
    return hashlib.sha1(folded.encode()).hexdigest()[:16]
