"""Evaluation through the rollout workers and the verifier pool: accuracy, pass@k and maj@k."""
from __future__ import annotations

from collections import Counter

import time

from actors.records import SamplingConfig
from actors.worker import generate_across
from cluster.config import PROMPT
from synthesis.problem import Problem
from verifier_pool.pool import ScoreRequest, VerifierPool
from verifier_pool.reward import RewardBreakdown

def prompt_for(problem: Problem, template: str = PROMPT) -> str:
    return template.format(question=problem.question)


def group_metrics(verdicts: list[list[str]], extracted: list[list[str | None]]) -> dict[str, float]:
    """accuracy (share of correct samples), pass@k (any correct), maj@k (the most common extracted answer is
    correct), each averaged over problems."""
    if not verdicts:
        return {"accuracy": 0.0, "pass@k": 0.0, "maj@k": 0.0, "problems": 0}
    accuracy = passed = majority = 0.0
    for row_verdicts, row_answers in zip(verdicts, extracted):
        correct = [v == "correct" for v in row_verdicts]
        accuracy += sum(correct) / len(correct)
        passed += any(correct)
        votes = Counter(a.strip() for a in row_answers if a)
        if votes:
            top = votes.most_common(1)[0][0]
            majority += any(ok for ok, a in zip(correct, row_answers) if a and a.strip() == top)
    n = len(verdicts)
    return {"accuracy": accuracy / n, "pass@k": passed / n, "maj@k": majority / n, "problems": n}


def sample_and_score(workers: list, pool: VerifierPool, problems: list[Problem], k: int, sampling: SamplingConfig,
                     template: str = PROMPT, weights: dict | None = None, timings: dict | None = None,
                     policy: str = "strict"):
    """k completions per problem and their breakdowns, both laid out problem by problem, judged under the
    answer `policy`; seconds spent sampling and scoring go into `timings`."""
    timings = {} if timings is None else timings
    start = time.perf_counter()
    rows = generate_across(workers, [prompt_for(p, template) for p in problems], k, sampling, [p.id for p in problems])
    timings["rollout_seconds"] = time.perf_counter() - start
    requests = [ScoreRequest(f"{p.id}/{j}", c.text, p.question, p.answer, weights or {}, policy, p.form)
                for p, row in zip(problems, rows) for j, c in enumerate(row)]
    start = time.perf_counter()
    flat = pool.score(requests)
    timings["score_seconds"] = time.perf_counter() - start
    breakdowns: list[list[RewardBreakdown]] = [flat[i * k : (i + 1) * k] for i in range(len(problems))]
    return rows, breakdowns


def evaluate(workers: list, pool: VerifierPool, problems: list[Problem], *, k: int = 1, temperature: float = 0.0,
             max_tokens: int = 256, template: str = PROMPT, policy: str = "strict") -> dict[str, float]:
    """Accuracy, pass@k and maj@k of the workers' current adapter on `problems` (greedy when temperature is 0),
    under the answer `policy` (lenient for external benchmarks, the training policy on held-out problems)."""
    sampling = SamplingConfig(temperature=temperature, max_tokens=max_tokens, logprobs=False, seed=0)
    _, breakdowns = sample_and_score(workers, pool, problems, k, sampling, template, policy=policy)
    return group_metrics([[b.verdict for b in row] for row in breakdowns],
                         [[b.extracted for b in row] for row in breakdowns])
