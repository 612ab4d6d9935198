"""Evaluation through the rollout workers and the verifier pool: accuracy with a 95 % bootstrap interval,
unbiased pass@k and maj@k, and paired gains between two checkpoints on the same held-out problems."""
from __future__ import annotations

import math
from collections import Counter

from actors.records import EnvSpec, SamplingConfig
from synthesis.problem import Problem
from verifier_pool import answer_classes
from verifier_pool.pool import VerifierPool
from verifier_pool.reward import Verdict


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def bootstrap_interval(values: list[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap, 2,000 resamples)."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size < 2 or np.all(data == data[0]):
        mean = float(data.mean()) if data.size else 0.0
        return mean, mean
    result = bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile",
                       random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_gain(after: list[float], before: list[float], seed: int = 0) -> dict[str, float]:
    """Mean per-problem gain of `after` over `before` (same problems, same order) with its 95 % interval."""
    if len(after) != len(before):
        raise ValueError("a paired gain needs the same problems before and after")
    diffs = [a - b for a, b in zip(after, before)]
    low, high = bootstrap_interval(diffs, seed=seed)
    return {"gain": sum(diffs) / max(len(diffs), 1), "low": low, "high": high}


def group_metrics(verdicts: list[list[str]], extracted: list[list[str | None]]) -> dict:
    """Over problems: accuracy (share of correct samples) with its 95 % bootstrap interval, unbiased pass@k
    for k = the samples per problem, maj@k (the largest class of SymPy-equal answers is correct; `0.5` and
    `\\frac12` vote together) with its interval, and `per_problem` (each problem's share of correct samples, for
    paired comparisons)."""
    if not verdicts:
        return {"accuracy": 0.0, "ci": [0.0, 0.0], "pass@k": 0.0, "maj@k": 0.0, "maj_ci": [0.0, 0.0], "problems": 0,
                "k": 0, "per_problem": []}
    per_problem, passed, majority = [], 0.0, []
    k = min(len(row) for row in verdicts)
    for row_verdicts, row_answers in zip(verdicts, extracted):
        correct = [v == Verdict.CORRECT for v in row_verdicts]
        per_problem.append(sum(correct) / len(correct))
        passed += pass_at_k(len(correct), sum(correct), k)
        majority.append(float(majority_correct(correct, row_answers)))
    n = len(verdicts)
    low, high = bootstrap_interval(per_problem)
    return {"accuracy": sum(per_problem) / n, "ci": [low, high], "pass@k": passed / n, "maj@k": sum(majority) / n,
            "maj_ci": list(bootstrap_interval(majority)), "problems": n, "k": k, "per_problem": per_problem}


def majority_correct(correct: list[bool], answers: list[str | None]) -> bool:
    """Whether the largest class of equal answers (ties: the class seen first) holds a correct sample."""
    classes = answer_classes(answers)
    votes = Counter(c for c in classes if c is not None)
    if not votes:
        return False
    top = max(votes, key=lambda c: (votes[c], -c))
    return any(ok for ok, c in zip(correct, classes) if c == top)


def evaluate(fleet, pool: VerifierPool, problems: list[Problem], env: EnvSpec, *, k: int = 1,
             temperature: float = 0.0, max_tokens: int = 256, policy: str = "strict",
             stall_seconds: float | None = None) -> dict[str, float]:
    """Accuracy, pass@k and maj@k of the fleet's current adapter on `problems` (greedy when temperature is 0),
    under the answer `policy` (lenient for external benchmarks, the training policy on held-out problems). A chunk
    silent for `stall_seconds` is sampled again elsewhere."""
    from cluster.episodes import sample_and_score

    sampling = SamplingConfig(temperature=temperature, max_tokens=max_tokens, logprobs=False, seed=0)
    scored = sample_and_score(fleet, pool, problems, k, sampling, env, policy=policy, stall_seconds=stall_seconds)
    return group_metrics([[e.verdict for e in g.episodes] for g in scored.groups],
                         [[e.reward.extracted for e in g.episodes] for g in scored.groups])
