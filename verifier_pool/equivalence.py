"""Is a predicted answer equal to the gold one? Normalise, split into structure, parse with SymPy, compare.

`compare` is safe to call from any thread or Ray actor: plain numbers are decided in-process in
microseconds; anything that needs SymPy runs in a sandbox subprocess that is killed at its deadline.
"""
from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from verifier_pool.normalize import normalize

REL_TOL = 1e-6
ABS_TOL = 1e-9
MAX_ANSWER_CHARS = 400
MAX_EXPONENT = 2_000
MAX_FACTORIAL = 2_000
_REL_TOL_EXACT = Fraction(str(REL_TOL))
_ABS_TOL_EXACT = Fraction(str(ABS_TOL))
VERDICTS = ("correct", "wrong", "unparsable", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    """The judgement on one (pred, gold) pair; `relative_error` is set when both sides are numbers."""

    equal: bool
    verdict: str
    relative_error: float | None = None
    seconds: float = 0.0
    reason: str = ""


class Unparsable(ValueError):
    """The answer string cannot be turned into a SymPy object (or was refused by a guard)."""


# ---------------------------------------------------------------- structure

_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_SCI_LATEX = re.compile(r"^([-+]?\d+\.?\d*)\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$")
_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^}]*\})?(.*?)\\end\{\1\}", re.S)


def _plain_number(s: str) -> Fraction | None:
    """Exact value of a plain decimal / scientific / a/b string, else None (no SymPy needed)."""
    s = s.replace(" ", "")
    if _NUMBER.match(s):
        return Fraction(s)
    sci = _SCI_LATEX.match(s)
    if sci:
        return Fraction(sci.group(1)) * Fraction(10) ** int(sci.group(2))
    if s.count("/") == 1:
        num, den = s.split("/")
        if re.fullmatch(r"[-+]?\d+", num) and re.fullmatch(r"\d+", den) and int(den) != 0:
            return Fraction(int(num), int(den))
    return None


def _split_top_level(s: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets and braces."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if depth == 0 and s.startswith(sep, i):
            parts.append("".join(cur))
            cur, i = [], i + len(sep)
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth < 0:
            return False
    return depth == 0


def structure(s: str) -> tuple:
    """Parse the shape of a normalised answer: ("scalar", s), ("set", [..]), ("tuple", open, [..], close),
    ("union", [intervals]), ("matrix", [[..]]), ("choice", letter) or ("text", s)."""
    s = s.strip()
    if s.startswith("choice:"):
        return ("choice", s[7:])
    m = _MATRIX.search(s)
    if m:
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        return ("matrix", tuple(tuple(c.strip() for c in r.split("&")) for r in rows))
    if "\\cup" in s:
        return ("union", tuple(structure(p) for p in s.split("\\cup")))
    if s.startswith("\\{") and s.endswith("\\}"):
        return ("set", tuple(_split_top_level(s[2:-2])))
    if s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]) and "," in s:
        return ("set", tuple(_split_top_level(s[1:-1])))
    if s[:1] in "([" and s[-1:] in ")]" and _balanced(s[1:-1]):
        items = _split_top_level(s[1:-1])
        if len(items) > 1:
            return ("tuple", s[0], tuple(items), s[-1])
    items = _split_top_level(s)
    if len(items) > 1 and all(items):
        return ("set", tuple(items))
    if re.fullmatch(r"[A-Za-z][A-Za-z ]{2,}", s) and s.lower() not in _WORD_CONSTANTS:
        return ("text", s.lower())
    return ("scalar", s)


_WORD_CONSTANTS = {"pi", "inf", "infty", "oo", "sqrt"}


# ---------------------------------------------------------------- guarded parsing

_FACTORIAL = re.compile(r"(\d+)\s*!")


def _exponents(s: str) -> list[tuple[str, bool]]:
    """Each exponent in `s` (after `^` or `**`) and whether another power follows it directly (a tower)."""
    found = []
    for m in re.finditer(r"\^|\*\*", s):
        i = m.end()
        while i < len(s) and s[i] == " ":
            i += 1
        if i < len(s) and s[i] in "{(":
            close = "}" if s[i] == "{" else ")"
            depth, j = 0, i
            while j < len(s):
                depth += s[j] == s[i]
                depth -= s[j] == close
                if depth == 0:
                    break
                j += 1
            body, rest = s[i + 1 : j], s[j + 1 :]
        else:
            tok = re.match(r"-?[\w.]*", s[i:]).group(0)
            body, rest = tok, s[i + len(tok) :]
        found.append((body, bool(re.match(r"\s*(?:\^|\*\*)", rest))))
    return found


def guard(s: str) -> None:
    """Refuse inputs SymPy could spend unbounded time on: very long strings, exponent towers,
    huge integer exponents and factorials."""
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
        if int(m.group(1)) > MAX_FACTORIAL:
            raise Unparsable("factorial too large")
    if not _balanced(s.replace("\\{", "").replace("\\}", "")):
        raise Unparsable("unbalanced brackets")


@lru_cache(maxsize=4096)
def parse_scalar(s: str):
    """A SymPy expression for one scalar answer (LaTeX or plain text); raises Unparsable."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor, implicit_multiplication_application, parse_expr, standard_transformations,
    )

    guard(s)
    if not s:
        raise Unparsable("empty")
    value = _plain_number(s)
    if value is not None:
        return sympy.Rational(value.numerator, value.denominator)
    s_inf = re.sub(r"\\infty|\binfinity\b|\binf\b", "oo", s)
    looks_latex = "\\" in s or "{" in s
    errors = []
    if not looks_latex:
        try:
            text = re.sub(r"(?<![\w.])(\d+)!", r"factorial(\1)", s_inf)
            text = re.sub(r"\bln\b", "log", text)
            return parse_expr(
                text,
                transformations=standard_transformations + (convert_xor, implicit_multiplication_application),
                local_dict={"e": sympy.E, "pi": sympy.pi, "i": sympy.I, "oo": sympy.oo, "E": sympy.E},
                evaluate=True,
            )
        except Exception as exc:  # noqa: BLE001 - any parser failure means "try the other parser"
            errors.append(exc)
    try:
        from latex2sympy2_extended import latex2sympy

        expr = latex2sympy(s.replace("oo", "\\infty"))
        if isinstance(expr, (list, tuple)):
            raise Unparsable("not a scalar")
        return expr.subs(sympy.Symbol("i"), sympy.I) if isinstance(expr, sympy.Basic) else expr
    except Unparsable:
        raise
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)
    raise Unparsable(f"cannot parse {s[:60]!r}: {errors[-1]!r}")


# ---------------------------------------------------------------- comparison of parsed values


def _numeric_value(expr) -> complex | None:
    if getattr(expr, "free_symbols", None):
        return None
    try:
        value = complex(expr.evalf(30))
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return value


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

    if isinstance(pred, sympy.Eq) or isinstance(gold, sympy.Eq):
        if isinstance(pred, sympy.Eq) and isinstance(gold, sympy.Eq):
            a, b = pred.lhs - pred.rhs, gold.lhs - gold.rhs
            if b == 0:
                return a == 0, None
            ratio = sympy.simplify(a / b)
            return bool(ratio.is_number and ratio != 0), None
        return False, None
    if not isinstance(pred, sympy.Basic) or not isinstance(gold, sympy.Basic):
        return pred == gold, None
    if isinstance(pred, sympy.MatrixBase) or isinstance(gold, sympy.MatrixBase):
        if not (isinstance(pred, sympy.MatrixBase) and isinstance(gold, sympy.MatrixBase)):
            return False, None
        if pred.shape != gold.shape:
            return False, None
        return all(_expressions_equal(a, b)[0] for a, b in zip(pred, gold)), None
    pv, gv = _numeric_value(pred), _numeric_value(gold)
    if pv is not None and gv is not None:
        if any(math.isnan(v) for v in (pv.real, pv.imag, gv.real, gv.imag)):
            return False, None
        return _close(pv, gv), relative_error(pv, gv)
    try:
        diff = sympy.simplify(pred - gold)
        if diff == 0:
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
    pf, gf = _plain_number(pred), _plain_number(gold)
    if pf is not None and gf is not None:
        return _fractions_equal(pf, gf)
    return _expressions_equal(parse_scalar(pred), parse_scalar(gold))


def _fractions_equal(pred: Fraction, gold: Fraction) -> tuple[bool, float]:
    err = abs(pred - gold) / abs(gold) if gold != 0 else abs(pred - gold)
    return abs(pred - gold) <= max(_REL_TOL_EXACT * abs(gold), _ABS_TOL_EXACT), float(err)


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


def _structures_equal(pred: tuple, gold: tuple) -> tuple[bool, float | None]:
    kind = gold[0]
    if kind == "scalar" and pred[0] == "scalar":
        return _scalars_equal(pred[1], gold[1])
    if kind == "text" or pred[0] == "text":
        return pred == gold, None
    if kind == "choice" or pred[0] == "choice":
        return pred == gold, None
    if kind == "set" and pred[0] in ("set", "tuple") and (pred[0] == "set" or pred[1] == "("):
        items = pred[1] if pred[0] == "set" else pred[2]
        return _unordered_equal(items, gold[1], lambda a, b: _scalars_equal(a, b)[0]), None
    if kind == "tuple" and pred[0] == "tuple":
        if pred[1] != gold[1] or pred[3] != gold[3] or len(pred[2]) != len(gold[2]):
            return False, None
        return all(_scalars_equal(a, b)[0] for a, b in zip(pred[2], gold[2])), None
    if kind == "union" and pred[0] == "union":
        return _unordered_equal(pred[1], gold[1], lambda a, b: _structures_equal(a, b)[0]), None
    if kind == "matrix" and pred[0] == "matrix":
        if len(pred[1]) != len(gold[1]) or any(len(a) != len(b) for a, b in zip(pred[1], gold[1])):
            return False, None
        return all(_scalars_equal(a, b)[0] for ra, rb in zip(pred[1], gold[1]) for a, b in zip(ra, rb)), None
    return False, None


def compare_inline(pred: str, gold: str) -> Verdict:
    """The comparison itself, in this thread, with no deadline (the sandbox enforces one)."""
    start = time.perf_counter()
    try:
        if pred is None or not str(pred).strip():
            return Verdict(False, "unparsable", None, time.perf_counter() - start, "empty answer")
        p, g = normalize(pred), normalize(gold)
        equal, err = _structures_equal(structure(p), structure(g))
        return Verdict(bool(equal), "correct" if equal else "wrong", err, time.perf_counter() - start)
    except Unparsable as exc:
        return Verdict(False, "unparsable", None, time.perf_counter() - start, str(exc)[:200])
    except RecursionError:
        return Verdict(False, "unparsable", None, time.perf_counter() - start, "recursion limit")
    except Exception as exc:  # noqa: BLE001 - a SymPy bug on odd input is an unparsable answer, never a crash
        return Verdict(False, "unparsable", None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:200])


def fast_compare(pred: str, gold: str) -> Verdict | None:
    """Decide plain-number pairs without SymPy; None when SymPy is needed."""
    start = time.perf_counter()
    if pred is None or not str(pred).strip():
        return Verdict(False, "unparsable", None, time.perf_counter() - start, "empty answer")
    if len(pred) > 4 * MAX_ANSWER_CHARS:
        return Verdict(False, "unparsable", None, time.perf_counter() - start, "answer too long")
    p, g = normalize(pred), normalize(gold)
    pf, gf = _plain_number(p), _plain_number(g)
    if pf is None or gf is None:
        return None
    equal, err = _fractions_equal(pf, gf)
    return Verdict(equal, "correct" if equal else "wrong", err, time.perf_counter() - start)


def compare(pred: str | None, gold: str, *, timeout: float = 2.0) -> Verdict:
    """Judge `pred` against `gold` within `timeout` seconds; never raises, never hangs."""
    fast = fast_compare(pred, gold)
    if fast is not None:
        return fast
    from verifier_pool import sandbox

    if sandbox.IN_SANDBOX:
        return compare_inline(pred, gold)
    start = time.perf_counter()
    try:
        return Verdict(**sandbox.run("compare", (pred, gold), timeout=timeout))
    except sandbox.SandboxTimeout:
        return Verdict(False, "timeout", None, time.perf_counter() - start, f"over the {timeout:g}s deadline")
    except (sandbox.SandboxDied, RuntimeError) as exc:
        return Verdict(False, "error", None, time.perf_counter() - start, str(exc)[:200])


def answers_match(pred: str | None, gold: str, *, timeout: float = 2.0) -> bool:
    """True when `pred` equals `gold` (see `compare`)."""
    return compare(pred, gold, timeout=timeout).equal
