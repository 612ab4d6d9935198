"""Our verifier as a TRL reward function: a `GRPOTrainer` user swaps Math-Verify for it in one line.

    from verifier_pool.trl_reward import sympy_accuracy, trl_reward
    trainer = GRPOTrainer(model=..., reward_funcs=sympy_accuracy, train_dataset=dataset)          # lenient
    trainer = GRPOTrainer(model=..., reward_funcs=trl_reward("strict", answer_column="solution"), ...)

TRL calls a reward function with the batch's `prompts` and `completions` (strings, or chat messages whose last
`content` is the completion) and every dataset column as a list. The answer is read from the completion by the
verifier's extractor (`\\boxed{}`, `<final_answer>`, "The answer is …") and judged against the answer column by
`compare` — the sandboxed, deadline-bound comparison the training loop uses — under `lenient` (plain
equality) or `strict` (final form, with the prompt as the question); under both, a hedged final statement ("3 or 5",
"probably 5") earns nothing. A right answer earns 1.0, anything else
0.0; a row without an answer earns None, which TRL leaves out of the mean.
"""
from __future__ import annotations

from collections.abc import Callable

from verifier_pool.equivalence import POLICIES, compare
from verifier_pool.extract import extract_final


def _text(item) -> str:
    """A prompt or completion as text: a string, or the last message's content of a chat."""
    if isinstance(item, list):
        return str(item[-1].get("content", "")) if item and isinstance(item[-1], dict) else ""
    return "" if item is None else str(item)


def trl_reward(policy: str = "lenient", *, answer_column: str = "answer", timeout: float = 2.0
               ) -> Callable[..., list[float | None]]:
    """A reward function with TRL's `reward_funcs` signature that scores through our verifier under `policy`,
    reading the gold answer from the dataset column `answer_column`. Its `__name__` (what TRL logs the reward
    under) is `sympy_<policy>`."""
    if policy not in POLICIES:
        raise ValueError(f"unknown answer policy {policy!r}; expected one of {POLICIES}")

    def reward(completions, prompts=None, **columns) -> list[float | None]:
        if answer_column not in columns:
            raise KeyError(f"the dataset has no {answer_column!r} column (columns: {sorted(columns)}); "
                           f"pass answer_column= to trl_reward")
        golds = columns[answer_column]
        questions = prompts if prompts is not None else [""] * len(completions)
        out: list[float | None] = []
        for completion, gold, question in zip(completions, golds, questions):
            if gold is None or str(gold).strip() == "":
                out.append(None)
                continue
            final = extract_final(_text(completion))
            judgement = compare(final.answer, str(gold), timeout=timeout, policy=policy, question=_text(question),
                                statement=final.statement)
            out.append(1.0 if judgement.equal else 0.0)
        return out

    reward.__name__ = reward.__qualname__ = f"sympy_{policy}"
    return reward


sympy_accuracy = trl_reward("lenient")
