"""SymPy tools for an LLM (solve, simplify, integrate, diff, evaluate) whose arguments are untrusted text.

Arguments are parsed by the whitelisting parser (`verifier_pool.parse`), never evaluated, and the tools run
in the verifier's sandbox (`sandbox.run("tool", (name, arguments_json), timeout=…)`), so a hanging
`integrate` is killed at its deadline and nothing the model writes reaches the caller's process except
the rendered result string.
"""
from __future__ import annotations

import json
import re

from verifier_pool.parse import Unparsable, parse_plain

TOOL_SPECS = {
    "solve": ("Solve an equation for a variable; returns the list of solutions.",
              {"equation": "an equation like '2*x + 3 = 11' (or an expression equal to 0)", "variable": "e.g. 'x'"}),
    "simplify": ("Simplify an expression.", {"expression": "a SymPy expression"}),
    "integrate": ("Integrate an expression; give lower and upper for a definite integral.",
                  {"expression": "integrand", "variable": "e.g. 'x'", "lower": "optional", "upper": "optional"}),
    "diff": ("Differentiate an expression.", {"expression": "a SymPy expression", "variable": "e.g. 'x'"}),
    "evaluate": ("Evaluate an expression exactly.", {"expression": "a SymPy expression, e.g. '3/4 + 5/6'"}),
}
MAX_ARGUMENTS_CHARS = 2_000
_VARIABLE = re.compile(r"[A-Za-z](?:_[A-Za-z0-9]{1,4})?")


class ToolError(ValueError):
    """A tool call we could not execute (bad JSON, unknown tool, unparsable or refused expression)."""


def exact(value):
    """`sympy.nsimplify(value)`, except that a rational stays as it is: SymPy 1.14 rewrites some exact rationals
    as products of radicals (1374/19 becomes 42*2^(9/34)*…/5)."""
    import sympy as sp

    if isinstance(value, (int, float)):
        value = sp.Integer(value) if isinstance(value, int) else sp.Float(value)
    return value if getattr(value, "is_Rational", False) else sp.nsimplify(value)


def render(value) -> str:
    """A SymPy value (or a tuple/set of them) as a string our verifier parses: integers, p/q, `^` powers,
    {sets}, (tuples)."""
    import sympy as sp

    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(render(v) for v in sorted(value, key=sp.default_sort_key)) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(render(v) for v in value) + ")"
    if isinstance(value, float):
        value = exact(value)
    elif isinstance(value, int):
        value = sp.Integer(value)
    if not isinstance(value, sp.Basic):
        raise TypeError(f"cannot render {type(value).__name__}")
    return sp.sstr(value).replace("**", "^")


def _expression(text) -> object:
    if not isinstance(text, str) or not text.strip():
        raise ToolError("expected a non-empty expression string")
    try:
        return parse_plain(text.strip())
    except Unparsable as exc:
        raise ToolError(f"cannot parse {text[:80]!r}: {exc}") from None


def _variable(args: dict):
    import sympy as sp

    name = str(args.get("variable") or "x").strip()
    if not _VARIABLE.fullmatch(name):
        raise ToolError(f"a variable is one letter (optionally _subscript), got {name[:20]!r}")
    return sp.Symbol(name)


def run_tool(name: str, arguments: str) -> str:
    """Execute one tool call with SymPy and return the rendered result; raises ToolError on bad input."""
    import sympy as sp

    if not isinstance(arguments, str) or len(arguments) > MAX_ARGUMENTS_CHARS:
        raise ToolError("arguments must be a JSON string of at most 2000 characters")
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        raise ToolError(f"arguments are not JSON: {arguments[:80]!r}") from None
    if not isinstance(args, dict):
        raise ToolError("arguments must be a JSON object")
    if name not in TOOL_SPECS:
        raise ToolError(f"unknown tool {str(name)[:40]!r}")
    variable = _variable(args)
    if name == "solve":
        equation = str(args.get("equation", ""))
        lhs, _, rhs = equation.partition("=")
        solutions = sp.solve(sp.Eq(_expression(lhs), _expression(rhs)) if rhs.strip() else _expression(lhs), variable)
        if not solutions:
            raise ToolError("no solution")
        return render(solutions[0] if len(solutions) == 1 else frozenset(solutions))
    if name == "simplify":
        return render(sp.simplify(_expression(args.get("expression"))))
    if name == "integrate":
        expr = _expression(args.get("expression"))
        if args.get("lower") not in (None, "") and args.get("upper") not in (None, ""):
            bounds = (variable, _expression(str(args["lower"])), _expression(str(args["upper"])))
            return render(sp.simplify(sp.integrate(expr, bounds)))
        return render(sp.integrate(expr, variable))
    if name == "diff":
        return render(sp.diff(_expression(args.get("expression")), variable))
    return render(exact(_expression(args.get("expression")).doit()))
