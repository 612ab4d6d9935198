"""Records the rollout service returns: sampling settings in, completions out (plain data, no framework objects)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class Turn:
    """One turn of an episode: text the model sampled (`role="model"`, trained on) or an environment's
    observation (`role="env"`: context for the next turn, never loss)."""

    role: str
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None  # model turns: the sampler's per-token log-probs, when asked for
    finish_reason: str = ""
    policy_version: int = 0


@dataclass
class Episode:
    """One rollout of a problem in a named environment: the prompt, then model turns and observations in order.

    The learner trains on `token_ids` under `loss_mask` (model tokens 1, observation tokens 0); `reward` is the
    verifier pool's `RewardBreakdown` of the final answer, set when the episode is scored."""

    problem_id: str
    env: str
    prompt: str
    prompt_token_ids: list[int]
    turns: list[Turn] = field(default_factory=list)
    done: bool = False
    truncated: bool = False  # stopped by the turn or token bound before the environment said done
    info: dict = field(default_factory=dict)  # what the environment reported (e.g. a program's exit)
    reward: Any = None

    @property
    def token_ids(self) -> list[int]:
        return [t for turn in self.turns for t in turn.token_ids]

    @property
    def loss_mask(self) -> list[int]:
        return [int(turn.role == "model") for turn in self.turns for _ in turn.token_ids]

    @property
    def sampler_logprobs(self) -> list[float] | None:
        """Per token of `token_ids` (0.0 on observation tokens); None when the sampler gave none."""
        if any(turn.role == "model" and turn.logprobs is None for turn in self.turns):
            return None
        return [lp for turn in self.turns
                for lp in (turn.logprobs if turn.role == "model" else [0.0] * len(turn.token_ids))]

    @property
    def final_text(self) -> str:
        """The last model turn: where the final answer is read from."""
        return next((turn.text for turn in reversed(self.turns) if turn.role == "model"), "")

    @property
    def transcript(self) -> str:
        return "".join(turn.text for turn in self.turns)

    @property
    def policy_version(self) -> int:
        """The oldest adapter version that sampled a turn of this episode."""
        return min((turn.policy_version for turn in self.turns if turn.role == "model"), default=0)

    @property
    def finish_reason(self) -> str:
        return next((turn.finish_reason for turn in reversed(self.turns) if turn.role == "model"), "")

    @property
    def verdict(self) -> str | None:
        return None if self.reward is None else self.reward.verdict

    @property
    def correct(self) -> float:
        return float(self.verdict == "correct")


@dataclass
class GroupBatch:
    """The G episodes of one problem (`problem`: the record they answer), the unit of a group advantage."""

    problem: Any
    episodes: list[Episode]
    role: str = "solver"  # solver: answers a problem; verifier: judges a solver's answer (solver-verifier)

    @property
    def correct(self) -> list[float]:
        return [e.correct for e in self.episodes]

    @property
    def rewards(self) -> list[Any]:
        return [e.reward for e in self.episodes]


@dataclass(frozen=True)
class EnvSpec:
    """Which environment episodes run in and its bounds: `template` formats the first prompt, `max_turns`
    model turns at most, `max_episode_tokens` tokens of turns at most (0: no bound beyond `max_tokens` a turn)."""

    name: str = "answer"
    template: str = "{question}"
    max_turns: int = 1
    max_episode_tokens: int = 0
    cls: Any = None  # the environment class (found by `name` in the registry when None); it travels by reference
