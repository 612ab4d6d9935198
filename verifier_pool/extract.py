"""Pull the final answer out of a completion, as the model wrote it (no normalisation here).

Completions are hostile: only the last `MAX_COMPLETION_CHARS` are read, and every scan here is linear
(brace matching and math delimiters in one pass, regexes without nested quantifiers, bounded captures).
"""
from __future__ import annotations

import re

from verifier_pool.normalize import matching_brackets
from verifier_pool.parse import CONSTANTS, FUNCTIONS, NUMBER

MAX_COMPLETION_CHARS = 20_000
MAX_STATEMENT_CHARS = 300

_FINAL_ANSWER = re.compile(r"<final_answer>(.*?)</final_answer>", re.S | re.I)
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s?\{")
_GSM8K = re.compile(r"####[ \t]*([^\n]{1,300})")
_ANSWER_IS = re.compile(
    rf"(?:the[ \t]+(?:final[ \t]+)?answer[ \t]+is|final[ \t]+answer[ \t]*:|answer[ \t]*:)[ \t]*:?[ \t]*"
    rf"(.{{1,{MAX_STATEMENT_CHARS}}}?)(?:\.\s|\.?$|\n|\.?\s*I hope)", re.I
)
_IS = re.compile(r"\s(?:is|are|equals|=)\s", re.I)
_MATH_DELIMITER = re.compile(r"\\?\$\$|\\?\$|\\\(|\\\)|\\\[|\\\]")
_CLOSERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_LAST_NUMBER = re.compile(rf"(?<![\w.])[-−]?(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|{NUMBER}(?:/{NUMBER})?)(?!\d|\.\d)")
_BOX_JOINER = re.compile(r"(?:[\s$,]|\\[()\[\]])*(?:and|,)?(?:[\s$,]|\\[()\[\]])*")
_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = frozenset(FUNCTIONS) | frozenset(CONSTANTS)  # "log(x) + 1" is a formula, not a sentence of words


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed `\\boxed{...}` / `\\fbox{...}`, in order."""
    pairs = None
    out = []
    for m in _BOX_START.finditer(text):
        if pairs is None:
            pairs = matching_brackets(text)
        close = pairs.get(m.end() - 1)
        if close is not None and (not out or m.start() >= out[-1][1]):
            out.append((m.start(), close + 1, text[m.end() : close].strip()))
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}`; adjacent boxes (`\\boxed{1}\\boxed{2}`) are joined
    as a list. None if absent or empty."""
    spans = boxed_spans(text)
    if not spans:
        return None
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if _BOX_JOINER.fullmatch(text[span[1] : group[0][0]]):
            group.insert(0, span)
        else:
            break
    content = ", ".join(s[2] for s in group if s[2])
    return content or None


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of `$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]` spans; inline `$`/`\\(` do not cross
    lines. One pass over the delimiters."""
    out, opener, start = [], None, 0
    for m in _MATH_DELIMITER.finditer(text):
        token = m.group()
        if token.startswith("\\$"):
            continue
        if opener is None:
            if token in _CLOSERS:
                opener, start = token, m.end()
            continue
        if token == _CLOSERS[opener]:
            content = text[start : m.start()]
            if opener in ("$$", "\\[") or "\n" not in content:
                out.append((start - len(opener), m.end(), content.strip()))
            opener = None
        elif opener in ("$", "\\(") and "\n" in text[start : m.start()]:
            opener, start = (token, m.end()) if token in _CLOSERS else (None, 0)
    return out


def _strip_sentence_end(answer: str) -> str:
    answer = answer.strip().strip('"').strip()
    while answer.endswith((".", ",", ";")):
        answer = answer[:-1].rstrip()
    return answer.replace("\\$", "\0").replace("$", "").replace("\0", "\\$").strip().strip('"').strip()


def _statement_answer(statement: str) -> str | None:
    """The answer inside "Final Answer: The largest $n$ is 34." style statements: after the last ` is `
    outside math; else, in a sentence of words ("Sphere started 3 hours ago"), its first number; else the
    statement itself."""
    cut = 0
    masked = _mask_math(statement)
    for m in _IS.finditer(masked):
        cut = m.end()
    tail = _strip_sentence_end(statement[cut:])
    if cut:
        return tail or None
    numbers = _LAST_NUMBER.findall(_mask_math(statement))
    if numbers and any(w not in _MATH_WORDS for w in _WORD.findall(_mask_math(tail))):
        return numbers[0].replace(",", "")
    return tail or None


def _mask_math(text: str) -> str:
    """The text with every math span blanked out (same length), so prose rules skip formulas."""
    chars = list(text)
    for start, end, _ in math_spans(text):
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def extract_answer(completion: str) -> str | None:
    """The final answer: the last <final_answer> when there is one; otherwise whichever comes last of the last
    `\\boxed{}`, `#### x` and "the final answer is x" / "Final Answer: …" statement (so a late statement beats
    an intermediate box); otherwise the last math span or bare number, whichever ends later. None when
    nothing is found."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    text = completion[-MAX_COMPLETION_CHARS:]
    tagged = _FINAL_ANSWER.findall(text)
    if tagged:
        inner = tagged[-1].strip()
        if _BOX_START.search(inner):
            return last_boxed(inner)
        return _strip_sentence_end(inner) or None
    candidates: list[tuple[int, str | None]] = []
    spans = boxed_spans(text)
    if spans:
        candidates.append((spans[-1][0], last_boxed(text)))
    elif _BOX_START.search(text):
        candidates.append((len(text), None))
    gsm = list(_GSM8K.finditer(text))
    if gsm:
        candidates.append((gsm[-1].start(), _strip_sentence_end(gsm[-1].group(1)) or None))
    stated = list(_ANSWER_IS.finditer(text))
    if stated:
        candidates.append((stated[-1].start(), _statement_answer(stated[-1].group(1))))
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    spans = math_spans(text)
    numbers = list(_LAST_NUMBER.finditer(_mask_math(text)))
    if spans and (not numbers or spans[-1][1] >= numbers[-1].end()):
        return spans[-1][2] or None
    if numbers:
        return numbers[-1].group().replace(",", "") or None
    return None
