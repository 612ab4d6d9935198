"""String normalisation before parsing: one canonical spelling for numbers, LaTeX noise, units and choices.

Input is untrusted and may be long: `normalize` reads at most `MAX_RAW_CHARS`, and every scan here is linear: no
nested or adjacent overlapping quantifiers, no pattern retried at each position of a run it rescans, trailing units
peeled off a short tail one word at a time (tests/test_linear_text.py checks this).
"""
from __future__ import annotations

import re
import unicodedata
from itertools import accumulate

from verifier_pool.parse import NUMBER

MAX_RAW_CHARS = 10_000

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "‒": "-", "﹣": "-", "－": "-",
    "×": r"\times ", "·": r"\cdot ", "÷": "/", "π": r"\pi ", "∞": r"\infty ", "√": r"\sqrt",
    "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ", "∪": r"\cup ", "∩": r"\cap ", "°": r"^\circ ", "’": "'", "€": "", "£": "",
    "²": "^2", "³": "^3",
}
UNIT_WORDS = frozenset((
    "km cm mm m kg g mg lb lbs pounds pound oz ounces inches inch in ft feet foot yd yards yard miles mile mph "
    "hours hour hrs hr h minutes minute mins min seconds second sec s days day weeks week months month years year "
    "dollars dollar cents cent euros euro usd units unit meters meter metres metre liters liter litres litre l ml "
    "degrees degree deg people persons students apples items square sq cubic percent percentage pct points marbles "
    "books cookies"
).split())
# Words that keep a final answer from being committed, by kind (what `verifier_pool.commitment` refuses, and what is
# never a label to drop after a value). `hedge` words count anywhere in the final statement; the others only where
# they qualify the answer, not where they restate the question ("the integers not divisible by 3 or 5 is ...").
_UNCOMMITTED = {
    "hedge": "maybe probably possibly perhaps presumably supposedly conceivably hopefully guess guessing likely "
             "unlikely unsure uncertain seems seem seemingly apparently alternatively alternately",
    "modal": "could might may",
    "qualifier": "about around approximately approx roughly nearly almost circa close estimate estimated least most "
                 "than between within bound over under above below exceeds exceeding ish",
    "negation": "not never neither nor cannot isnt arent wasnt werent doesnt dont cant wont wrong incorrect false "
                "invalid",
    "condition": "if unless otherwise provided providing assuming suppose supposing depending depends iff except "
                 "else",
    "disjunction": "or either",
    "contrast": "but although though however",
}
COMMITMENT_WORDS = {word: kind for kind, words in _UNCOMMITTED.items() for word in words.split()}
OR_QUALIFIERS = frozenset("so more less fewer greater higher lower above below thereabouts something".split())
_TEXT_COMMAND = r"\\(?:text|textbf|textit|textnormal|textrm|textsf|mathrm|mathbf|mathit|mbox|operatorname)"
_TEXT_CMD = re.compile(_TEXT_COMMAND + r" ?\{([^{}]*)\}")
_TRAILING_TEXT = re.compile(_TEXT_COMMAND + r" ?\{ ?[A-Za-z][A-Za-z\s.]{0,40}\}(?:\^ ?\{?[23]\}?)?\.?$")
_VALUE_END = re.compile(r"(?:[\d})]|\\pi|\\infty)$")
_WORDS = re.compile(r"[A-Za-z]+")
_DEGREE_MARK = re.compile(r"(?:\^ ?(?:\{ ?\\circ ?\}|\\circ(?![A-Za-z]))|\\degree(?![A-Za-z]))")
_TRIG_NAME = re.compile(r"(?<![A-Za-z])\\?(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])(?: ?\^ ?(?:\{ ?-?\d ?\}|-?\d))?"
                        r"(?:\s|\\[,;:! ])*")
# A number is tried only where a digit run starts: tried inside the run it would end where the run ends and fail the
# same way, and each of the n tries would rescan the rest of the run (quadratic on a long run of digits).
_ANGLE = re.compile(rf"((?<!\d){NUMBER}|[A-Za-z]|\\[A-Za-z]+) ?{_DEGREE_MARK.pattern}")
_LATEX_THOUSANDS = re.compile(r"(?<=\d) ?(?:\{,\}|\\,|,\\!) ?(?=\d{3}(?!\d))")
_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?:(,)\d{3})+(?:\.\d+)?|-?\d{1,3}(?:( )\d{3})+(?:\.\d+)?")
_DECIMAL_COMMA = re.compile(r"-?(?:0,\d+|\d,\d\d|\d{4,},\d{1,2})")
_SIMPLE_FRACTION = re.compile(r"(-?)\\frac\{(\d{1,50})\}\{(\d{1,50})\}")
_PLAIN_MIXED = re.compile(r"([-+]?)(\d{1,3}(?: \d{3}){1,16}|\d{1,50}) (0|[1-9]\d{0,49})/([1-9]\d{0,49})")
_CHOICE = re.compile(r"(?:\(\s?([A-Ea-e])\s?\)|([A-E]))[.:]?")
_SHORT_FRAC = re.compile(r"\\frac ?(\d)(?: ?(\d)| ?\{)")
_SHORT_FRAC_DEN = re.compile(r"\\frac ?\{([^{}]{1,40})\} ?(\d)")
_SHORT_SQRT = re.compile(r"\\sqrt ?(\d+)")
_SUBSCRIPT = re.compile(r"_\{(\w{1,8})\}")
_RELATIONS = [(re.compile(r"\\(?:leq|leqslant|le)(?![A-Za-z])"), "<="), (re.compile(r"\\(?:geq|geqslant|ge)(?![A-Za-z])"), ">="),
              (re.compile(r"\\(?:neq|ne)(?![A-Za-z])"), "!="), (re.compile(r"\\lt(?![A-Za-z])"), "<"),
              (re.compile(r"\\gt(?![A-Za-z])"), ">"), (re.compile(r"=<"), "<="), (re.compile(r"=>"), ">=")]
_IN_PREFIX = re.compile(r"^[A-Za-z](?:_\w)? ?\\in ?")
_TAIL_UNIT = re.compile(r"([A-Za-z]+)(?:\^\{?[23]\}?)?\.?$")


def _join_grouped(s: str) -> str:
    """`7,425,000` / `1 000` → digits, only when the whole answer is one grouped number (never inside a tuple); a whole
    answer `W N/D` (a whole number, a space, a fraction of whole numbers) → `W\\frac{N}{D}`, the spelling the parser
    reads as a mixed number when N/D is proper (`1 1/2` = 3/2, `12 1/2` = 25/2) and as a product otherwise
    (`1 3/2` is not a mixed number). A numerator with a leading zero is a thousands group: `1 000/3` is 1000/3."""
    if _DECIMAL_COMMA.fullmatch(s):
        return s.replace(",", ".")
    if _GROUPED_NUMBER.fullmatch(s):
        return s.replace(",", "").replace(" ", "")
    fraction = _SIMPLE_FRACTION.fullmatch(s)
    if fraction:
        return f"{fraction.group(1)}{fraction.group(2)}/{fraction.group(3)}"
    mixed = _PLAIN_MIXED.fullmatch(s)
    if mixed:
        sign, whole, numerator, denominator = mixed.groups()
        return f"{sign}{whole.replace(' ', '')}\\frac{{{numerator}}}{{{denominator}}}"
    return s


def matching_brackets(text: str, pairs: str = "{}") -> dict[int, int]:
    """Index of each opening bracket → index of its closer, for each (opener, closer) pair in `pairs`, one stack per
    kind, escaped brackets (`\\{`) ignored; one pass."""
    closers = dict(zip(pairs[1::2], pairs[0::2]))
    stacks: dict[str, list[int]] = {opener: [] for opener in pairs[0::2]}
    found = {}
    for i, ch in enumerate(text):
        if i and text[i - 1] == "\\":
            continue
        if ch in stacks:
            stacks[ch].append(i)
        elif ch in closers and stacks[closers[ch]]:
            found[stacks[closers[ch]].pop()] = i
    return found


def degrees_in_trig(s: str) -> str:
    """Inside the argument of a trigonometric function a degree mark means ·π/180: `\\sin(90^\\circ - x)` →
    `\\sin(\\frac{90\\pi}{180} - x)`, `\\cos 60^\\circ` → `\\cos \\frac{60\\pi}{180}`, so the parser (radians) reads
    sin(π/2 - x) and cos(π/3). The argument is a bracketed group right after the name, else the angle right after it.
    A degree mark anywhere else is left for `normalize` to drop (`30^\\circ` stays the number 30). Linear: one pass
    for the brackets, one for the names, one for the angles."""
    if "circ" not in s and "degree" not in s:
        return s
    pairs: dict[int, int] | None = None
    depth = [0] * (len(s) + 1)
    for m in _TRIG_NAME.finditer(s):
        start = m.end()
        if start < len(s) and s[start] in "({":
            pairs = matching_brackets(s, "(){}") if pairs is None else pairs
            end = pairs.get(start, start)
        else:
            end = start + 1
        depth[start] += 1
        depth[end] -= 1
    inside = list(accumulate(depth))

    def radians(angle: re.Match) -> str:
        return f"\\frac{{{angle.group(1)}\\pi}}{{180}}" if inside[angle.start()] > 0 else angle.group()

    return _ANGLE.sub(radians, s)


def drop_trailing_text(s: str) -> str:
    """A value followed by free words in a text command (`17\\text{ apples}`, `8\\text{ meals}`,
    `144 \\mbox{ m}^3`) is the value: words set in `\\text` after a number are a label (the MATH answer key
    writes units this way). Not when the text is the whole answer (`\\text{Evelyn}`), sits between values
    (`12\\text{ and }13`), holds anything but letters or holds a word that hedges, negates or conditions
    (`5\\text{ maybe}`, `5\\text{ or so}`: `COMMITMENT_WORDS`, left for the verifier to refuse)."""
    m = _TRAILING_TEXT.search(s[-80:])
    if not m or any(word.lower() in COMMITMENT_WORDS for word in _WORDS.findall(m.group())):
        return s
    head = s[: len(s) - len(m.group())].rstrip()
    return head if head and _VALUE_END.search(head) else s


def strip_units(s: str) -> str:
    """Peel unit words (`cm^2`, `square feet`, `percent`) off the end of a value; at most three words.

    A number with a unit equals the bare number, in both directions and under both policies (`5 cm` = `5`): the
    question fixes the unit, and an answer key that spells it (`18 \\text{ integers}`) must not fail a bare `18`.
    The price is that a wrong unit is not caught (`5 cm` = `5 m`); the verifier judges values, not dimensions."""
    out = s.rstrip()
    for _ in range(3):
        m = _TAIL_UNIT.search(out[-24:])
        if not m or m.group(1).lower() not in UNIT_WORDS:
            break
        head = out[: len(out) - len(m.group())].rstrip()
        if not head:
            break
        out = head
    if out != s.rstrip() and _VALUE_END.search(out):
        return out
    return s


def normalize(answer: str) -> str:
    """Canonical form of an answer string: unicode operators, `$`, `\\left`, `\\text{}`, units (and free text after a
    value), currency, degree marks (angles inside a trigonometric function become radians), percent and thousands
    separators removed; LaTeX relations as `<=`, `>=`, `!=`; `x \\in S` as S; `\\frac12` as `\\frac{1}{2}`; base
    subscripts `_{7}` as `_7`; a plain mixed number `1 1/2` as `1\\frac{1}{2}`; choices as `choice:X`."""
    s = unicodedata.normalize("NFKC", str(answer)[:MAX_RAW_CHARS])
    for bad, good in _UNICODE.items():
        s = s.replace(bad, good)
    s = s.replace("\\$", "").replace("$", "").strip()
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = re.sub(r"\\(?:displaystyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = s.replace("\\%", "").replace("%", "")
    s = degrees_in_trig(s)
    s = _DEGREE_MARK.sub("", s)
    s = re.sub(r"\\(?:degree|circ)(?![a-zA-Z])", "", s)
    s = re.sub(r"\{ ?, ?\}", "{,}", s)
    s = _LATEX_THOUSANDS.sub("", s)
    s = re.sub(r"(?<!\\)\\!", "", s)
    s = re.sub(r"(?<!\\)\\[;: ]|~|(?<!\\)\\,", " ", s)
    s = drop_trailing_text(s)
    for _ in range(3):
        s = _TEXT_CMD.sub(r"\1", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _SHORT_FRAC.sub(lambda m: f"\\frac{{{m.group(1)}}}" + (f"{{{m.group(2)}}}" if m.group(2) else "{"), s)
    s = _SHORT_FRAC_DEN.sub(r"\\frac{\1}{\2}", s)
    s = _SHORT_SQRT.sub(r"\\sqrt{\1}", s)
    s = _SUBSCRIPT.sub(r"_\1", s)
    for pattern, plain in _RELATIONS:
        s = pattern.sub(plain, s)
    s = _IN_PREFIX.sub("", s)
    s = s.rstrip("\\").strip()
    s = strip_units(s.rstrip(".").strip())
    s = re.sub(r"^(?:us ?)?(?:usd|eur|rs\.?) ?", "", s, flags=re.I)
    s = s.strip().rstrip(".").strip()
    s = _join_grouped(s)
    choice = _CHOICE.fullmatch(s)
    if choice:
        return f"choice:{(choice.group(1) or choice.group(2)).upper()}"
    return s
