"""The Grok-4 resolver: an LLM proposes problems and solves them through SymPy tools; we keep the answer
our own SymPy execution of its tool calls produced, never the model's text. Tool arguments are untrusted: they are parsed by the verifier's whitelisting parser and
run in its sandbox (`verifier_pool.tools`), never evaluated in this process.

One conversation per (topic, difficulty): the model is asked for a problem, calls `solve`, `simplify`,
`integrate`, `diff` or `evaluate` (executed here, results sent back), and ends with the question. The
answer is the result of its last successful tool call. Hard problems (difficulty 3) are solved a second
time in an independent conversation given only the question; they are kept only when the two SymPy
answers agree (`verifier_pool.answers_match`). Calls run concurrently under a semaphore, with retries and
exponential backoff on rate limits (honouring `retry-after`), timeouts and unavailability.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
from dataclasses import dataclass, field

from synthesis.problem import Problem, question_key
from synthesis.symbolic import IllPosed, Symbolic, derive_within, form_from_json
from verifier_pool import answers_match, extract_answer, sandbox
from verifier_pool.tools import TOOL_SPECS, ToolError

DEFAULT_MODEL = "grok-4"
RETRYABLE = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}


def run_tool(name: str, arguments: str, timeout: float = 5.0) -> str:
    """Execute one tool call in the verifier's sandbox (parsed, never evaluated; killed at `timeout`) and
    return the rendered SymPy result. Raises ToolError with a message for the model."""
    try:
        return sandbox.run("tool", (str(name), arguments if isinstance(arguments, str) else ""), timeout=timeout)
    except sandbox.SandboxTimeout:
        raise ToolError(f"timed out after {timeout:g}s") from None
    except (sandbox.SandboxDied, RuntimeError) as exc:
        raise ToolError(str(exc).removeprefix("ToolError: ")[:200]) from None


@dataclass
class ResolverConfig:
    model: str = DEFAULT_MODEL
    api_host: str = "api.x.ai"
    insecure: bool = False  # a plaintext channel (a local test server)
    concurrency: int = 8
    max_turns: int = 6
    max_retries: int = 4
    call_timeout: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    tool_timeout: float = 5.0


@dataclass
class Outcome:
    """What happened to one request: the problem kept, or why none was."""

    topic: str
    difficulty: int
    problem: Problem | None = None
    reason: str = ""
    answers: list[str] = field(default_factory=list)
    retries: int = 0
    symbolic: str = ""  # "kept", why a given form was not kept, or "" when the model gave none


class GrokResolver:
    """Async client around `xai_sdk.AsyncClient` with SymPy tools; `XAI_API_KEY` is read from the environment."""

    def __init__(self, config: ResolverConfig | None = None, api_key: str | None = None) -> None:
        try:
            import xai_sdk  # noqa: F401
        except ImportError as exc:
            raise ImportError("the Grok resolver needs xai-sdk: pip install 'sympy-rlvr[synthesis]'") from exc
        # The SDK's telemetry copies prompts into spans and json.loads every tool call's arguments, so a model's
        # malformed arguments would fail `sample()` itself; we keep problem text out of spans, which avoids both.
        os.environ.setdefault("XAI_SDK_DISABLE_SENSITIVE_TELEMETRY_ATTRIBUTES", "1")
        self.config = config or ResolverConfig()
        self._key = api_key or os.environ.get("XAI_API_KEY")
        if not self._key:
            raise RuntimeError("XAI_API_KEY is not set")
        self._client = None
        self._tools = None

    def __repr__(self) -> str:
        return f"GrokResolver(model={self.config.model!r}, host={self.config.api_host!r})"

    def _tool_protos(self):
        from xai_sdk.chat import tool

        if self._tools is None:
            self._tools = [tool(name, description, {"type": "object", "properties": {
                k: {"type": "string", "description": d} for k, d in params.items()}, "required": [next(iter(params))]})
                for name, (description, params) in TOOL_SPECS.items()]
        return self._tools

    async def _sample(self, chat, retries: list[int]):
        """One model call with retries: backoff doubles (with jitter) and honours a server `retry-after`."""
        import grpc

        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            try:
                return await asyncio.wait_for(chat.sample(), cfg.call_timeout)
            except asyncio.TimeoutError:
                code, wait = "DEADLINE_EXCEEDED", None
            except grpc.aio.AioRpcError as err:
                code, wait = err.code().name, _retry_after(err)
                if code not in RETRYABLE:
                    raise
            if attempt == cfg.max_retries:
                raise TimeoutError(f"gave up after {attempt + 1} attempts ({code})")
            retries[0] += 1
            delay = wait if wait is not None else min(cfg.backoff_max, cfg.backoff_base * 2**attempt)
            await asyncio.sleep(delay * (1 + 0.1 * random.random()))
        raise AssertionError("unreachable")

    async def _conversation(self, prompt: str, retries: list[int]) -> tuple[str, object | None]:
        """Run one tool-using conversation; (the model's final text, the last SymPy tool result or None)."""
        from xai_sdk.chat import system, tool_result, user

        chat = self._client.chat.create(model=self.config.model, tools=self._tool_protos(), messages=[
            system("You write and solve math problems. Compute every answer with the tools; the last tool result "
                   "is taken as the answer. " + SYMBOLIC_INSTRUCTION +
                   "End with a line 'QUESTION: <the problem statement>'."),
            user(prompt)])
        last_value = None
        for _ in range(self.config.max_turns):
            response = await self._sample(chat, retries)
            calls = list(response.tool_calls)
            if not calls:
                return response.content, last_value
            chat.append(response)
            for call in calls:
                try:
                    value = await asyncio.to_thread(run_tool, call.function.name, call.function.arguments,
                                                    self.config.tool_timeout)
                    last_value = value
                    chat.append(tool_result(value, call.id))
                except ToolError as exc:
                    chat.append(tool_result(f"error: {exc}", call.id))
        return "", last_value

    async def resolve(self, topic: str, difficulty: int, semaphore: asyncio.Semaphore) -> Outcome:
        """Propose and solve one problem (twice for difficulty 3); the Outcome says what was kept and why."""
        outcome = Outcome(topic, difficulty)
        retries = [0]
        async with semaphore:
            try:
                text, value = await self._conversation(
                    f"Write one {['', 'easy', 'medium', 'hard'][difficulty]} {topic} problem with a single exact "
                    f"answer, and solve it with the tools.", retries)
                question = _question(text)
                if value is None or not question:
                    outcome.reason = "no tool result" if value is None else "no question"
                    return outcome
                outcome.answers.append(value)
                if difficulty == 3:
                    _, second = await self._conversation(
                        f"Solve this problem with the tools. {question}", retries)
                    if second is None:
                        outcome.reason = "second solve: no tool result"
                        return outcome
                    outcome.answers.append(second)
                    if not answers_match(outcome.answers[1], outcome.answers[0]):
                        outcome.reason = "the two solves disagree"
                        return outcome
            except Exception as exc:  # noqa: BLE001 - a failed request is an outcome, never a crashed batch
                outcome.reason = f"{type(exc).__name__}: {str(exc)[:120]}"
                return outcome
            finally:
                outcome.retries = retries[0]
        form, outcome.symbolic = await asyncio.to_thread(checked_form, text, outcome.answers[0])
        outcome.problem = Problem(id=f"grok-{topic}-{difficulty}-{question_key(question)}", question=question,
                                  answer=outcome.answers[0], difficulty=difficulty, topic=topic, source="grok",
                                  meta={"model": self.config.model, "solves": len(outcome.answers)}, symbolic=form)
        return outcome

    async def resolve_many(self, requests: list[tuple[str, int]]) -> list[Outcome]:
        """Every (topic, difficulty) request, `concurrency` at a time; duplicates questions are dropped."""
        from xai_sdk import AsyncClient

        semaphore = asyncio.Semaphore(self.config.concurrency)
        self._client = AsyncClient(api_key=self._key, api_host=self.config.api_host,
                                   use_insecure_channel=self.config.insecure)
        try:
            outcomes = await asyncio.gather(*(self.resolve(t, d, semaphore) for t, d in requests))
        finally:
            await self._client.close()
        seen: set[str] = set()
        for outcome in outcomes:
            if outcome.problem is not None:
                key = question_key(outcome.problem.question)
                if key in seen:
                    outcome.problem, outcome.reason = None, "duplicate question"
                seen.add(key)
        return list(outcomes)


SYMBOLIC_INSTRUCTION = (
    "If you can, give the problem's symbolic form on one line before the question: 'SYMBOLIC: {json}' with keys "
    "style (expression|equation|roots|story), target (list of expressions), quantities (list of {name, value, low, "
    "high}: one-letter names, integer values and ranges), unknowns (x, y, z), constraints (list of {lhs, op, rhs}), "
    "text (the question with {name} where each quantity's value goes). ")
COT_SYSTEM = ("You solve math problems step by step: one step per line, each computing one thing, then a last "
              "line 'The answer is: <answer>' with the exact answer.")
MAX_COT_CHARS = 6_000


@dataclass
class CotOutcome:
    """A chain-of-thought solution asked of the model for a problem SymPy answered: kept only when the
    solution's own final answer equals SymPy's (`row`, an `sft.data` row), else why not (the last attempt's
    reason). `attempts` counts the calls made, the backup endpoint's included."""

    problem: Problem
    row: dict | None = None
    reason: str = ""
    stated: str | None = None
    retries: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class BackupEndpoint:
    """A second, OpenAI-compatible chat endpoint (`POST {url}/chat/completions`) asked when every Grok attempt at a
    problem failed; its key comes from the environment variable `key_env`."""

    url: str
    model: str
    key_env: str = "BACKUP_API_KEY"
    timeout: float = 120.0

    def complete(self, question: str) -> str:
        import json as _json
        import urllib.request

        body = _json.dumps({"model": self.model, "messages": [{"role": "system", "content": COT_SYSTEM},
                                                              {"role": "user", "content": question}]}).encode()
        request = urllib.request.Request(f"{self.url.rstrip('/')}/chat/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {os.environ.get(self.key_env, '')}"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            reply = _json.loads(response.read(MAX_COT_CHARS * 4))
        return str(reply["choices"][0]["message"]["content"] or "")


class GrokCotWriter(GrokResolver):
    """Worked solutions for problems SymPy answered (`rlvr synth --cot grok`): tool-free calls, up to `attempts`
    per problem while the stated answer disagrees with SymPy's (or is missing), then one call to the `backup`
    endpoint when there is one. The final answer is extracted from the text (the verifier's extractor, on at most
    `MAX_COT_CHARS`) and compared with SymPy's under a deadline (`answers_match`); the model's text is the SFT
    target, never the source of the answer."""

    def __init__(self, *args, attempts: int = 1, backup: BackupEndpoint | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attempts, self.backup = max(1, attempts), backup

    async def _grok_solution(self, question: str, retries: list[int]) -> str:
        from xai_sdk.chat import system, user

        chat = self._client.chat.create(model=self.config.model, messages=[system(COT_SYSTEM), user(question)])
        return str((await self._sample(chat, retries)).content or "")

    async def write(self, problem: Problem, semaphore: asyncio.Semaphore) -> CotOutcome:
        outcome, retries = CotOutcome(problem), [0]
        calls = [(self.config.model, lambda: self._grok_solution(problem.question, retries))] * self.attempts
        if self.backup is not None:
            calls.append((self.backup.model, lambda: asyncio.to_thread(self.backup.complete, problem.question)))
        for model, call in calls:
            outcome.attempts += 1
            async with semaphore:
                try:
                    text = await call()
                except Exception as exc:  # noqa: BLE001 - a failed request is an outcome, never a crashed batch
                    outcome.reason = f"{type(exc).__name__}: {str(exc)[:120]}"
                    continue
                finally:
                    outcome.retries = retries[0]
            if await self._judge(outcome, text, model):
                break
        return outcome

    async def _judge(self, outcome: CotOutcome, text: str, model: str) -> bool:
        """Whether `text` states SymPy's answer; sets the outcome's row, or its reason."""
        problem = outcome.problem
        if len(text) > MAX_COT_CHARS:
            outcome.reason = f"solution longer than {MAX_COT_CHARS} characters"
            return False
        outcome.stated = extract_answer(text)
        if outcome.stated is None:
            outcome.reason = "no final answer"
        elif not await asyncio.to_thread(answers_match, outcome.stated, problem.answer):
            outcome.reason = "final answer differs from SymPy's"
        else:
            outcome.reason = ""
            outcome.row = {"question": problem.question, "solution": text.strip(), "answer": problem.answer,
                           "topic": problem.topic, "difficulty": problem.difficulty, "meta": problem.meta,
                           "source": "grok-cot" if model == self.config.model else "backup-cot", "model": model}
        return outcome.row is not None

    async def write_many(self, problems: list[Problem]) -> list[CotOutcome]:
        from xai_sdk import AsyncClient

        semaphore = asyncio.Semaphore(self.config.concurrency)
        self._client = AsyncClient(api_key=self._key, api_host=self.config.api_host,
                                   use_insecure_channel=self.config.insecure)
        try:
            return list(await asyncio.gather(*(self.write(p, semaphore) for p in problems)))
        finally:
            await self._client.close()


def _question(text: str) -> str:
    match = re.search(r"QUESTION:\s*(.+?)(?:\n\s*SYMBOLIC:|$)", (text or "")[:MAX_COT_CHARS], re.S)
    return match.group(1).strip() if match else ""


def checked_form(text: str, answer: str) -> tuple[Symbolic | None, str]:
    """The symbolic form the model gave on its `SYMBOLIC:` line, kept only when SymPy derives from it (under a
    deadline) the answer its tool calls produced; else (None, why)."""
    match = re.search(r"^SYMBOLIC:[ \t]*(\{.*\})[ \t]*$", (text or "")[:MAX_COT_CHARS], re.M)
    if match is None:
        return None, ""
    try:
        form = form_from_json(match.group(1))
        derived = derive_within(form)
    except IllPosed as exc:
        return None, f"form rejected: {str(exc)[:80]}"
    if not answers_match(derived, answer):
        return None, "form's answer differs from the tools'"
    return dataclasses.replace(form, structure=form.structure or "grok"), "kept"


def _retry_after(err) -> float | None:
    for key, value in (err.trailing_metadata() or ()):
        if key.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None
