"""Supervised warm-start data from files (`sft.data: FILE.jsonl`): chain-of-thought rows and agent turns.

Rows are told apart by their fields:

- ours / `rlvr synth --cot grok`: `question`, `solution`, `answer` (and optionally `topic`, `meta`);
- MetaMathQA: `query`, `response` ending in "The answer is: X";
- GSM8K: `question`, `answer` ending in "#### X" (calculator annotations `<<48/2=24>>` removed);
- agent turns: `prompt`, `target` — one turn of a solver–verifier or code-feedback conversation
  (`synthesis.agent_data`), used as given: there is no final answer in a program or a critique to verify.

A chain-of-thought row keeps the solution's own text as `solution` (the driver checks its final answer against
`answer` with the verifier before training, and drops the rows that do not match) and becomes the SFT target
`<response><reasoning>…</reasoning><final_answer>answer</final_answer></response>`, the format the rollouts are
scored in. Text from a file is hostile: rows longer than `MAX_ROW_CHARS` are skipped, never parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from synthesis.problem import Problem, fact_key

MAX_ROW_CHARS = 8_000
_CALCULATOR = re.compile(r"<<[^<>\n]{0,200}>>")
_ANSWER_LINE = re.compile(r"\n?[^\n]{0,40}the answer is:?[ \t]*([^\n]{1,300})\s*$", re.I)
_GSM8K_TAIL = re.compile(r"\n?####[ \t]*([^\n]{1,300})\s*$")


@dataclass(frozen=True)
class SFTRow:
    """One SFT example. `prompt` is the question (put through the run's prompt template) for a chain-of-thought
    row, or the whole user message for an agent turn (`turn=True`); `answer` is what a CoT row's solution must
    end in ("" for a turn); `solution` is the row's own text, which the verifier checks."""

    prompt: str
    target: str
    answer: str = ""
    solution: str = ""
    turn: bool = False
    kind: str = "cot"  # cot | metamath | gsm8k | agent turn kinds (code, code_answer, check, revise)
    meta: dict = field(default_factory=dict)
    topic: str = "unknown"

    def fact_key(self) -> str:
        """The held-out key of the fact the row teaches (`synthesis.problem.fact_key`)."""
        return fact_key(Problem(id="", question=self.prompt, answer=self.answer, topic=self.topic, meta=self.meta))


def cot_target(reasoning: str, answer: str) -> str:
    """The SFT target in the rollouts' answer format."""
    return (f"<response><reasoning>{reasoning.strip()}</reasoning>"
            f"<final_answer>{answer.strip()}</final_answer></response>")


def _reasoning(solution: str) -> str:
    """The working of a solution: its XML reasoning when it has one, else the text before its final answer line."""
    match = re.search(r"<reasoning>(.*?)</reasoning>", solution, re.S)
    if match:
        return match.group(1)
    return _GSM8K_TAIL.sub("", _ANSWER_LINE.sub("", solution))


def sft_row(record: dict) -> SFTRow | None:
    """A file row as an SFTRow, or None when it has none of the known shapes or is too long to read."""
    if not isinstance(record, dict) or sum(len(str(v)) for v in record.values()) > MAX_ROW_CHARS:
        return None
    text = {k: str(v) for k, v in record.items() if isinstance(v, (str, int, float))}
    if "prompt" in text and "target" in text:
        return SFTRow(text["prompt"], text["target"], turn=True, kind=text.get("kind", "turn"))
    if "query" in text and "response" in text:
        match = _ANSWER_LINE.search(text["response"])
        if not match:
            return None
        answer = match.group(1).strip().rstrip(".")
        return SFTRow(text["query"], cot_target(_reasoning(text["response"]), answer), answer, text["response"],
                      kind="metamath")
    if "question" in text and "solution" in text and "answer" in text:
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        return SFTRow(text["question"], cot_target(_reasoning(text["solution"]), text["answer"]), text["answer"],
                      text["solution"], kind="cot", meta=meta, topic=text.get("topic", "unknown"))
    if "question" in text and "answer" in text:
        solution = _CALCULATOR.sub("", text["answer"])
        match = _GSM8K_TAIL.search(solution)
        if not match:
            return None
        answer = match.group(1).replace(",", "").strip()
        return SFTRow(text["question"], cot_target(_reasoning(solution), answer), answer, solution, kind="gsm8k")
    return None


def load_sft_rows(source: str) -> tuple[list[SFTRow], int]:
    """The rows of a JSONL/JSON/parquet file (see `synthesis.datasets.read_records`) and how many were skipped
    as unreadable (not JSON, no known shape, too long)."""
    import json
    import pathlib

    from synthesis.datasets import read_records

    if source.endswith(".jsonl") and pathlib.Path(source).exists():
        records = []
        for line in pathlib.Path(source).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line) if len(line) <= 4 * MAX_ROW_CHARS else None)
                except ValueError:
                    records.append(None)
    else:
        records = read_records(source)
    rows = [sft_row(r) for r in records]
    kept = [r for r in rows if r is not None]
    return kept, len(rows) - len(kept)
