"""Is a predicted answer equal to the gold one? Normalise, split into structure, parse, compare.

`compare` is safe to call from any thread or Ray actor and never raises: plain numbers are decided
in-process in microseconds (exact decimals, so `1e10000000` costs nothing); anything that needs SymPy
runs in a sandbox subprocess that is killed at its deadline. Text is never evaluated as code: plain maths
goes through `verifier_pool.parse`, LaTeX through latex2sympy2_extended.

Two answer policies:
- `lenient` (the default of `compare`, and of evaluation on external benchmarks): plain mathematical
  equality.
- `strict` (training): additionally, a numeric gold is credited only by a number in final form (no
  arithmetic left undone, no function-call syntax, fractions in lowest terms, surds simplified), an answer
  that restates the question's own expression earns nothing, and problems whose form is the task
  (`form="factored" | "expanded" | "simplified"`) are checked for that form. Such answers get verdict
  `not_final`.

Under both policies a final answer must be committed (see `commitment`): one that hedges, negates, conditions or names
rival values gets verdict `hedged`.
"""
from __future__ import annotations

import math
import random
import re
import time
from dataclasses import asdict, dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

from verifier_pool.commitment import commitment_issue
from verifier_pool.extract import FinalStatement, answer_statement
from verifier_pool.normalize import MAX_RAW_CHARS, normalize
from verifier_pool.parse import (
    DECIMAL_CONTEXT, MAX_ANSWER_CHARS, MAX_EXPONENT, MAX_FACTORIAL, Unparsable, final_form_issue, is_expanded,
    parse_plain, parse_tree, plain_number, product_factors, tree_has_symbols, tree_size,
)
from verifier_pool.verdict import Verdict

VERIFIER_VERSION = "6"  # bump whenever any verdict can change; stamped on every RewardBreakdown
REL_TOL = 1e-6
ABS_TOL = 1e-9
POLICIES = ("lenient", "strict")
FORMS = ("", "value", "factored", "expanded", "simplified")

__all__ = ["Judgement", "Verdict", "Unparsable", "compare", "answers_match", "compare_inline", "structure", "POLICIES",
           "FORMS"]


@dataclass(frozen=True)
class Judgement:
    """The judgement on one (pred, gold) pair; `relative_error` is set when both sides are numbers. A plain
    string verdict (a sandbox reply) is turned into its `Verdict`."""

    equal: bool
    verdict: Verdict
    relative_error: float | None = None
    seconds: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def to_dict(self) -> dict:
        """The judgement as plain values (the verdict as its string), as the sandbox sends it."""
        return {**asdict(self), "verdict": self.verdict.value}


# ---------------------------------------------------------------- structure

_SCI_LATEX = re.compile(r"([-+]?\d+(?:\.\d+)?) ?(?:\\times|\\cdot|\*|x) ?10 ?\^ ?\{? ?([-+]?\d{1,9}) ?\}?")
_MATRIX_BEGIN = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?")
_RELATION = re.compile(r"<=|>=|!=|\\approx|[<>=]")
_TARGET = re.compile(r"[A-Za-z](?:_\w{1,8})?'?|[A-Za-z]{1,3}\([A-Za-z0-9, ]{1,20}\)|\\angle ?[A-Za-z]{1,3}|"
                     r"\((?:[A-Za-z] ?, ?){1,5}[A-Za-z]\)")
_LIST_WORDS = re.compile(r" (?:and|or) ")
_LIST_SEPARATOR = re.compile(rf"[,;]|{_LIST_WORDS.pattern}")
_CASES = re.compile(r"\\begin\{cases\}(.*?)\\end\{cases\}", re.S)
_WORD_CONSTANTS = {"pi", "inf", "infty", "oo", "sqrt"}
_POWER = re.compile(r"\^|\*\*")
_SPACES = re.compile(r" *+")
_EXPONENT_TOKEN = re.compile(r"-?[\w.]*+")
_CHAINED_POWER = re.compile(r"\s*+(?:\^|\*\*)")
_FACTORIAL = re.compile(r"(?<!\d)(\d+) ?!")  # from a digit run's start only: from inside it ends, and fails, the same


def _top_level_matches(s: str, pattern: re.Pattern) -> list[re.Match]:
    """Non-empty matches of `pattern` outside brackets and braces, left to right, not overlapping. `pattern` is tried
    at each top-level position, so it must match a bounded length (the separators and relations here do) for the
    scan to stay linear."""
    matches, depth, i = [], 0, 0
    while i < len(s):
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            m = pattern.match(s, i)
            if m and m.end() > i:
                matches.append(m)
                i = m.end()
                continue
        i += 1
    return matches


def _split_top_level(s: str, separators: re.Pattern | str = ",") -> list[str]:
    """Split on a separator (string or pattern) outside brackets and braces."""
    pattern = separators if isinstance(separators, re.Pattern) else re.compile(re.escape(separators))
    bounds = [0] + [x for m in _top_level_matches(s, pattern) for x in (m.start(), m.end())] + [len(s)]
    return [s[a:b].strip() for a, b in zip(bounds[::2], bounds[1::2])]


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _relation_parts(s: str) -> tuple[list[str], list[str]]:
    """Top-level relation operators of `s` and the segments between them."""
    return [m.group() for m in _top_level_matches(s, _RELATION)], _split_top_level(s, _RELATION)


def _expand_pm(items: list[str]) -> list[str]:
    out = []
    for item in items:
        if item.count("\\pm") == 1:
            out += [item.replace("\\pm", "+"), item.replace("\\pm", "-")]
        else:
            out.append(item)
    return out


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def structure(s: str) -> tuple:
    """Parse the shape of a normalised answer: ("scalar", s), ("set", items), ("tuple", open, items, close),
    ("union", parts), ("matrix", rows), ("relation", op, lhs, rhs), ("assign", target, value_shape),
    ("assigns", ((name, value), ...)), ("choice", letter) or ("text", s). Chains `x = 1 + 2 = 3` become their
    last value; `a \\approx b` keeps the exact side; `a < x <= b` becomes the interval; lists of assignments
    are read by `_assignment_list`. `s` comes from `normalize`, so it is at most `MAX_RAW_CHARS` long, and every
    scan here is linear."""
    s = s.strip()
    if s.startswith("choice:"):
        return ("choice", s[7:])
    body = _matrix_body(s)
    if body is not None:
        rows = [r for r in re.split(r"\\\\", body) if r.strip()]
        return ("matrix", tuple(tuple(c.strip() for c in r.split("&")) for r in rows))
    listed = _assignment_list(s)
    if listed is not None:
        return listed
    ops, segments = _relation_parts(s)
    if ops and all(segments):
        return _relation_structure(ops, segments)
    if "\\cup" in s:
        parts = _split_top_level(s, "\\cup")
        if len(parts) == 1:  # every \cup inside brackets: no union to split (and no other reading was ever tried)
            raise Unparsable("\\cup inside brackets")
        return ("union", tuple(structure(p) for p in parts))
    if _LIST_WORDS.search(s):
        s = ", ".join(part.rstrip(",").rstrip() for part in _split_top_level(s, _LIST_WORDS))
    if s.startswith("\\{") and s.endswith("\\}"):
        return ("set", _unique(_expand_pm(_split_top_level(s[2:-2]))))
    if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]) and "," in s:
        return ("set", _unique(_expand_pm(_split_top_level(s[1:-1]))))
    if s[:1] in "([" and s[-1:] in ")]" and _balanced(s[1:-1]):
        items = _split_top_level(s[1:-1])
        if len(items) > 1:
            return ("tuple", s[0], tuple(items), s[-1])
    items = _split_top_level(s)
    if len(items) > 1 and all(items):
        return ("set", _unique(_expand_pm(items)))
    if s.count("\\pm") == 1:
        return ("set", tuple(_expand_pm([s])))
    if re.fullmatch(r"[A-Za-z][A-Za-z ]{2,}", s) and s.lower() not in _WORD_CONSTANTS:
        return ("text", s.lower())
    if re.fullmatch(r"\w[^\W_]*+_\w++", s):  # `\w+_\w+` (a name with a subscript), without its quadratic backtracking
        return ("text", s)
    return ("scalar", s)


def _matrix_body(s: str) -> str | None:
    """The body of the first closed matrix or array environment (`\\begin{pmatrix} … \\end{pmatrix}`, an array's
    column spec left out), up to the first `\\end` of its kind, as a lazy `(.*?)` between them finds it; None without
    one. Linear: whether an environment is closed at all is read from the last `\\end` of its kind, where the lazy
    regex rescans the rest of the text from every unclosed `\\begin`."""
    last_end: dict[str, int] = {}
    for m in _MATRIX_BEGIN.finditer(s):
        closer = f"\\end{{{m.group(1)}}}"
        if closer not in last_end:
            last_end[closer] = s.rfind(closer)
        if last_end[closer] >= m.end():
            return s[m.end() : s.find(closer, m.end())]
    return None


def _relation_structure(ops: list[str], segments: list[str]) -> tuple:
    if all(op in ("=", "\\approx") for op in ops):
        if "\\approx" in ops:
            k = ops.index("\\approx")
            exact = k > 0 or not _TARGET.fullmatch(segments[0])
            return structure(segments[k] if exact else segments[k + 1])
        if len(segments) > 2:
            return structure(segments[-1])
        if _TARGET.fullmatch(segments[0]):
            return ("assign", segments[0], structure(segments[1]))
        if not any(re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", side)) for side in segments):
            return structure(segments[1])  # a computation `1/2 + 1/3 = 5/6`: its result
        return ("relation", "=", segments[0], segments[1])
    if len(ops) == 2 and ops[0] == ops[1] and ops[0] in ("<", "<=") and _TARGET.fullmatch(segments[1]):
        return ("tuple", "(" if ops[0] == "<" else "[", (segments[0], segments[2]), ")" if ops[0] == "<" else "]")
    if len(ops) == 1:
        return ("relation", ops[0], segments[0], segments[1])
    return ("text", " ".join(segments))


def _assignment_list(s: str) -> tuple | None:
    """A list of assignments `x = 1, y = 2` (separated by `,`, `;`, `and`, `or`, or the rows of a
    `\\begin{cases}` system): ("assigns", pairs) when every name differs (a system's solution), ("set", values) when
    one name is given several values joined by words (the roots `x = 3 or x = 2`); None for anything else (one
    assignment, a chain, names that repeat only in part, a piecewise `cases`). The same name repeated between commas
    (`x=2, x=3`) is left to the chain rule, as the labelled corpus pins it (not the list `2, 3`)."""
    cases = _CASES.fullmatch(s)
    if cases:
        s = ", ".join(row.replace("&", " ") for row in re.split(r"\\\\", cases.group(1)) if row.strip())
    separators = _top_level_matches(s, _LIST_SEPARATOR)
    if not separators:
        return None
    items = [item for item in _split_top_level(s, _LIST_SEPARATOR) if item]
    pairs = []
    for item in items:
        ops, segments = _relation_parts(item)
        if ops != ["="] or not segments[1] or not _TARGET.fullmatch(segments[0]):
            return None
        pairs.append((segments[0], segments[1]))
    names = {name for name, _ in pairs}
    if len(names) == 1 and all(m.group().strip() in ("and", "or") for m in separators):
        return ("set", _unique(_expand_pm([value for _, value in pairs])))
    return ("assigns", tuple(pairs)) if len(names) == len(pairs) else None


# ---------------------------------------------------------------- parsing


def _exponents(s: str) -> list[tuple[str, bool]]:
    """Each exponent in `s` (after `^` or `**`: a `{…}` or `(…)` group, unclosed to the end, else a token) and
    whether another power follows it directly (a tower). The groups' closers are found in one pass beforehand."""
    closers = _group_closers(s)
    found = []
    for m in _POWER.finditer(s):
        i = _SPACES.match(s, m.end()).end()
        if i < len(s) and s[i] in "{(":
            j = closers.get(i, len(s))
            body, rest = s[i + 1 : j], min(j + 1, len(s))
        else:
            body = _EXPONENT_TOKEN.match(s, i).group()
            rest = i + len(body)
        found.append((body, bool(_CHAINED_POWER.match(s, rest))))
    return found


def _group_closers(s: str) -> dict[int, int]:
    """Index of each `{` and `(` → index of the `}` / `)` that closes it, counting brackets of its own kind only and
    escaped ones too (as `_exponents` reads a group); one pass."""
    stacks: dict[str, list[int]] = {"{": [], "(": []}
    found = {}
    for i, ch in enumerate(s):
        if ch in stacks:
            stacks[ch].append(i)
        elif ch in "})" and stacks["{" if ch == "}" else "("]:
            found[stacks["{" if ch == "}" else "("].pop()] = i
    return found


def guard_latex(s: str) -> None:
    """Refuse LaTeX that SymPy could spend unbounded time on (the plain parser bounds its own tree):
    long strings, exponent towers, huge integer exponents and factorials, unbalanced brackets."""
    if len(s) > MAX_ANSWER_CHARS:
        raise Unparsable(f"answer longer than {MAX_ANSWER_CHARS} characters")
    for body, chained in _exponents(s):
        nested = chained or "^" in body or "**" in body
        if nested and not re.search(r"(?<!\\)\b[a-zA-Z]", body):
            raise Unparsable("numeric exponent tower")
        for digits in re.findall(r"\d+", body):
            if len(digits) > 6 or int(digits) > MAX_EXPONENT:
                raise Unparsable("exponent too large")
    for m in _FACTORIAL.finditer(s):
        if len(m.group(1)) > 6 or int(m.group(1)) > MAX_FACTORIAL:
            raise Unparsable("factorial too large")
    if not _balanced(s.replace("\\{", "").replace("\\}", "")):
        raise Unparsable("unbalanced brackets")


@lru_cache(maxsize=4096)
def parse_scalar(s: str):
    """A SymPy expression for one scalar answer; raises Unparsable. Plain text: the whitelisting parser. LaTeX:
    the same parser when it is within its small LaTeX subset (`\\frac`, `\\sqrt`, `\\pi`, `\\cdot`, functions;
    several times faster than an ANTLR parse), else latex2sympy2_extended."""
    import sympy

    if not s:
        raise Unparsable("empty")
    if len(s) > MAX_ANSWER_CHARS:
        raise Unparsable(f"answer longer than {MAX_ANSWER_CHARS} characters")
    value = _exact_number(s)
    if value is not None:
        return sympy.Rational(value.numerator, value.denominator)
    s = re.sub(r"\\infty|\binfinity\b|\binf\b", "oo", s)
    if "\\" not in s:
        return parse_plain(s)
    try:
        return parse_plain(s)
    except Unparsable:
        pass
    guard_latex(s)
    try:
        from latex2sympy2_extended import latex2sympy

        expr = latex2sympy(s.replace("oo", "\\infty"))
    except Exception as exc:  # noqa: BLE001 - a LaTeX parser failure is an unparsable answer
        raise Unparsable(f"cannot parse {s[:60]!r}: {type(exc).__name__}") from None
    if isinstance(expr, (list, tuple)) or not isinstance(expr, sympy.Basic):
        raise Unparsable("not a scalar")
    return expr.subs(sympy.Symbol("i"), sympy.I)


def _exact_number(s: str) -> Fraction | None:
    """A plain number or LaTeX scientific notation with a bounded exponent as an exact Fraction, else None."""
    value = plain_number(s)
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value.adjusted()) > MAX_EXPONENT:
            return None
        return Fraction(value)
    if value is not None:
        return value
    sci = _SCI_LATEX.fullmatch(s)
    if sci and abs(int(sci.group(2))) <= MAX_EXPONENT:
        return Fraction(sci.group(1)) * Fraction(10) ** int(sci.group(2))
    return None


# ---------------------------------------------------------------- comparison of values


def numbers_equal(pred: Decimal | Fraction, gold: Decimal | Fraction) -> tuple[bool, float]:
    """Plain numbers: exactly equal when both are written exactly (integers, `a/b`), else within the tolerance
    (a decimal or scientific spelling may be a rounding), in exact decimal arithmetic (cheap for any exponent).
    Without the exact case, 1000001 would pass for 1000000 and 3793093/197120 for 3793091/197120."""
    with localcontext(DECIMAL_CONTEXT):
        a, b = _as_decimal(pred), _as_decimal(gold)
        diff = abs(a - b)
        scale = abs(b)
        tolerance = max(Decimal(str(REL_TOL)) * scale, Decimal(str(ABS_TOL)))
        err = diff / scale if scale > Decimal(str(ABS_TOL)) else diff
        if _written_exactly(pred) and _written_exactly(gold):
            return _as_fraction(pred) == _as_fraction(gold), float(err)
        return bool(diff <= tolerance), float(err)


def _written_exactly(x: Decimal | Fraction) -> bool:
    return isinstance(x, Fraction) or (x.is_finite() and x.as_tuple().exponent == 0)


def _as_fraction(x: Decimal | Fraction) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(int(x))


def _as_decimal(x: Decimal | Fraction) -> Decimal:
    if isinstance(x, Fraction):
        return Decimal(x.numerator) / Decimal(x.denominator)
    return +x


def _numeric_value(expr) -> complex | None:
    if getattr(expr, "free_symbols", None):
        return None
    try:
        return complex(expr.evalf(30))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def relative_error(pred: complex, gold: complex) -> float:
    """|pred - gold| / |gold| (absolute error when gold is 0)."""
    diff = abs(pred - gold)
    return diff / abs(gold) if abs(gold) > ABS_TOL else diff


def _close(pred: complex, gold: complex) -> bool:
    if any(math.isinf(v) for v in (pred.real, gold.real, pred.imag, gold.imag)):
        return pred == gold
    return abs(pred - gold) <= max(REL_TOL * abs(gold), ABS_TOL)


def _expressions_equal(pred, gold) -> tuple[bool, float | None]:
    """Equal as values (numbers within tolerance) or as expressions (difference simplifies to 0, confirmed
    at random points). Returns (equal, relative error when both are numbers)."""
    import sympy

    if not isinstance(pred, sympy.Basic) or not isinstance(gold, sympy.Basic):
        return pred == gold, None
    if isinstance(pred, sympy.MatrixBase) or isinstance(gold, sympy.MatrixBase):
        if not (isinstance(pred, sympy.MatrixBase) and isinstance(gold, sympy.MatrixBase)) or pred.shape != gold.shape:
            return False, None
        return all(_expressions_equal(a, b)[0] for a, b in zip(pred, gold)), None
    if pred.is_Rational and gold.is_Rational:  # exact numbers: no tolerance (see `numbers_equal`)
        return pred == gold, relative_error(complex(pred), complex(gold))
    pv, gv = _numeric_value(pred), _numeric_value(gold)
    if pv is not None and gv is not None:
        if any(math.isnan(v) for v in (pv.real, pv.imag, gv.real, gv.imag)):
            return False, None
        return _close(pv, gv), relative_error(pv, gv)
    try:
        if sympy.simplify(pred - gold) == 0:
            return True, None
    except Exception:  # noqa: BLE001 - simplify failures fall through to the numeric check
        pass
    return _agree_at_random_points(pred, gold), None


def _agree_at_random_points(pred, gold, points: int = 6) -> bool:
    """Numeric spot check: both expressions evaluated at random real points agree to the tolerance."""
    symbols = sorted(pred.free_symbols | gold.free_symbols, key=str)
    rng = random.Random(0)
    checked = 0
    for _ in range(points * 3):
        subs = {sym: rng.uniform(0.3, 2.7) for sym in symbols}
        try:
            a, b = complex(pred.evalf(20, subs=subs)), complex(gold.evalf(20, subs=subs))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            continue
        if any(math.isnan(v) or math.isinf(v) for v in (a.real, a.imag, b.real, b.imag)):
            continue
        if not _close(a, b):
            return False
        checked += 1
        if checked >= points:
            return True
    return checked > 0


def _scalars_equal(pred: str, gold: str) -> tuple[bool, float | None]:
    if pred == gold:
        return True, 0.0
    pf, gf = plain_number(pred), plain_number(gold)
    if pf is not None and gf is not None:
        return numbers_equal(pf, gf)
    return _expressions_equal(parse_scalar(pred), parse_scalar(gold))


_FLIP = {">": "<", ">=": "<="}


def _relations_equal(pred: tuple, gold: tuple) -> bool:
    """`x <= 5` ≡ `5 >= x` ≡ `-x >= -5`; equations equal up to a nonzero factor (`2x+4y-3=0` ≡ `y=-x/2+3/4`)."""
    import sympy

    def canonical(rel: tuple):
        _, op, lhs, rhs = rel
        if op in _FLIP:
            op, lhs, rhs = _FLIP[op], rhs, lhs
        return op, parse_scalar(lhs) - parse_scalar(rhs)

    (p_op, a), (g_op, b) = canonical(pred), canonical(gold)
    if p_op != g_op:
        return False
    if b == 0:
        return a == 0
    ratio = sympy.simplify(a / b)
    if not ratio.is_number or ratio == 0:
        return False
    return bool(ratio.is_positive) if p_op in ("<", "<=") else True


def value_shape(shape: tuple) -> tuple:
    """The value of an assignment `x = 3` (the shape itself otherwise)."""
    return shape[2] if shape[0] == "assign" else shape


def _unordered_equal(preds: tuple, golds: tuple, equal) -> bool:
    if len(preds) != len(golds):
        return False
    remaining = list(golds)
    for p in preds:
        for i, g in enumerate(remaining):
            if equal(p, g):
                del remaining[i]
                break
        else:
            return False
    return True


def _named_values(shape: tuple) -> dict[str, str] | None:
    """Name → value of a list of assignments, or of `(x, y) = (1, 2)`; None for any other shape."""
    if shape[0] == "assigns":
        return dict(shape[1])
    if shape[0] == "assign" and shape[2][0] == "tuple" and shape[1].startswith("("):
        names = _split_top_level(shape[1][1:-1])
        return dict(zip(names, shape[2][2])) if len(names) == len(shape[2][2]) else None
    return None


def _assignments_equal(pred: tuple, gold: tuple) -> bool:
    """A list of assignments against named values (another list, `(x, y) = (1, 2)`): the same value for each name,
    in any order. Against unnamed values — a tuple `(1, 2)`, a bare list `1, 2`, a vector — the values in the order
    written, so `x = 2, y = 1` is not `(1, 2)` (the strict policy also asks for the names in alphabetical order
    there: see `strict_issue`)."""
    named_pred, named_gold = _named_values(pred), _named_values(gold)
    if named_pred is not None and named_gold is not None:
        return named_pred.keys() == named_gold.keys() and all(
            _scalars_equal(named_pred[k], named_gold[k])[0] for k in named_gold)
    assigns, other = (pred, gold) if pred[0] == "assigns" else (gold, pred)
    values = tuple(value for _, value in assigns[1])
    if other[0] == "matrix":
        return _matrix_equals_list(other, ("tuple", "(", values, ")"))
    if other[0] == "tuple" and other[1] == "(" and other[3] == ")":
        items = other[2]
    elif other[0] == "set":
        items, values = other[1], _unique(list(values))
    else:
        return False
    return _rows_equal((values,), (items,))


def _rows_equal(pred_rows: tuple, gold_rows: tuple) -> bool:
    """Two tables of scalars (matrix rows, or one row of values) of the same shape, entry by entry."""
    if len(pred_rows) != len(gold_rows) or any(len(a) != len(b) for a, b in zip(pred_rows, gold_rows)):
        return False
    return all(_scalars_equal(a, b)[0] for ra, rb in zip(pred_rows, gold_rows) for a, b in zip(ra, rb))


def _matrix_equals_list(matrix: tuple, other: tuple) -> bool:
    """A matrix against a bracketed list (lenient and strict alike: the same entries in the same places): a list of
    rows `[[1, 2], [3, 4]]` row by row; a flat `(1, 2)` or `[1, 2]` against a column or a row vector."""
    if other[0] != "tuple":
        return False
    rows = matrix[1]
    items = [structure(item) for item in other[2]]
    if all(item[0] == "tuple" for item in items):
        return _rows_equal(rows, tuple(item[2] for item in items))
    if len(rows) == 1 or all(len(row) == 1 for row in rows):
        return _rows_equal((tuple(cell for row in rows for cell in row),), (other[2],))
    return False


def _structures_equal(pred: tuple, gold: tuple) -> tuple[bool, float | None]:
    if pred[0] == "assigns" or gold[0] == "assigns":
        return _assignments_equal(pred, gold), None
    if pred[0] == "assign" or gold[0] == "assign":
        if pred[0] == gold[0]:
            return _structures_equal(pred[2], gold[2])
        assign, other = (pred, gold) if pred[0] == "assign" else (gold, pred)
        if other[0] == "relation" and other[1] == "=" and assign[2][0] == "scalar":
            return _relations_equal(("relation", "=", assign[1], assign[2][1]), other), None
        return _structures_equal(value_shape(pred), value_shape(gold))
    kind = gold[0]
    if kind == "scalar" and pred[0] == "scalar":
        return _scalars_equal(pred[1], gold[1])
    if kind in ("text", "choice") or pred[0] in ("text", "choice"):
        return pred == gold, None
    if kind == "relation" or pred[0] == "relation":
        return (kind == pred[0] and _relations_equal(pred, gold)), None
    if kind == "set" and pred[0] in ("set", "tuple") and (pred[0] == "set" or pred[1] == "("):
        items = pred[1] if pred[0] == "set" else _unique(list(pred[2]))
        return _unordered_equal(items, gold[1], lambda a, b: _scalars_equal(a, b)[0]), None
    if kind == "tuple" and pred[0] == "tuple":
        if pred[1] != gold[1] or pred[3] != gold[3] or len(pred[2]) != len(gold[2]):
            return False, None
        return all(_scalars_equal(a, b)[0] for a, b in zip(pred[2], gold[2])), None
    if kind == "union" and pred[0] == "union":
        return _unordered_equal(pred[1], gold[1], lambda a, b: _structures_equal(a, b)[0]), None
    if kind == "matrix" and pred[0] == "matrix":
        return _rows_equal(pred[1], gold[1]), None
    if kind == "matrix" or pred[0] == "matrix":
        return (_matrix_equals_list(gold, pred) if kind == "matrix" else _matrix_equals_list(pred, gold)), None
    return False, None


# ---------------------------------------------------------------- the strict policy


def _compact(s: str) -> str:
    return re.sub(r"[\s{}]|\\left|\\right", "", s.lower()).replace("**", "^").replace("\\cdot", "*").replace("\\times", "*")


def _is_numeric(s: str) -> bool:
    if plain_number(s) is not None or _exact_number(s) is not None:
        return True
    try:
        return not parse_scalar(s).free_symbols
    except Unparsable:
        return False


def _scalar_issue(pred: str, gold: str) -> str | None:
    """Why a scalar answer is not final for this gold (numeric golds need a number in final form)."""
    if not _is_numeric(gold) or plain_number(pred) is not None and "/" not in pred:
        return None
    if _exact_number(pred) is not None and "/" not in pred:
        return None
    try:
        tree = parse_tree(pred)
    except Unparsable:
        return "not a number in final form"
    issue = final_form_issue(tree)
    if issue is None:
        return None
    try:
        gold_tree = parse_tree(gold)
    except Unparsable:
        return issue
    if final_form_issue(gold_tree) is not None and tree_size(tree) <= tree_size(gold_tree):
        return None  # a transcendental value (sin(4) - 4*cos(4), e^2): no longer than SymPy's own spelling of it
    return issue


def strict_issue(pred: str, pred_shape: tuple, gold: str, gold_shape: tuple, question: str, form: str) -> str | None:
    """None when the answer is acceptable under the strict policy, else why it is not final."""
    pred_shape, gold_shape = value_shape(pred_shape), value_shape(gold_shape)
    compact = _compact(pred)
    if question and len(compact) >= 3 and plain_number(pred) is None and compact in _compact(normalize(question)):
        return "restates the question"
    if pred_shape[0] == "scalar" and gold_shape[0] == "scalar":
        issue = _scalar_issue(pred_shape[1], gold_shape[1])
        if issue or form in ("", "value"):
            return issue
        return _form_issue(pred_shape[1], gold_shape[1], form)
    issue = _names_order_issue(pred_shape, gold_shape)
    if issue:
        return issue
    preds, golds = _listed_values(pred_shape), _listed_values(gold_shape)
    if preds is not None and golds is not None:
        numeric = all(_is_numeric(g) for g in golds)
        for item in preds if numeric else ():
            issue = _scalar_issue(item, golds[0])
            if issue:
                return issue
    return None


def _listed_values(shape: tuple) -> tuple | None:
    """The values of a set, a tuple or a list of assignments, in the order written; None for any other shape."""
    if shape[0] in ("set", "tuple"):
        return shape[1] if shape[0] == "set" else shape[2]
    return tuple(value for _, value in shape[1]) if shape[0] == "assigns" else None


def _names_order_issue(pred_shape: tuple, gold_shape: tuple) -> str | None:
    """Strict: a list of assignments answers (or is answered by) unnamed values — a tuple, a bare list, a vector —
    only when its names are in alphabetical order (`x = 1, y = 2` for `(1, 2)`). The lenient policy pairs values in
    the order written, but a training reward must not depend on that guess: `b = 3, m = 2` against `(2, 3)` may mean
    (m, b) or may be wrong, and an alphabetical list is the one order a tuple of unknowns conventionally follows."""
    for shape, other in ((pred_shape, gold_shape), (gold_shape, pred_shape)):
        if shape[0] == "assigns" and other[0] in ("tuple", "set", "matrix"):
            names = [name for name, _ in shape[1]]
            if names != sorted(names, key=_natural_key):
                return "assignments not in alphabetical order against unnamed values"
    return None


def _natural_key(name: str) -> list:
    """Sort key reading digit runs as numbers, so `x_2` comes before `x_10`."""
    return [(1, int(part), "") if part.isdigit() else (0, 0, part) for part in re.split(r"(\d+)", name)]


def _form_issue(pred: str, gold: str, form: str) -> str | None:
    """The required form of a factor / expand / simplify task."""
    import sympy

    try:
        tree = parse_tree(pred)
    except Unparsable:
        return None  # LaTeX beyond the plain subset: judged by value alone
    if form == "expanded":
        return None if is_expanded(tree) else "not expanded"
    if form == "factored":
        factors = product_factors(tree)
        written = sum(k for node, k in factors if tree_has_symbols(node))
        _, irreducible = sympy.factor_list(parse_scalar(pred))
        needed = sum(k for _, k in irreducible)
        return None if written >= needed else "not factored completely"
    if form == "simplified":
        try:
            gold_size = tree_size(parse_tree(gold))
        except Unparsable:
            return None
        return None if tree_size(tree) <= gold_size + 2 else "not simplified"
    return None


# ---------------------------------------------------------------- entry points


_WORDLESS = re.compile(r"[\d\s.,/+\-*^()\[\]]{1,200}")


@lru_cache(maxsize=4096)
def _holds_several(gold: str) -> bool:
    """Whether the gold holds several values (a set or list of two or more, a tuple, a system's solution, a union), so
    that values joined by "or" are its members rather than rival answers. A matrix is one answer."""
    try:
        shape = value_shape(structure(normalize(gold)))
    except Exception:  # noqa: BLE001 - an odd gold is one value; its own comparison reports what is wrong with it
        return False
    return len(shape[1]) > 1 if shape[0] == "set" else shape[0] in ("tuple", "assigns", "union")


def _uncommitted(pred: str, gold: str, statement: FinalStatement | list | None, start: float) -> Judgement | None:
    """The one check both paths (`fast_compare`, `compare_inline`) make first: a final answer that is not committed
    (see `commitment`) gets verdict `hedged`, under both policies. `statement` is the final statement the answer was
    read from (`extract.extract_final`), else `pred` alone is the statement."""
    if not statement and _WORDLESS.fullmatch(pred):
        return None  # digits and operators alone (`42`, `-1/2`, `(1, 2)`) cannot hedge
    final = FinalStatement.of(statement) if statement else answer_statement(pred)
    issue = commitment_issue(final, gold, several=_holds_several(gold))
    if issue is None:
        return None
    return Judgement(False, Verdict.HEDGED, None, time.perf_counter() - start, issue)


def compare_inline(pred: str, gold: str, policy: str = "lenient", question: str = "", form: str = "",
                   statement: FinalStatement | list | None = None) -> Judgement:
    """The comparison itself, in this thread, with no deadline (the sandbox enforces one)."""
    start = time.perf_counter()
    try:
        if pred is None or not str(pred).strip():
            return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start, "empty answer")
        hedged = _uncommitted(str(pred), gold, statement, start)
        if hedged is not None:
            return hedged
        p, g = normalize(pred), normalize(gold)
        ps, gs = structure(p), structure(g)
        if policy == "strict":
            issue = strict_issue(p, ps, g, gs, question, form)
            if issue:
                return Judgement(False, Verdict.NOT_FINAL, None, time.perf_counter() - start, issue)
        if p == g:
            return Judgement(True, Verdict.CORRECT, 0.0, time.perf_counter() - start)
        equal, err = _structures_equal(ps, gs)
        return Judgement(bool(equal), Verdict.CORRECT if equal else Verdict.WRONG, err, time.perf_counter() - start)
    except Unparsable as exc:
        return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start, str(exc)[:200])
    except RecursionError:
        return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start, "recursion limit")
    except Exception as exc:  # noqa: BLE001 - a SymPy bug on odd input is an unparsable answer, never a crash
        return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start,
                         f"{type(exc).__name__}: {exc}"[:200])


def fast_compare(pred: str | None, gold: str, policy: str = "lenient",
                 statement: FinalStatement | None = None) -> Judgement | None:
    """Decide empty, oversized, uncommitted (`hedged`), identical and plain-number pairs without SymPy; None when
    SymPy is needed."""
    start = time.perf_counter()
    if pred is None or not str(pred).strip():
        return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start, "empty answer")
    if len(pred) > MAX_RAW_CHARS or len(gold) > MAX_RAW_CHARS:
        return Judgement(False, Verdict.UNPARSABLE, None, time.perf_counter() - start, "answer too long")
    hedged = _uncommitted(pred, gold, statement, start)
    if hedged is not None:
        return hedged
    p, g = normalize(pred), normalize(gold)
    pf, gf = plain_number(p), plain_number(g)
    if pf is None or gf is None:
        if p == g and policy != "strict":
            return Judgement(True, Verdict.CORRECT, 0.0, time.perf_counter() - start)
        return None
    if policy == "strict" and isinstance(pf, Fraction):
        num, den = (int(x) for x in p.replace(" ", "").split("/"))
        if den < 2 or math.gcd(num, den) != 1:
            return Judgement(False, Verdict.NOT_FINAL, None, time.perf_counter() - start,
                             "fraction not in lowest terms")
    equal, err = numbers_equal(pf, gf)
    return Judgement(equal, Verdict.CORRECT if equal else Verdict.WRONG, err, time.perf_counter() - start)


def compare(pred: str | None, gold: str, *, timeout: float = 2.0, policy: str = "lenient", question: str = "",
            form: str = "", statement: FinalStatement | None = None) -> Judgement:
    """Judge `pred` against `gold` within `timeout` seconds under `policy` ("lenient" or "strict"; strict
    uses `question` and the problem's required `form`). `statement`: the final statement `pred` was read from
    (`extract.extract_final`), judged for commitment in its place (see `commitment`). Never raises, never hangs."""
    start = time.perf_counter()
    try:
        if policy not in POLICIES:
            raise ValueError(f"unknown answer policy {policy!r}; expected one of {POLICIES}")
        gold = "" if gold is None else str(gold)
        pred = None if pred is None else str(pred)
        fast = fast_compare(pred, gold, policy, statement)
        if fast is not None:
            return fast
        from verifier_pool import sandbox

        args = (pred, gold, policy, str(question or "")[:MAX_RAW_CHARS], form or "",
                statement.to_wire() if statement else None)
        if sandbox.IN_SANDBOX:
            return compare_inline(*args)
        return Judgement(**sandbox.run("compare", args, timeout=timeout))
    except Exception as exc:  # noqa: BLE001 - the contract: a verdict, never an exception
        from verifier_pool import sandbox

        if isinstance(exc, sandbox.SandboxTimeout):
            return Judgement(False, Verdict.TIMEOUT, None, time.perf_counter() - start,
                             f"over the {timeout:g}s deadline")
        return Judgement(False, Verdict.ERROR, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])


def answer_classes(answers: list[str | None], *, timeout: float = 2.0) -> list[int | None]:
    """Each answer's class of SymPy-equal answers (lenient: `0.5` and `\\frac12` share one), numbered in order of
    first appearance; None for a missing answer. Each answer is compared with the first member of every class so
    far, under the verifier's deadline."""
    leaders: list[str] = []
    out: list[int | None] = []
    for answer in answers:
        if answer is None or not str(answer).strip():
            out.append(None)
            continue
        found = next((i for i, lead in enumerate(leaders) if answers_match(answer, lead, timeout=timeout)), None)
        if found is None:
            leaders.append(str(answer))
            found = len(leaders) - 1
        out.append(found)
    return out


def answers_match(pred: str | None, gold: str, *, timeout: float = 2.0, policy: str = "lenient") -> bool:
    """True when `pred` equals `gold` (see `compare`)."""
    return compare(pred, gold, timeout=timeout, policy=policy).equal
