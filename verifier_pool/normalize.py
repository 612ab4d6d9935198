"""String normalisation before parsing: one canonical spelling for numbers, LaTeX noise, units and choices."""
from __future__ import annotations

import re
import unicodedata

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "‒": "-", "﹣": "-", "－": "-",
    "×": r"\times ", "·": r"\cdot ", "÷": "/", "π": r"\pi ", "∞": r"\infty ", "√": r"\sqrt",
    "≤": r"\le ", "≥": r"\ge ", "∪": r"\cup ", "∩": r"\cap ", "°": "", "’": "'",
}
_UNITS = (
    "km|cm|mm|m|kg|g|mg|lb|lbs|pounds|pound|oz|ounces|inches|inch|in|ft|feet|foot|yd|yards|yard|miles|mile|mph|"
    "hours|hour|hrs|hr|h|minutes|minute|mins|min|seconds|second|sec|s|days|day|weeks|week|months|month|years|year|"
    "dollars|dollar|cents|cent|euros|euro|usd|units|unit|meters|meter|metres|metre|liters|liter|litres|litre|l|ml|"
    "degrees|degree|deg|people|persons|students|apples|items|square|sq|cubic|percent|points|marbles|books|cookies"
)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_TRAILING_UNITS = re.compile(rf"(?:(?<=[\d}}).])|(?<=\S)(?=\s))(?:\s*(?:{_UNITS})(?:\^\{{?[23]\}}?)?)+\.?$", re.I)
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3})((?:(?:,|\\,|\{,\}|\s)\d{3})+)(?![\d])")
_CHOICE = re.compile(r"^(?:\(\s*([A-Ea-e])\s*\)|([A-E]))[.:]?$")
_SHORT_FRAC = re.compile(r"\\frac\s*(\d)\s*(\d)")
_SHORT_FRAC_1 = re.compile(r"\\frac\s*(\d)\s*\{")
_SHORT_SQRT = re.compile(r"\\sqrt\s*(\d+)")
_LHS_VAR = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*(?:=|\\approx)\s*(?!=)")


def _join_thousands(match: re.Match[str]) -> str:
    return match.group(1) + re.sub(r"\\,|\{,\}|,|\s", "", match.group(2))


def normalize(answer: str) -> str:
    """Canonical form of an answer string: full-width digits, unicode operators, `$`, `\\left`, `\\text{}`,
    units, currency, degrees, percent and thousands separators removed; `x = 3` becomes `3`."""
    s = unicodedata.normalize("NFKC", str(answer))
    for bad, good in _UNICODE.items():
        s = s.replace(bad, good)
    s = s.strip()
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = re.sub(r"\\(?:displaystyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = re.sub(r"\\(?:degree|circ)(?![a-zA-Z])", "", s)
    s = re.sub(r"(?<!\\)\\[;:!]|~", " ", s)
    for _ in range(3):
        s = _TEXT_CMD.sub(r"\1", s)
    s = _THOUSANDS.sub(_join_thousands, s)
    s = re.sub(r"(?<!\\)\\,", "", s)
    s = re.sub(r"(?<!\\)\\ ", " ", s)
    s = _SHORT_FRAC.sub(r"\\frac{\1}{\2}", s)
    s = _SHORT_FRAC_1.sub(r"\\frac{\1}{", s)
    s = _SHORT_SQRT.sub(r"\\sqrt{\1}", s)
    s = _TRAILING_UNITS.sub("", s.strip())
    s = re.sub(r"^(?:us)?\s*(?:usd|eur|rs\.?)\s*", "", s, flags=re.I)
    if s.count("=") == 1 and _LHS_VAR.match(s):
        s = _LHS_VAR.sub("", s)
    s = s.strip().rstrip(".").strip()
    choice = _CHOICE.match(s)
    if choice:
        return f"choice:{(choice.group(1) or choice.group(2)).upper()}"
    return s
