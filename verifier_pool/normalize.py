"""String normalisation before parsing: one canonical spelling for numbers, LaTeX noise, units and choices.

Input is untrusted and may be long: callers cap it at `MAX_RAW_CHARS`, and every regex here is linear
(no nested or overlapping quantifiers); trailing units are peeled off a short tail, one word at a time.
"""
from __future__ import annotations

import re
import unicodedata

MAX_RAW_CHARS = 10_000

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "‒": "-", "﹣": "-", "－": "-",
    "×": r"\times ", "·": r"\cdot ", "÷": "/", "π": r"\pi ", "∞": r"\infty ", "√": r"\sqrt",
    "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ", "∪": r"\cup ", "∩": r"\cap ", "°": "", "’": "'", "€": "", "£": "",
    "²": "^2", "³": "^3",
}
UNIT_WORDS = frozenset((
    "km cm mm m kg g mg lb lbs pounds pound oz ounces inches inch in ft feet foot yd yards yard miles mile mph "
    "hours hour hrs hr h minutes minute mins min seconds second sec s days day weeks week months month years year "
    "dollars dollar cents cent euros euro usd units unit meters meter metres metre liters liter litres litre l ml "
    "degrees degree deg people persons students apples items square sq cubic percent percentage pct points marbles "
    "books cookies"
).split())
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textnormal|textrm|textsf|mathrm|mathbf|mathit|mbox|operatorname)"
                       r" ?\{([^{}]*)\}")
_LATEX_THOUSANDS = re.compile(r"(?<=\d) ?(?:\{,\}|\\,|,\\!) ?(?=\d{3}(?!\d))")
_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?:(,)\d{3})+(?:\.\d+)?|-?\d{1,3}(?:( )\d{3})+(?:\.\d+)?")
_DECIMAL_COMMA = re.compile(r"-?(?:0,\d+|\d,\d\d|\d{4,},\d{1,2})")
_SIMPLE_FRACTION = re.compile(r"(-?)\\frac\{(\d{1,50})\}\{(\d{1,50})\}")
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
    """`7,425,000` / `1 000` → digits, only when the whole answer is one grouped number (never inside a tuple)."""
    if _DECIMAL_COMMA.fullmatch(s):
        return s.replace(",", ".")
    if _GROUPED_NUMBER.fullmatch(s):
        return s.replace(",", "").replace(" ", "")
    fraction = _SIMPLE_FRACTION.fullmatch(s)
    if fraction:
        return f"{fraction.group(1)}{fraction.group(2)}/{fraction.group(3)}"
    return s


def strip_units(s: str) -> str:
    """Peel unit words (`cm^2`, `square feet`, `percent`) off the end of a value; at most three words."""
    out = s.rstrip()
    for _ in range(3):
        m = _TAIL_UNIT.search(out[-24:])
        if not m or m.group(1).lower() not in UNIT_WORDS:
            break
        head = out[: len(out) - len(m.group())].rstrip()
        if not head:
            break
        out = head
    if out != s.rstrip() and re.search(r"(?:[\d})]|\\pi|\\infty)$", out):
        return out
    return s


def normalize(answer: str) -> str:
    """Canonical form of an answer string: unicode operators, `$`, `\\left`, `\\text{}`, units, currency,
    degrees, percent and thousands separators removed; LaTeX relations as `<=`, `>=`, `!=`; `x \\in S` as S;
    `\\frac12` as `\\frac{1}{2}`; base subscripts `_{7}` as `_7`; choices as `choice:X`."""
    s = unicodedata.normalize("NFKC", str(answer)[:MAX_RAW_CHARS])
    for bad, good in _UNICODE.items():
        s = s.replace(bad, good)
    s = s.replace("\\$", "").replace("$", "").strip()
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = re.sub(r"\\(?:displaystyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\^ ?\{? ?\\circ ?\}?", "", s)
    s = re.sub(r"\\(?:degree|circ)(?![a-zA-Z])", "", s)
    s = re.sub(r"\{ ?, ?\}", "{,}", s)
    s = _LATEX_THOUSANDS.sub("", s)
    s = re.sub(r"(?<!\\)\\!", "", s)
    s = re.sub(r"(?<!\\)\\[;: ]|~|(?<!\\)\\,", " ", s)
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
    s = re.sub(r"\\+$", "", s).strip()
    s = strip_units(s.rstrip(".").strip())
    s = re.sub(r"^(?:us ?)?(?:usd|eur|rs\.?) ?", "", s, flags=re.I)
    s = s.strip().rstrip(".").strip()
    s = _join_grouped(s)
    choice = _CHOICE.fullmatch(s)
    if choice:
        return f"choice:{(choice.group(1) or choice.group(2)).upper()}"
    return s
