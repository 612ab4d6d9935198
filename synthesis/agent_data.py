"""The agents' conversation formats and SFT turns that teach a small model to take part in them.

Two agents (`cluster.agents` runs them): a solver–verifier loop (the model's solution is read by a verifier turn
that works the problem again and ends with its verdict, CORRECT or WRONG; a rejected solution is revised with that
working as the critique) and code feedback (the model writes
a Python program, the project runs it contained and shows the output, the model then answers). Each turn is one
user message built from the templates below, so training rows and evaluation prompts are the same text.

A tiny model cannot do either unless taught. `agent_turns` writes `sft.data` rows (`prompt`, `target`, `kind`)
from generated problems whose answer SymPy computed from an arithmetic expression (`meta["recompute"]`):

- code: the program `print(EXPR)` (integers as `Rational` when the expression divides, so it prints an exact
  fraction) → answering from its output; a program missing its closing parenthesis, the error it raises, and
  the corrected program;
- check: a worked solution (right, or with a wrong last step) → the right working, the two results side by side
  ("The solution says X; I get Y."), then the two compared character by character ("3 3 same, 6 4 differ.") and
  `CORRECT` or `WRONG` (`check_reply`). The verdict comes after the verifier's own computation (a generative
  verifier), and each step of the comparison is local: copy a character of each result, say whether the two just
  written agree, and end WRONG after any "differ". The tiny model never learned to compare two whole numbers a few
  tokens apart for its verdict (coin-flip verdicts after 450 steps of check turns alone), but it copies digits
  exactly; revise: the wrong solution and that critique → the right solution.
"""
from __future__ import annotations

import ast
import itertools
import random
import re

from synthesis.problem import Problem, solution_steps, worked_solution

CODE_PROMPT = "{question}\nWrite a Python program that prints the answer."
CODE_RETRY_PROMPT = "{question}\n```python\n{program}\n```\n{feedback}\nWrite a corrected Python program that prints the answer."
CODE_ANSWER_PROMPT = "{question}\n```python\n{program}\n```\n{feedback}\nGive the final answer."
CHECK_PROMPT = "{question}\nProposed solution:\n{solution}\nCheck it step by step, then say CORRECT or WRONG."
REVISE_PROMPT = "{question}\nProposed solution:\n{solution}\nCritique: {critique}\nWrite a corrected solution."
APPROVAL, REJECTION = "CORRECT", "WRONG"
MAX_SHOWN_CHARS = 600  # of a solution, program or output put into the next prompt


def shown(text: str) -> str:
    """Model or program text as it goes into a prompt: bounded, so a long output cannot grow the next turn."""
    text = text.strip()
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + " …"


def output_feedback(status: str, stdout: str, stderr: str) -> str:
    """What the model is told a program did: its output, or its error's last line, or that it ran out of time."""
    if status == "no_code":
        return "Error: no program found"
    if status == "timeout":
        return "Error: the program ran out of time"
    if status == "ok" and stdout.strip():
        return "Output: " + shown(stdout)
    last = (stderr.strip().splitlines() or ["the program printed nothing"])[-1]
    return "Error: " + shown(last)


def expression_of(problem: Problem) -> str | None:
    """The arithmetic expression SymPy evaluated for a generated problem (`sympify('EXPR')`), read with `ast`
    (our own generator's record, never evaluated); None when the problem has no such expression."""
    source = (problem.meta or {}).get("recompute") or ""
    try:
        node = ast.parse(source, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "sympify" and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        expr = node.args[0].value
        return expr if re.fullmatch(r"[\d\s+\-*/()]{1,200}", expr) else None
    return None


def program_for(expression: str) -> str:
    """A program that prints the exact value of an integer arithmetic expression."""
    if "/" not in expression:
        return f"print({expression})"
    exact = re.sub(r"\d+", lambda m: f"R({m.group(0)})", expression)
    return f"from sympy import Rational as R\nprint({exact})"


def check_reply(working: str, proposed: str, found: str) -> str:
    """A verifier turn's target: its own working, both results, their comparison character by character ("none"
    where one is shorter), then the verdict it implies."""
    verdict = APPROVAL if proposed == found else REJECTION
    pairs = ", ".join(f"{a} {b} {'same' if a == b else 'differ'}"
                      for a, b in itertools.zip_longest(proposed, found, fillvalue="none"))
    return f"{working}\nThe solution says {proposed}; I get {found}. {pairs}. {verdict}"


def _wrong_solution(problem: Problem, rng: random.Random) -> tuple[str, str]:
    """The worked solution with its last step's result (and so the final answer) off by a small amount, and that
    wrong answer."""
    lines = solution_steps(problem.solution)
    wrong = _off_by(problem.answer, rng)
    head, _, _ = lines[-1].rpartition("= ")
    return worked_solution(lines[:-1] + [f"{head}= {wrong}"], wrong), wrong


def _off_by(answer: str, rng: random.Random) -> str:
    num, _, den = answer.partition("/")
    delta = rng.choice([-10, -2, -1, 1, 2, 10])
    return f"{int(num) + delta}/{den}" if den else str(int(num) + delta)


def agent_turns(problems: list[Problem], seed: int = 0) -> list[dict]:
    """`sft.data` rows (prompt, target, kind) for both agents from problems with an arithmetic expression."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for problem in problems:
        expression = expression_of(problem)
        if expression is None or not problem.solution:
            continue
        q, answer = problem.question, problem.answer
        program = program_for(expression)
        rows.append({"prompt": CODE_PROMPT.format(question=q), "target": f"```python\n{program}\n```", "kind": "code"})
        rows.append({"prompt": CODE_ANSWER_PROMPT.format(question=q, program=program,
                                                         feedback=output_feedback("ok", answer, "")),
                     "target": worked_solution([f"The program printed {answer}."], answer), "kind": "code_answer"})
        if program.endswith(")"):
            broken = program[:-1]
            feedback = output_feedback("error", "", "SyntaxError: '(' was never closed")
            rows.append({"prompt": CODE_RETRY_PROMPT.format(question=q, program=broken, feedback=feedback),
                         "target": f"```python\n{program}\n```", "kind": "code_retry"})
        right = problem.solution
        try:
            wrong, wrong_answer = _wrong_solution(problem, rng)
        except (AttributeError, ValueError):  # not a worked solution ending in a rational answer
            continue
        working = "; ".join(solution_steps(right))
        critique = check_reply(working, wrong_answer, answer)
        rows.append({"prompt": CHECK_PROMPT.format(question=q, solution=shown(right)),
                     "target": check_reply(working, answer, answer), "kind": "check"})
        rows.append({"prompt": CHECK_PROMPT.format(question=q, solution=shown(wrong)), "target": critique,
                     "kind": "check"})
        rows.append({"prompt": REVISE_PROMPT.format(question=q, solution=shown(wrong), critique=shown(critique)),
                     "target": right, "kind": "revise"})
    return rows
