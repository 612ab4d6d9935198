"""Environments that need more than the rollout service: `code-feedback` runs the model's programs in the contained
runner (`verifier_pool.code_runner`); `solver-verifier`'s solver answers once and its verifier role is sampled by
the loop on the scored answers (`cluster.verifier_role`). Registered by name beside `answer`; `rollout.env` picks one and the episode
spec carries its class to the rollout workers."""
from __future__ import annotations

from typing import Any

from actors.environments import AnswerEnv, EnvStep, register
from actors.records import EnvSpec
from cluster.agents import extract_program
from synthesis.agent_data import CODE_PROMPT, output_feedback
from verifier_pool.code_runner import run_python

PROGRAM_SECONDS = 10.0  # wall clock per program
WRITE_AGAIN = "\nWrite a corrected Python program that prints the answer.\n"
ANSWER_NOW = "\nGive the final answer.\n"


@register("code-feedback")
class CodeFeedbackEnv:
    """The model writes a program; it runs contained; its output or error comes back. A program that ran is
    followed by the model's final answer (the turn the pool scores); a failed or missing one may be written again
    while turns remain, keeping one turn for the answer. `info["programs"]` lists what each program did (ok,
    error, timeout, killed, no_code)."""

    min_turns = 2  # a program, then the answer

    def __init__(self, spec: EnvSpec) -> None:
        self.max_turns, self.turns, self.answering = spec.max_turns, 0, False
        self.programs: list[str] = []

    def init(self, problem: Any) -> str:
        return CODE_PROMPT.format(question=problem.question)

    def step(self, turn_text: str) -> EnvStep:
        self.turns += 1
        if self.answering:
            return EnvStep(done=True, info={"programs": self.programs})
        program = extract_program(turn_text)
        result = run_python(program, timeout=PROGRAM_SECONDS) if program else None
        status = result.status if result else "no_code"
        self.programs.append(status)
        last_program = status == "ok" or self.turns + 2 > self.max_turns  # a retry must leave a turn to answer
        self.answering = last_program
        observation = program_observation(status, result.stdout if result else "", result.stderr if result else "",
                                          answer_next=last_program)
        return EnvStep(observations=[observation], done=False, info={"programs": self.programs})


def program_observation(status: str, stdout: str, stderr: str, *, answer_next: bool) -> str:
    """What the model reads after a program turn: what the program did, then what to write next (the SFT warm start
    builds its transcripts with the same text)."""
    return "\n" + output_feedback(status, stdout, stderr) + (ANSWER_NOW if answer_next else WRITE_AGAIN)


@register("solver-verifier")
class SolverEnv(AnswerEnv):
    """The solver role of solver-verifier: one answer turn, scored by the pool; the loop then samples the verifier
    role on the scored answers (`cluster.verifier_role`)."""
