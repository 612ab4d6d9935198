"""The 8-signal reward: pure functions, each in [0, 1], combined by configurable weights.

A correct answer always outscores a wrong one: correctness carries half the weight, a correct answer
always earns parsability, and partial credit for near misses is capped at `partial_credit_max`
(0.1) so that 0.5·0.1 + 0.5 (every other signal perfect) < 0.5 + 0.07 (correct, nothing else).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, fields

from verifier_pool.equivalence import VERIFIER_VERSION, Judgement, compare
from verifier_pool.extract import MAX_COMPLETION_CHARS, extract_final, tag_blocks
from verifier_pool.parse import NUMBER_IN_TEXT
from verifier_pool.verdict import Verdict  # re-exported: `from verifier_pool.reward import Verdict`

_NUMBER = NUMBER_IN_TEXT
_OPERATOR = re.compile(r"[+\-*/×÷=^]|\\(?:frac|sqrt|times|cdot|div)")
# The right side of an `=` up to the end of its clause, as `=\s*([^=\n]+?)\s*(?:[.,;]\s|[.,;]?$|\n)` reads it, in linear
# time: that spelling backtracks over every split of a blank run between `\s*`, the lazy side and the `\s*` after it
# (worse than quadratic on a long blank run). Here the blank after `=` is taken whole; the clause's end is looked for
# only after a non-blank (after a blank, the blank run ends the same way); and group 2 is the one reading backtracking
# adds, a blank side (`x = ` at a line's end).
_EQUALS_RESULT = re.compile(r"=\s*+([^=\n]+?)(?<![^\S\n])[^\S\n]*+(?:[.,;]\s|[.,;]?$|\n)"
                            r"|=\s*([^\S\n])(?=\n|[.,;]\s|[.,;]?$)", re.M)
_BEFORE_WORDS = re.compile(r"(?<!\s)\s++(?=[A-Za-z]{2,}+\b)")  # where "= 12 apples" stops being the result


REWARD_PRESETS = ("dense8", "simple", "binary")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the 8 signals (they must sum to 1), the shape of partial credit, and the preset that turns
    signals into the total: `dense8` (the weighted sum), `simple` (halo-forge's table: 1.0 correct, 0.2 wrong
    or unanswered with work shown, 0.1 with no work) or `binary` (1 correct, else 0). Every signal is computed and logged
    under each preset."""

    correctness: float = 0.50
    consistency: float = 0.10
    reasoning_depth: float = 0.10
    numerical_grounding: float = 0.10
    format: float = 0.08
    parsability: float = 0.07
    length: float = 0.03
    repetition: float = 0.02
    partial_credit_max: float = 0.1
    partial_credit_k: float = 10.0
    preset: str = "dense8"

    SIGNALS = ("correctness", "consistency", "reasoning_depth", "numerical_grounding",
               "format", "parsability", "length", "repetition")

    def __post_init__(self) -> None:
        if self.preset not in REWARD_PRESETS:
            raise ValueError(f"unknown reward preset {self.preset!r}; expected one of {REWARD_PRESETS}")
        values = [getattr(self, name) for name in self.SIGNALS]
        if any(v < 0 for v in values):
            raise ValueError("reward weights must be non-negative")
        if abs(sum(values) - 1.0) > 1e-6:
            raise ValueError(f"reward weights must sum to 1, got {sum(values):.6f}")

    @classmethod
    def from_dict(cls, data: dict | None) -> "RewardWeights":
        return cls(**(data or {}))


@dataclass(frozen=True)
class RewardBreakdown:
    """Every signal of one completion's reward, the weighted total and the verifier's verdict."""

    correctness: float
    consistency: float
    reasoning_depth: float
    numerical_grounding: float
    format: float
    parsability: float
    length: float
    repetition: float
    total: float
    verdict: Verdict  # a plain string read back from the wire or a log is turned into its Verdict
    extracted: str | None
    seconds: float
    verifier_version: str = VERIFIER_VERSION
    reason: str = ""
    shaping: float = 0.0  # the non-correctness part of the preset's reward, scaled to [0, 1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def to_dict(self) -> dict:
        """Plain values only (the verdict as its string): what goes over Ray, into msgpack logs and JSON."""
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_dict(cls, data: dict) -> "RewardBreakdown":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


# ---------------------------------------------------------------- the parts of a completion


def reasoning_text(completion: str) -> str:
    """The reasoning: the last <reasoning> block, else everything before the final answer."""
    blocks = tag_blocks(completion, "reasoning")
    if blocks:
        return blocks[-1][2].strip()
    cut = completion.lower().rfind("<final_answer>")
    if cut < 0:
        cut = completion.rfind("\\boxed")
    return (completion[:cut] if cut >= 0 else completion).strip()


def _numbers(text: str) -> list[str]:
    out = []
    for raw in _NUMBER.findall(text):
        s = raw.replace(",", "")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        out.append(s.lstrip("-") or "0")
    return out


# ---------------------------------------------------------------- the signals


def correctness_signal(verdict: Judgement, weights: RewardWeights) -> float:
    """1 when the answer matches; for a wrong *number*, `partial_credit_max·exp(-k·relative_error)`; else 0."""
    if verdict.equal:
        return 1.0
    if verdict.verdict == Verdict.WRONG and verdict.relative_error is not None and math.isfinite(verdict.relative_error):
        return weights.partial_credit_max * math.exp(-weights.partial_credit_k * verdict.relative_error)
    return 0.0


def consistency_signal(extracted: str | None, reasoning: str, *, timeout: float = 1.0) -> float:
    """1 when the final answer equals the last result in the reasoning (the right side of the last `=`,
    else the last number), 0 otherwise or when either is missing."""
    if not extracted or not reasoning:
        return 0.0
    last = last_result(reasoning)
    if last is None:
        return 0.0
    return 1.0 if compare(extracted, last.strip(), timeout=timeout).equal else 0.0


def last_result(reasoning: str) -> str | None:
    """The last result in the reasoning: the right side of the last `=` up to the end of its clause and before the
    words that follow it ("= 12 apples" is 12), else the last number; None when there is neither."""
    result = None
    for m in _EQUALS_RESULT.finditer(reasoning):
        result = m.group(m.lastindex)
    if result is not None:
        words = _BEFORE_WORDS.search(result)
        return result[: words.start()] if words else result
    numbers = _NUMBER.findall(reasoning)
    return numbers[-1] if numbers else None


def reasoning_depth_signal(reasoning: str, target: int = 20) -> float:
    """Operators and numbers in the reasoning, `min(1, count / target)`: arithmetic shown, not asserted."""
    count = len(_OPERATOR.findall(reasoning)) + len(_NUMBER.findall(reasoning))
    return min(1.0, count / target)


def numerical_grounding_signal(reasoning: str, problem_text: str) -> float:
    """Share of the problem's distinct numbers that appear in the reasoning (1 when it has none)."""
    given = set(_numbers(problem_text))
    if not given:
        return 1.0
    used = set(_numbers(reasoning))
    return len(given & used) / len(given)


def format_signal(completion: str) -> float:
    """0.25 each: a non-empty <reasoning>, a non-empty <final_answer>, both inside one <response> with
    reasoning first, and nothing but whitespace outside the <response> block."""
    score = 0.0
    reasoning, final, response = (next(iter(tag_blocks(completion, name)), None)
                                  for name in ("reasoning", "final_answer", "response"))
    score += 0.25 * bool(reasoning and reasoning[2].strip())
    score += 0.25 * bool(final and final[2].strip())
    if response and reasoning and final:
        inside = response[0] <= reasoning[0] and final[1] <= response[1]
        score += 0.25 * bool(inside and reasoning[0] < final[0])
        outside = completion[: response[0]] + completion[response[1]:]
        score += 0.25 * (not outside.strip())
    return score


def parsability_signal(verdict: Judgement) -> float:
    """1 when the extracted answer parsed (the verifier could call it correct or wrong), else 0."""
    return 1.0 if verdict.verdict in (Verdict.CORRECT, Verdict.WRONG) else 0.0


def length_signal(reasoning: str, low: int = 50, high: int = 400) -> float:
    """1 for a reasoning of `low`..`high` words; linear below `low`, decaying to 0 at `2·high`."""
    words = len(reasoning.split())
    if words < low:
        return words / low
    if words <= high:
        return 1.0
    return max(0.0, 1.0 - (words - high) / high)


def repetition_signal(text: str, n: int = 4) -> float:
    """1 minus the share of word n-grams that repeat an earlier one (1 for texts shorter than n words)."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 1.0
    return len(set(grams)) / len(grams)


# ---------------------------------------------------------------- the reward


def score(
    completion: str, problem_text: str, gold: str, weights: RewardWeights | None = None, *, timeout: float = 2.0,
    policy: str = "strict", form: str = "",
) -> RewardBreakdown:
    """All 8 signals for one completion against the gold answer, their weighted total and the verdict.
    Correctness is judged under `policy` (strict for training: see `equivalence`), on the answer and the final
    statement it was read from (a hedged one earns 0: see `commitment`); never raises."""
    start = time.perf_counter()
    try:
        return _score(completion, problem_text, gold, weights or RewardWeights(), timeout, policy, form, start)
    except Exception as exc:  # noqa: BLE001 - the contract: a breakdown, never an exception
        return error_breakdown(Verdict.ERROR, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])


def _score(completion, problem_text, gold, weights, timeout, policy, form, start) -> RewardBreakdown:
    completion = completion[-MAX_COMPLETION_CHARS:] if isinstance(completion, str) else ""
    problem_text = str(problem_text)[:MAX_COMPLETION_CHARS]
    final = extract_final(completion)
    extracted = final.answer
    verdict = compare(extracted, str(gold), timeout=timeout, policy=policy, question=problem_text, form=form,
                      statement=final.statement)
    reasoning = reasoning_text(completion)
    left = min(timeout - (time.perf_counter() - start), 1.0)
    checked = verdict.verdict != Verdict.TIMEOUT and left > 0.05  # the whole score stays inside its deadline
    signals = {
        "correctness": correctness_signal(verdict, weights),
        "consistency": consistency_signal(extracted, reasoning, timeout=left) if checked else 0.0,
        "reasoning_depth": reasoning_depth_signal(reasoning),
        "numerical_grounding": numerical_grounding_signal(reasoning, problem_text),
        "format": format_signal(completion),
        "parsability": parsability_signal(verdict),
        "length": length_signal(reasoning),
        "repetition": repetition_signal(completion),
    }
    total, shaping = preset_total(signals, verdict.equal, weights)
    return RewardBreakdown(
        **signals, total=total, shaping=shaping,
        verdict=verdict.verdict if extracted is not None else Verdict.UNPARSABLE,
        extracted=extracted, seconds=time.perf_counter() - start, reason=verdict.reason,
    )


def preset_total(signals: dict[str, float], correct: bool, weights: RewardWeights) -> tuple[float, float]:
    """(total reward, shaping in [0, 1]) under the weights' preset. Shaping is what the learner may add as a
    small tie-breaker beside correctness (see `learner.grpo.group_advantages`)."""
    if weights.preset == "binary":
        return float(correct), 0.0
    if weights.preset == "simple":
        shown = signals["reasoning_depth"] > 0
        return (1.0 if correct else 0.2 if shown else 0.1), float(correct or shown)
    others = [name for name in RewardWeights.SIGNALS if name != "correctness"]
    mass = sum(getattr(weights, name) for name in others)
    shaping = sum(getattr(weights, name) * signals[name] for name in others) / mass if mass else 0.0
    return sum(getattr(weights, name) * value for name, value in signals.items()), shaping


def error_breakdown(verdict: Verdict, seconds: float = 0.0, reason: str = "") -> RewardBreakdown:
    """The breakdown for a completion that could not be scored (`timeout` or `error`): every signal 0."""
    return RewardBreakdown(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, verdict, None, seconds, reason=reason)
