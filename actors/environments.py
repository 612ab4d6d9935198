"""Rollouts as environments, in the SkyRL-gym text-environment shape: text in, text out.

An environment is made per episode: `init(problem) -> prompt` gives the first prompt, then every model turn goes
to `step(turn_text) -> EnvStep(observations, reward, done, info)`. Observations are appended to the context
(never trained on); `reward=None` means the final answer is scored by the verifier pool after the episode, in a
batch with every other episode of the step. A new environment is a class registered by name: the rollout worker
and the training loop do not change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from actors.records import EnvSpec


@dataclass
class EnvStep:
    """What an environment answers to one model turn."""

    observations: list[str] = field(default_factory=list)
    reward: float | None = None  # None: scored by the verifier pool when the episode ends
    done: bool = True
    info: dict[str, Any] = field(default_factory=dict)


class Environment(Protocol):
    """One episode's environment. `problem` is any record with a `question` (a `synthesis.Problem`)."""

    def init(self, problem: Any) -> str: ...

    def step(self, turn_text: str) -> EnvStep: ...


ENVIRONMENTS: dict[str, Callable[[EnvSpec], Environment]] = {}


def register(name: str):
    """Class decorator: make the environment available to `make_env` (and `rollout.env` in the config) by name."""
    def add(cls):
        ENVIRONMENTS[name] = cls
        return cls
    return add


def make_env(spec: EnvSpec) -> Environment:
    if spec.cls is not None:
        return spec.cls(spec)
    if spec.name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {spec.name!r}: known {', '.join(sorted(ENVIRONMENTS))}")
    return ENVIRONMENTS[spec.name](spec)


@register("answer")
class AnswerEnv:
    """One turn: the problem in the prompt template; the model's answer ends the episode and the pool scores it
    (strict policy, `Problem.form`, the 8-signal breakdown)."""

    def __init__(self, spec: EnvSpec) -> None:
        self.template = spec.template

    def init(self, problem: Any) -> str:
        return self.template.format(question=problem.question)

    def step(self, turn_text: str) -> EnvStep:
        return EnvStep(done=True)
