"""Pull the final answer out of a completion, as the model wrote it (no normalisation here).

Completions are hostile: only the last `MAX_COMPLETION_CHARS` are read, and every scan here is linear (brace
matching, tags and math delimiters in one pass; regexes without nested or adjacent overlapping quantifiers, with
bounded captures, never retried at each position of a run they rescan: tests/test_linear_text.py checks this).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from verifier_pool.normalize import matching_brackets
from verifier_pool.parse import CONSTANTS, FUNCTIONS, NUMBER

MAX_COMPLETION_CHARS = 20_000
MAX_STATEMENT_CHARS = 300

_TAGS = {name: re.compile(rf"<(/?){name}>", re.I) for name in ("final_answer", "reasoning", "response")}
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s?\{")
_GSM8K = re.compile(r"####[ \t]*([^\n]{1,300})")
# "The answer is 5." / "Final answer: 5 I hope it is correct": the statement after the phrase and the spaces and colon
# that follow it, as `PHRASE[ \t]*:?[ \t]*(.{1,300}?)END` reads it, in linear time. That spelling backtracks over every
# split of a blank run between its two `[ \t]*` (quadratic) and rescans a blank run before "I hope" from each of its
# characters. Here the spaces and colon are taken whole, and the few readings backtracking could still find are
# spelled out: group 1, a statement that is one blank; group 2, the statement, whose "I hope" end is looked for only
# after a non-blank (after a blank it ends as it did one character earlier); group 3, the last character of the spaces
# and colon, when the statement ends right after them ("The answer is:" then the end reads ":").
_ANSWER_PHRASE = r"(?:the[ \t]++(?:final[ \t]++)?answer[ \t]++is|final[ \t]++answer[ \t]*+:|answer[ \t]*+:)"
_STATEMENT_END = r"(?:\.\s|\.?$|\n|\.?\s*+I hope)"
_ANSWER_IS = re.compile(
    rf"{_ANSWER_PHRASE}(?:[ \t]*+:?+[ \t]*+(?:([^\S\n]){_STATEMENT_END}"
    rf"|(.{{1,{MAX_STATEMENT_CHARS}}}?)(?:\.\s|\.?$|\n|\.\s*+I hope|(?<!\s)\s*+I hope))"
    rf"|(?=[ \t:])[ \t]*+:?+[ \t]*+(?<=(.)){_STATEMENT_END})", re.I
)
_IS = re.compile(r"\s(?:is|are|equals|=)\s", re.I)
_IS_WORD = re.compile(r"\s(?:is|are|equals)\s", re.I)  # a final statement's subject ends here; `x =` is the answer's
_MATH_DELIMITER = re.compile(r"\\?\$\$|\\?\$|\\\(|\\\)|\\\[|\\\]")
_CLOSERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_LAST_NUMBER = re.compile(rf"(?<![\w.])[-−]?(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|{NUMBER}(?:/{NUMBER})?)(?!\d|\.\d)")
# Separators, then "and" or "," once, then separators: as "," is itself a separator, the separators are taken whole
# (possessive) and only "and" needs its own place; the two-star spelling backtracks over every split of a long run.
_BOX_JOINER = re.compile(r"(?:[\s$,]|\\[()\[\]])*+(?:and(?:[\s$,]|\\[()\[\]])*+)?")
_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = frozenset(FUNCTIONS) | frozenset(CONSTANTS)  # "log(x) + 1" is a formula, not a sentence of words
# Sentence breaks: a line break, or `.` `!` `?` (closing a formula or not) before a space or a glued sentence.
_LEAD_BREAK = re.compile(r"\n|[.!?](?:\$\$?|\\[\])])?(?=\s|[A-Z][a-z])|\\\](?=[A-Z][a-z])")
_TAIL_BREAK = re.compile(r"\n|[.!](?=\s|$|[A-Z][a-z])")
_CONTINUES = re.compile(r"[ \t]{0,8}\n?[ \t]{0,8}(?:or|alternatively|otherwise|unless|maybe|perhaps|possibly|probably|though|"
                        r"although|not)\b", re.I)
# A line that only opens a display (`\[`, `$$`, `\begin{align*}`): its formula belongs to the sentence before.
_DISPLAY_OPENER = re.compile(r"[ \t$]{0,8}(?:\\\[|\\\(|\\begin\{[a-z*]{1,12}\})?[ \t$]{0,8}")


@dataclass(frozen=True)
class FinalStatement:
    """The final statement of a completion, as `commitment.commitment_issue` judges it: `lead` (the sentence before
    the answer), `stated` (the answer as written, boxes and words and all) and `tail` (the rest of the sentence). A
    bare answer (`compare(pred, gold)`) is all `stated`."""

    stated: str
    lead: str = ""
    tail: str = ""

    def to_wire(self) -> list[str]:
        """Plain values, as the sandbox request carries them (see `of`)."""
        return [self.stated, self.lead, self.tail]

    @classmethod
    def of(cls, value: "FinalStatement | list | tuple") -> "FinalStatement":
        """The statement itself, or one read back from the wire."""
        return value if isinstance(value, cls) else cls(*value)


@dataclass(frozen=True)
class FinalAnswer:
    """The final answer as `extract_answer` reads it, and the final statement around it (what
    `commitment.commitment_issue` judges); no statement when there is no answer."""

    answer: str | None
    statement: FinalStatement | None = None


def tag_blocks(text: str, name: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each `<name>…</name>` block (`name` one of final_answer, reasoning, response), in order,
    as the lazy `<name>(.*?)</name>` (any case) finds them: an opener is closed by the first closer after it. One
    pass over the tags; the lazy regex rescans the rest of the text from every unclosed opener."""
    out, opened = [], None
    for m in _TAGS[name].finditer(text):
        if m.group(1) and opened is not None:
            out.append((opened.start(), m.end(), text[opened.end() : m.start()]))
            opened = None
        elif not m.group(1) and opened is None:
            opened = m
    return out


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
    as a list, the same content once (`\\boxed{7}\\boxed{7}` is 7). None if absent or empty."""
    spans = boxed_spans(text)
    if not spans:
        return None
    return _last_box_group(text, spans)[2] or None


def _last_box_group(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, int, str]:
    """(start, end, joined content) of the last box and the boxes adjacent to it (see `last_boxed`)."""
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not _BOX_JOINER.fullmatch(text, span[1], group[-1][0]):
            break
        group.append(span)
    group.reverse()
    return group[0][0], group[-1][1], ", ".join(dict.fromkeys(s[2] for s in group if s[2]))


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of `$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]` spans; inline `$`/`\\(` do not cross
    lines. One pass over the delimiters, and one over the line breaks (the next one after the opener is kept, not
    searched for again at each delimiter)."""
    out, opener, start, newline = [], None, 0, -1
    for m in _MATH_DELIMITER.finditer(text):
        token = m.group()
        if token.startswith("\\$"):
            continue
        if opener is None:
            if token in _CLOSERS:
                opener, start = token, m.end()
                newline = _next_newline(text, start, newline)
            continue
        crossed = newline < m.start()
        if token == _CLOSERS[opener]:
            if opener in ("$$", "\\[") or not crossed:
                out.append((start - len(opener), m.end(), text[start : m.start()].strip()))
            opener = None
        elif opener in ("$", "\\(") and crossed:
            opener, start = (token, m.end()) if token in _CLOSERS else (None, 0)
            newline = _next_newline(text, start, newline)
    return out


def _next_newline(text: str, start: int, known: int) -> int:
    """Index of the first line break at or after `start` (`len(text)` when there is none); `known`, the answer for an
    earlier start, is reused while it is still ahead, so the breaks are searched once in all."""
    if known >= start:
        return known
    found = text.find("\n", start)
    return len(text) if found < 0 else found


def _strip_sentence_end(answer: str) -> str:
    answer = answer.strip().strip('"').strip()
    end = len(answer)
    while end and (answer[end - 1] in ".,;" or answer[end - 1].isspace()):
        end -= 1
    answer = answer[:end]
    return answer.replace("\\$", "\0").replace("$", "").replace("\0", "\\$").strip().strip('"').strip()


def _statement_answer(statement: str) -> str | None:
    """The answer inside "Final Answer: The largest $n$ is 34." style statements: after the last ` is `
    outside math; else, in a sentence of words ("Sphere started 3 hours ago"), its first number; else the
    statement itself."""
    cut = _after_last_is(statement)
    tail = _strip_sentence_end(statement[cut:])
    if cut:
        return tail or None
    numbers = _LAST_NUMBER.findall(_mask_math(statement))
    if numbers and any(w not in _MATH_WORDS for w in _WORD.findall(_mask_math(tail))):
        return numbers[0].replace(",", "")
    return tail or None


def _after_last_is(statement: str, pattern: re.Pattern = _IS) -> int:
    """Where the text after the last ` is ` / ` = ` (or `pattern`) outside math begins (0 without one)."""
    cut = 0
    for m in pattern.finditer(_mask_math(statement)):
        cut = m.end()
    return cut


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
    return extract_final(completion).answer


def extract_final(completion: str) -> FinalAnswer:
    """The final answer (see `extract_answer`) with the final statement it was read from: the <final_answer> content,
    or the sentence holding the last box, the `####` line, the "answer is" statement or the last math span / number."""
    if not isinstance(completion, str) or not completion.strip():
        return FinalAnswer(None)
    text = completion[-MAX_COMPLETION_CHARS:]
    tagged = tag_blocks(text, "final_answer")
    if tagged:
        return _tagged_final(text, tagged[-1])
    candidates: list[tuple[int, str | None, FinalStatement | None]] = []
    spans = boxed_spans(text)
    if spans:
        start, end, content = _last_box_group(text, spans)
        candidates.append((spans[-1][0], content or None, _statement(text, start, end)))
    elif _BOX_START.search(text):
        candidates.append((len(text), None, None))
    gsm = list(_GSM8K.finditer(text))
    if gsm:
        m = gsm[-1]
        candidates.append((m.start(), _strip_sentence_end(m.group(1)) or None, _statement(text, m.start(1), m.end(1))))
    stated = list(_ANSWER_IS.finditer(text))
    if stated:
        m = stated[-1]
        group = m.lastindex  # the one group of _ANSWER_IS that took part
        cut = m.start(group) + _after_last_is(m.group(group), _IS_WORD)
        candidates.append((m.start(), _statement_answer(m.group(group)), _statement(text, cut, m.end(group))))
    if candidates:
        _, answer, statement = max(candidates, key=lambda c: c[0])
        return FinalAnswer(answer, statement if answer is not None else None)
    return _bare_final(text)


def _tagged_final(text: str, block: tuple[int, int, str]) -> FinalAnswer:
    """The answer of a <final_answer> block: its last box (stated in the block's sentence), else the whole block. The
    statement reaches past the tags on their line, to the nearest other tag ("probably <final_answer>5</final_answer>",
    "<final_answer>5</final_answer> or 6")."""
    inner = block[2].strip()
    lead = text[_lead_start(text, block[0]) : block[0]]
    lead, tail = lead[lead.rfind(">") + 1 :], text[block[1] : _tail_end(text, block[1])].split("<", 1)[0]
    if not _BOX_START.search(inner):
        answer = _strip_sentence_end(inner) or None
        return FinalAnswer(answer, FinalStatement(inner, lead, tail) if answer else None)
    spans = boxed_spans(inner)
    if not spans:
        return FinalAnswer(None)
    start, end, content = _last_box_group(inner, spans)
    statement = _statement(inner, start, end)
    return FinalAnswer(content or None, FinalStatement(statement.stated, lead + statement.lead, statement.tail + tail)
                       if content else None)


def _bare_final(text: str) -> FinalAnswer:
    """The last math span or bare number, whichever ends later, in its sentence."""
    spans = math_spans(text)
    numbers = list(_LAST_NUMBER.finditer(_mask_math(text)))
    if spans and (not numbers or spans[-1][1] >= numbers[-1].end()):
        start, end, content = spans[-1]
        return FinalAnswer(content or None, _statement(text, start, end) if content else None)
    if numbers:
        m = numbers[-1]
        return FinalAnswer(m.group().replace(",", "") or None, _statement(text, m.start(), m.end()))
    return FinalAnswer(None)


def answer_statement(answer: str) -> FinalStatement:
    """A bare answer (`compare(pred, gold)`) as a final statement: its last box (group) stated, the text around it
    lead and tail (`maybe \\boxed{5}`, `\\boxed{5} (or 6)`); without a box, all of it stated."""
    spans = boxed_spans(answer)
    if not spans:
        return FinalStatement(answer)
    start, end, _ = _last_box_group(answer, spans)
    return FinalStatement(answer[start:end], answer[:start], answer[end:])


def _statement(text: str, start: int, end: int) -> FinalStatement:
    """The final statement around the answer `text[start:end]`: the sentence holding it, at most
    `MAX_STATEMENT_CHARS` either side (see `_lead_start`, `_tail_end`)."""
    begin, stop = _lead_start(text, start), _tail_end(text, end)
    return FinalStatement(text[start:end], text[begin:start], text[end:stop])


def _lead_start(text: str, start: int) -> int:
    """Where the sentence holding `text[start]` begins: after the last line or sentence break, stepping back over
    line breaks before lines that only open a display (`\\[ \\boxed{5} \\]` belongs to the line before)."""
    floor = max(0, start - MAX_STATEMENT_CHARS)
    end = start
    for m in reversed(list(_LEAD_BREAK.finditer(text, floor, start))):
        if m.group() != "\n" or not _DISPLAY_OPENER.fullmatch(text, m.end(), end):
            return m.end()
        end = m.start()
    return floor


def _tail_end(text: str, end: int) -> int:
    """Where the sentence holding `text[end - 1]` ends: at the next line or sentence break, or after the next
    sentence or line when that one continues it ("5. Or maybe 6.", "5\nor perhaps 6")."""
    ceiling = min(len(text), end + MAX_STATEMENT_CHARS)
    m = _TAIL_BREAK.search(text, end, ceiling)
    if m is None:
        return ceiling
    if _CONTINUES.match(text, m.end(), ceiling):
        following = _TAIL_BREAK.search(text, m.end() + 1, ceiling)
        return following.start() if following else ceiling
    return m.start()
