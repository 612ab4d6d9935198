"""Records the rollout service returns: sampling settings in, completions out (plain data, no framework objects)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: G = `n` completions per prompt are asked for at `generate` time."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    logprobs: bool = True
    ignore_eos: bool = False
    seed: int | None = None  # the call's seed: seeds the HF engine's generator per dispatched chunk
    seed_per_request: bool = False  # vLLM: also pass `seed` per request (its slow path); else the engine seed


@dataclass
class Completion:
    """One sampled completion: its text and token ids (EOS included when it stopped on one), the sampler's
    per-token logprobs (raw, temperature 1: what the learner's importance ratio needs), why it ended,
    and the adapter version that produced it."""

    problem_id: str
    text: str
    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str
    policy_version: int
    prompt_token_ids: list[int] = field(default_factory=list)
