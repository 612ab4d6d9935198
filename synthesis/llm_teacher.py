"""An LLM teacher (`teacher.model: grok-4`): strategies are prompts applied to a problem's symbolic JSON, improved
by prompt optimisation (OPRO: the model rewrites a prompt from its scored history).

The model's reply is hostile data: its `SYMBOLIC:` line is read by `synthesis.symbolic.form_from_json` (our parser,
never `sympify`), its words must mention every quantity the form needs, and SymPy derives the child's answer in a
worker killed at its deadline. A child is kept only when all of that holds.

`PromptBook` is the optimisation's state, plain data in the run state: each strategy's active prompt with the
rewards its children earned, and at most one candidate per strategy on trial. Every `teacher.prompt_every` steps
the teacher asks the model to rewrite the lowest-scoring active prompt; the candidate then serves every other child
of its strategy, and once both have `teacher.trial_children` scores since the trial began it replaces the active
prompt only if its mean reward is higher, else it is rejected.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from dataclasses import dataclass, field

from synthesis.grok import GrokResolver, MAX_COT_CHARS
from synthesis.problem import Problem, question_key
from synthesis.operators import structure_key
from synthesis.symbolic import IllPosed, derive_within, form_from_json, missing_quantities, realise

DEFAULT_PROMPTS = {
    "change_constant": "Change one given number so the problem stays well posed with a whole-number answer.",
    "add_step": "Add one more quantity and one more operation, so that solving needs exactly one more step.",
    "swap_operation": "Swap one operation for another (for example + for -), keeping the answer a whole number.",
    "other_unknown": "Ask for a different unknown: make one given number the unknown and give the old answer.",
    "compose": "Join this problem with a second small problem so the final answer combines both results.",
    "add_distractor": "Add one sentence with a number that is irrelevant to the answer.",
    "smaller_constants": "Make the given numbers smaller (nearer zero), keeping the same steps and a well-posed answer.",
    "drop_step": "Remove one operation and the number it uses, so that solving needs exactly one step fewer.",
    "restate": "Say the same problem in other words: keep every quantity, every value and what is asked.",
}
TEACHER_SYSTEM = (
    "You rewrite math problems in symbolic space. You get a problem's symbolic form as JSON and a strategy. Reply "
    "with one line 'SYMBOLIC: {json}' holding the new form with the same keys: style (expression|equation|roots|"
    "story), target (list of expressions), quantities (list of {name, value, low, high}: one-letter names, integer "
    "values and ranges), unknowns, constraints (list of {lhs, op, rhs}), text (the new question, with {name} where "
    "each quantity's value goes; for style expression, {expr} where the expression goes).")
OPRO_SYSTEM = ("You improve instructions for a teacher who rewrites math problems. Each instruction below was scored by "
               "how close the student's pass rate on the rewritten problems came to the target (1 is best). Write one "
               "new instruction that will score higher. Reply with one line 'PROMPT: <instruction>'.")
MAX_PROMPT_CHARS = 600


@dataclass
class StrategyPrompt:
    """One version of a strategy's instruction, with the rewards of the children made with it."""

    strategy: str
    text: str
    version: int = 0
    scores: list[float] = field(default_factory=list)

    def mean(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None


@dataclass
class PromptBook:
    active: dict[str, StrategyPrompt]
    trials: dict[str, StrategyPrompt] = field(default_factory=dict)
    retired: list[StrategyPrompt] = field(default_factory=list)  # replaced or rejected, with their scores
    baseline: dict[str, int] = field(default_factory=dict)  # active scores when each trial began

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "PromptBook":
        def prompts(d: dict) -> dict[str, StrategyPrompt]:
            return {k: StrategyPrompt(**v) for k, v in d.items()}

        return cls(prompts(data["active"]), prompts(data["trials"]), [StrategyPrompt(**p) for p in data["retired"]],
                   dict(data["baseline"]))

    def versions(self) -> dict[str, int]:
        return {s: p.version for s, p in self.active.items()}


def start_book(strategies: list[str]) -> PromptBook:
    return PromptBook({s: StrategyPrompt(s, " then ".join(DEFAULT_PROMPTS[op] for op in s.split("+")))
                       for s in strategies})


def prompt_for(book: PromptBook, strategy: str, child_index: int) -> StrategyPrompt:
    """The prompt a child of `strategy` is made with: during a trial every other child gets the candidate."""
    trial = book.trials.get(strategy)
    return trial if trial is not None and child_index % 2 else book.active[strategy]


def record(book: PromptBook, strategy: str, version: int, reward: float) -> PromptBook:
    """The book with `reward` added to the prompt version that made the child."""
    book = PromptBook.from_dict(book.to_dict())
    for prompt in (book.active.get(strategy), book.trials.get(strategy)):
        if prompt is not None and prompt.version == version:
            prompt.scores.append(reward)
    return book


def settle_trials(book: PromptBook, trial_children: int) -> PromptBook:
    """Each trial with `trial_children` scores on both sides (the active side counted from the trial's start):
    the candidate replaces the active prompt when its mean is higher, else it is rejected."""
    book = PromptBook.from_dict(book.to_dict())
    for strategy, candidate in list(book.trials.items()):
        active = book.active[strategy]
        since = active.scores[book.baseline.get(strategy, 0):]
        if len(candidate.scores) < trial_children or len(since) < trial_children:
            continue
        better = sum(candidate.scores) / len(candidate.scores) > sum(since) / len(since)
        book.retired.append(active if better else candidate)
        if better:
            book.active[strategy] = candidate
        del book.trials[strategy]
        book.baseline.pop(strategy, None)
    return book


def worst_prompt(book: PromptBook, min_scores: int) -> StrategyPrompt | None:
    """The active prompt with the lowest mean reward among those with `min_scores` and no trial running."""
    ready = [p for s, p in book.active.items() if s not in book.trials and len(p.scores) >= min_scores]
    return min(ready, key=lambda p: (p.mean(), p.strategy)) if ready else None


def start_trial(book: PromptBook, strategy: str, text: str) -> PromptBook:
    book = PromptBook.from_dict(book.to_dict())
    versions = [book.active[strategy].version] + [p.version for p in book.retired if p.strategy == strategy]
    book.trials[strategy] = StrategyPrompt(strategy, text, max(versions) + 1)
    book.baseline[strategy] = len(book.active[strategy].scores)
    return book


def opro_request(book: PromptBook, strategy: str) -> str:
    """The meta-prompt: every version of the strategy's instruction so far with its mean reward, best last."""
    history = [p for p in book.retired if p.strategy == strategy] + [book.active[strategy]]
    scored = sorted((p for p in history if p.scores), key=lambda p: p.mean())
    lines = [f"Instruction: {p.text}\nScore: {p.mean():.3f} over {len(p.scores)} problems" for p in scored]
    return "\n\n".join(lines)


def child_from_reply(parent: Problem, reply: str, prompt: StrategyPrompt, timeout: float = 5.0) -> Problem:
    """The child a teacher reply describes; IllPosed (with why) when it is not a well-posed, fully worded form."""
    match = re.search(r"^SYMBOLIC:[ \t]*(\{.*\})[ \t]*$", (reply or "")[:MAX_COT_CHARS], re.M)
    if match is None:
        raise IllPosed("no SYMBOLIC line")
    form = form_from_json(match.group(1))
    missing = missing_quantities(form)
    if missing:
        raise IllPosed(f"the words do not mention {', '.join(missing)}")
    answer = derive_within(form, timeout)
    form = dataclasses.replace(form, structure=f"{parent.symbolic.structure if parent.symbolic else 'llm'}>"
                                                f"{prompt.strategy}@v{prompt.version}")
    question = realise(form)
    if question == parent.question:
        raise IllPosed("the same question as the parent")
    return Problem(id=f"{parent.topic}-llm-{question_key(question)}", question=question, answer=answer,
                   difficulty=parent.difficulty, topic=parent.topic, source="teacher",
                   meta={"template": form.structure, "d": parent.meta.get("d", 0.0), "parent": parent.id,
                         "structure": structure_key(form), "prompt_version": prompt.version},
                   symbolic=form)


class GrokTeacher(GrokResolver):
    """The LLM side: rewrites (one call per child) and prompt improvements (one call per trial), with the resolver's
    retries and backoff. Replies are cached by request, so a resumed run replays the replies it already had."""

    def __init__(self, *args, cache: dict[str, str] | None = None, cache_path=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache if cache is not None else {}
        self.cache_path = cache_path

    async def _ask(self, system_text: str, user_text: str, semaphore: asyncio.Semaphore) -> str:
        from xai_sdk.chat import system, user

        key = json.dumps([self.config.model, system_text, user_text])
        if key in self.cache:
            return self.cache[key]
        async with semaphore:
            chat = self._client.chat.create(model=self.config.model, messages=[system(system_text), user(user_text)])
            text = str((await self._sample(chat, [0])).content or "")[:MAX_COT_CHARS]
        self.cache[key] = text
        if self.cache_path is not None:
            with open(self.cache_path, "a", encoding="utf-8") as log:
                log.write(json.dumps([key, text]) + "\n")
        return text

    async def _rewrite(self, parent: Problem, prompt: StrategyPrompt, semaphore) -> tuple[Problem | None, str]:
        request = f"Strategy: {prompt.text}\nProblem: {json.dumps(parent.symbolic.to_dict())}"
        try:
            reply = await self._ask(TEACHER_SYSTEM, request, semaphore)
            return await asyncio.to_thread(child_from_reply, parent, reply, prompt), "kept"
        except IllPosed as exc:
            return None, str(exc)[:80]
        except Exception as exc:  # noqa: BLE001 - a failed request is an outcome, never a crashed step
            return None, f"{type(exc).__name__}: {str(exc)[:80]}"

    async def _improve(self, book: PromptBook, strategy: str, semaphore) -> str | None:
        try:
            reply = await self._ask(OPRO_SYSTEM, opro_request(book, strategy), semaphore)
        except Exception:  # noqa: BLE001 - no new prompt this time
            return None
        match = re.search(r"PROMPT:\s*(.+)", reply)
        text = match.group(1).strip() if match else ""
        return text if 0 < len(text) <= MAX_PROMPT_CHARS else None

    def run(self, jobs: list[tuple[Problem, StrategyPrompt]], improve: tuple[PromptBook, str] | None = None
            ) -> tuple[list[tuple[Problem | None, str]], str | None]:
        """Rewrite every (parent, prompt) job and, when asked, propose a new prompt; in one event loop."""
        from xai_sdk import AsyncClient

        async def both():
            semaphore = asyncio.Semaphore(self.config.concurrency)
            self._client = AsyncClient(api_key=self._key, api_host=self.config.api_host,
                                       use_insecure_channel=self.config.insecure)
            try:
                children = await asyncio.gather(*(self._rewrite(p, q, semaphore) for p, q in jobs))
                proposal = await self._improve(*improve, semaphore) if improve else None
                return list(children), proposal
            finally:
                await self._client.close()

        return asyncio.run(both())
