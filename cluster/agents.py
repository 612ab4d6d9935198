"""Agentic evaluation: the model checks or executes its own work before it answers (`rlvr eval --agent`).

Both loops are pure: they take the model as `generate(prompts) -> texts`, the SymPy verifier as
`score(problems, texts) -> [correct]` and, for code, `run_code(program) -> CodeResult`, so they are tested with
scripted functions; the command line plugs in the rollout workers, the verifier pool and the contained runner.

- **solver–verifier** (SLM-Math's loop, 5 answers by default): iteration 1 is the solver's answer to the plain
  prompt. A verifier turn (the same model or another) reads each solution, works it again and ends with its verdict,
  CORRECT, INCORRECT (WRONG reads the same) or UNCLEAR. Only CORRECT accepts: an accepted solution is final, any
  other is rewritten with the verifier's reply as the critique, which is iteration 2, and so on up to
  `max_iterations` answers. How often each verdict was given, on right and on wrong solutions, is counted.
- **code feedback**: each iteration the model writes a program (after the first, shown its failed program and the
  error), the program runs contained (`verifier_pool.code_runner`), and the model answers from the output; a
  program that ran ends the loop. How often programs ran, failed, timed out or were missing is counted.

Accuracy after each iteration counts every problem (a finished problem keeps its last answer), with a 95 %
bootstrap interval; only the final answer text is scored, by SymPy.
"""
from __future__ import annotations

import concurrent.futures
import os
from collections import Counter
from typing import Callable, Sequence

from cluster.evaluate import bootstrap_interval
from synthesis.agent_data import (APPROVAL, CHECK_PROMPT, REJECTION, CODE_ANSWER_PROMPT, CODE_PROMPT, CODE_RETRY_PROMPT,
                                  REVISE_PROMPT, output_feedback, shown)
from synthesis.problem import Problem

Generate = Callable[[list[str]], list[str]]
Score = Callable[[Sequence[Problem], list[str]], list[bool]]
MAX_READ_CHARS = 20_000  # of a completion, before any search in it


UNCLEAR = "UNCLEAR"


def verdict_word(reply: str) -> str | None:
    """The last of CORRECT / WRONG (INCORRECT reads as WRONG) / UNCLEAR in a reply's tail, or None."""
    text = reply[-MAX_READ_CHARS:].upper().replace("IN" + APPROVAL, REJECTION)
    found = {word: text.rfind(word) for word in (APPROVAL, REJECTION, UNCLEAR)}
    word, at = max(found.items(), key=lambda item: item[1])
    return word if at >= 0 else None


def approves(reply: str) -> bool:
    """A verifier reply that accepts the solution: its last verdict word is CORRECT. INCORRECT, UNCLEAR and a
    reply with no verdict do not accept."""
    return verdict_word(reply) == APPROVAL


def extract_program(text: str) -> str | None:
    """The first fenced code block (```python … ``` or ``` … ```) of a completion; None when there is none."""
    text = text[:MAX_READ_CHARS]
    start = text.find("```")
    if start < 0:
        return None
    body_start = text.find("\n", start)
    end = text.find("```", start + 3)
    if body_start < 0 or end < 0 or end < body_start:
        return None
    program = text[body_start + 1 : end].strip()
    return program or None


def iteration_row(iteration: int, correct: list[bool]) -> dict:
    low, high = bootstrap_interval([float(c) for c in correct])
    return {"iteration": iteration, "accuracy": sum(correct) / max(len(correct), 1), "ci": [low, high],
            "per_problem": [float(c) for c in correct]}


def solver_verifier(problems: list[Problem], solve_prompts: list[str], generate: Generate, check: Generate,
                    score: Score, max_iterations: int = 5) -> dict:
    """Accuracy per iteration of the solve → check → revise loop, and the verifier's judgements against the truth
    (approved/rejected × right/wrong, and each verdict word × right/wrong, over every verifier turn)."""
    answers = generate(solve_prompts)
    correct = score(problems, answers)
    rows, judged, verdicts = [iteration_row(1, correct)], Counter(), Counter()
    active = list(range(len(problems)))
    for iteration in range(2, max_iterations + 1):
        if not active:
            rows.append(iteration_row(iteration, correct))
            continue
        replies = check([CHECK_PROMPT.format(question=problems[i].question, solution=shown(answers[i])) for i in active])
        rejected = []
        for i, reply in zip(active, replies):
            word, truth = verdict_word(reply), "right" if correct[i] else "wrong"
            approved = word == APPROVAL
            judged[f"{'approved' if approved else 'rejected'}_{truth}"] += 1
            verdicts[f"{word or 'none'}_{truth}"] += 1
            if not approved:
                rejected.append((i, reply))
        revised = generate([REVISE_PROMPT.format(question=problems[i].question, solution=shown(answers[i]),
                                                 critique=shown(reply)) for i, reply in rejected])
        for (i, _), text in zip(rejected, revised):
            answers[i] = text
        for i, ok in zip([i for i, _ in rejected], score([problems[i] for i, _ in rejected], revised)):
            correct[i] = ok
        active = [i for i, _ in rejected]
        rows.append(iteration_row(iteration, correct))
    return {"agent": "solver-verifier", "problems": len(problems), "iterations": rows,
            "verifier": {k: judged.get(k, 0) for k in ("approved_right", "approved_wrong", "rejected_right",
                                                        "rejected_wrong")},
            "verdicts": {f"{word}_{truth}": verdicts.get(f"{word}_{truth}", 0) for word in (APPROVAL, REJECTION, UNCLEAR,
                                                                                          "none")
                         for truth in ("right", "wrong")}}


def code_feedback(problems: list[Problem], generate: Generate, run_code: Callable, score: Score,
                  max_iterations: int = 2, threads: int | None = None) -> dict:
    """Accuracy per iteration of the write → run → answer loop, and what the programs did (ok, error, timeout,
    killed, no_code), counted over every program asked for."""
    answers, correct = [""] * len(problems), [False] * len(problems)
    programs: list[str | None] = [None] * len(problems)
    feedback = [""] * len(problems)
    rows, outcomes = [], Counter()
    active = list(range(len(problems)))
    pool = concurrent.futures.ThreadPoolExecutor(threads or os.cpu_count() or 1)
    try:
        for iteration in range(1, max_iterations + 1):
            if not active:
                rows.append(iteration_row(iteration, correct))
                continue
            prompts = [CODE_PROMPT.format(question=problems[i].question) if iteration == 1 else
                       CODE_RETRY_PROMPT.format(question=problems[i].question, program=shown(programs[i] or ""),
                                                feedback=feedback[i]) for i in active]
            written = [extract_program(text) for text in generate(prompts)]
            results = list(pool.map(lambda p: run_code(p) if p else None, written))
            for i, program, result in zip(active, written, results):
                status = result.status if result else "no_code"
                outcomes[status] += 1
                programs[i] = program
                feedback[i] = output_feedback(status, result.stdout if result else "", result.stderr if result else "")
            answered = generate([CODE_ANSWER_PROMPT.format(question=problems[i].question, program=shown(programs[i] or ""),
                                                           feedback=feedback[i]) for i in active])
            for i, text in zip(active, answered):
                answers[i] = text
            for i, ok in zip(active, score([problems[i] for i in active], answered)):
                correct[i] = ok
            active = [i for i, result in zip(active, results) if result is None or result.status != "ok"]
            rows.append(iteration_row(iteration, correct))
    finally:
        pool.shutdown(wait=True)
    return {"agent": "code-feedback", "problems": len(problems), "iterations": rows,
            "programs": {k: outcomes.get(k, 0) for k in ("ok", "error", "timeout", "killed", "no_code")}}
