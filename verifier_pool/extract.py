"""Pull the final answer out of a completion, as the model wrote it (no normalisation here)."""
from __future__ import annotations

import re

_FINAL_ANSWER = re.compile(r"<final_answer>(.*?)</final_answer>", re.S | re.I)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_GSM8K = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*:|answer\s*:)\s*:?\s*(.+?)(?:\.\s|\n|$)", re.I
)
_NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-−]?\.\d+")
_MAX_SCAN = 200_000


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` with nested braces balanced; None if absent or empty."""
    starts = [m.end() for m in _BOX_START.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            if text[i] == "{" and text[i - 1] != "\\":
                depth += 1
            elif text[i] == "}" and text[i - 1] != "\\":
                depth -= 1
            i += 1
        if depth == 0:
            content = text[start : i - 1].strip()
            return content or None
    return None


def _strip_sentence_end(answer: str) -> str:
    answer = answer.strip().rstrip(".").strip()
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()
    return answer.rstrip(".").strip()


def extract_answer(completion: str) -> str | None:
    """The final answer by priority: last <final_answer>, last \\boxed/\\fbox, `#### x`,
    "the (final) answer is x" / "Answer: x", else the last number; None when nothing is found."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    text = completion[-_MAX_SCAN:]
    tagged = _FINAL_ANSWER.findall(text)
    if tagged:
        inner = tagged[-1].strip()
        if _BOX_START.search(inner):
            return last_boxed(inner)
        return _strip_sentence_end(inner) or None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if _BOX_START.search(text):
        return None
    gsm = _GSM8K.findall(text)
    if gsm:
        return _strip_sentence_end(gsm[-1]) or None
    stated = _ANSWER_IS.findall(text)
    if stated:
        return _strip_sentence_end(stated[-1]) or None
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].rstrip(",") or None
    return None
