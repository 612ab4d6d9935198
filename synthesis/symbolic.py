"""A problem's symbolic form: the quantities it gives, the unknowns and constraints that tie them, the target it
asks for, and the words it is realised in. SymPy derives the answer from the form, so a teacher can change the
form (`synthesis.operators`) and get a new problem whose answer is computed, never guessed.

Every expression in a form is text in the verifier's own grammar (`verifier_pool.parse`: single-letter names,
`+ - * / ^`, brackets): a form from an LLM teacher is read by the same whitelisting parser as a model's answer,
never by `sympify`. Quantities are integers with the range an operator may move them in; an equation's sides
and the target may use any quantity and unknown.

Four styles say how the words are realised:

- `expression`: `text` holds `{expr}`, the target with the quantities' values written in ("What is {expr}?");
- `equation`: `text` holds `{equations}`, the constraints with values substituted and expanded
  ("Solve for x: {equations}.");
- `roots`: like `equation`, and the answer is the set of real solutions of the one unknown;
- `story`: `text` is the question with `{name}` where a quantity's value goes and `{slot}` for names, objects
  and units (`slots`); `source` is the SymPy source of the fact with the same placeholders (the fact key's
  spelling, see `synthesis.problem.fact_key`).
"""
from __future__ import annotations

import dataclasses
import json
import operator
import re
from dataclasses import dataclass, field

import sympy as sp

from verifier_pool.parse import Unparsable, parse_tree, to_sympy
from verifier_pool.tools import exact, render

NAMES = "abcdfghjkmnpqrstuvw"  # quantity names: one letter each, none the parser reads as a constant
UNKNOWNS = "xyz"
STYLES = ("expression", "equation", "roots", "story")
RELATIONS = {"=": sp.Eq, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}
MAX_ANSWER = 10**12


class IllPosed(ValueError):
    """The form has no unique answer, or its answer breaks a constraint, a range or integrality."""


@dataclass(frozen=True)
class Quantity:
    """A given number: its name in the form's expressions, its value, and the range an operator may move it in."""

    name: str
    value: int
    low: int
    high: int


@dataclass(frozen=True)
class Relation:
    """`lhs op rhs` with op one of = < <= > >=; an equation ties unknowns, an inequality keeps the answer sensible."""

    lhs: str
    op: str
    rhs: str


@dataclass(frozen=True)
class Symbolic:
    """A problem as variables, constraints and a target, with what its words need (see the module docstring).
    `target` holds one expression, or several for a tuple answer; `structure` names the template and the
    operators that made it (what the teacher counts as novelty)."""

    style: str
    target: tuple[str, ...]
    quantities: tuple[Quantity, ...] = ()
    unknowns: tuple[str, ...] = ()
    constraints: tuple[Relation, ...] = ()
    integral: bool = False
    text: str = ""
    slots: dict = field(default_factory=dict)
    source: str = ""
    structure: str = ""

    def to_dict(self) -> dict:
        """Plain JSON data (lists, not tuples), equal to what a JSON round trip gives back."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "Symbolic":
        """A form from stored or untrusted data: fields typed and checked, expressions parsed (never evaluated)."""
        try:
            form = cls(style=str(data["style"]), target=tuple(str(t) for t in data["target"]),
                       quantities=tuple(Quantity(str(q["name"]), int(q["value"]), int(q["low"]), int(q["high"]))
                                        for q in data.get("quantities", ())),
                       unknowns=tuple(str(u) for u in data.get("unknowns", ())),
                       constraints=tuple(Relation(str(r["lhs"]), str(r["op"]), str(r["rhs"]))
                                         for r in data.get("constraints", ())),
                       integral=bool(data.get("integral", False)), text=str(data.get("text", "")),
                       slots={str(k): str(v) for k, v in dict(data.get("slots", {})).items()},
                       source=str(data.get("source", "")), structure=str(data.get("structure", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IllPosed(f"not a symbolic form: {exc}") from None
        check_form(form)
        return form

    def values(self) -> dict[str, int]:
        return {q.name: q.value for q in self.quantities}

    def with_values(self, values: dict[str, int]) -> "Symbolic":
        return dataclasses.replace(self, quantities=tuple(dataclasses.replace(q, value=values.get(q.name, q.value))
                                                          for q in self.quantities))


def check_form(form: Symbolic) -> None:
    """Raise IllPosed unless the form is well formed: a known style, names the grammar reads as symbols, values in
    their ranges, every expression parsable and free of names the form does not declare."""
    if form.style not in STYLES:
        raise IllPosed(f"unknown style {form.style!r}; expected one of {STYLES}")
    names = [q.name for q in form.quantities]
    if len(set(names)) != len(names) or any(n not in NAMES for n in names):
        raise IllPosed(f"quantity names must be distinct letters from {NAMES!r}")
    if any(u not in UNKNOWNS for u in form.unknowns) or not form.target:
        raise IllPosed(f"unknowns must be letters from {UNKNOWNS!r}, and a target is needed")
    if any(not q.low <= q.value <= q.high or abs(q.value) > MAX_ANSWER for q in form.quantities):
        raise IllPosed("a quantity lies outside its range")
    if any(r.op not in RELATIONS for r in form.constraints):
        raise IllPosed(f"relations must be one of {sorted(RELATIONS)}")
    declared = set(names) | set(form.unknowns)
    for text in [*form.target, *(s for r in form.constraints for s in (r.lhs, r.rhs))]:
        free = {str(s) for s in parsed(text).free_symbols}
        if not free <= declared:
            raise IllPosed(f"undeclared names {sorted(free - declared)} in {text[:60]!r}")


def parsed(text: str):
    """An expression of a form as SymPy, through the verifier's parser; IllPosed when it does not parse."""
    try:
        return to_sympy(parse_tree(text))
    except (Unparsable, RecursionError) as exc:
        raise IllPosed(f"cannot parse {text[:60]!r}: {exc}") from None


def _substituted(form: Symbolic, text: str):
    values = {sp.Symbol(n): sp.Integer(v) for n, v in form.values().items()}
    return parsed(text).xreplace(values)


def derive_answer(form: Symbolic):
    """The answer SymPy derives from the form: a value, a tuple of values, or (`roots`) the set of real solutions.
    IllPosed when there is no unique answer, an inequality fails, the answer is not integral where the form
    needs it, or it is out of range."""
    unknowns = [sp.Symbol(u) for u in form.unknowns]
    equations = [sp.Eq(_substituted(form, r.lhs), _substituted(form, r.rhs), evaluate=False)
                 for r in form.constraints if r.op == "="]
    solution: dict = {}
    if unknowns:
        found = sp.solve(equations, unknowns, dict=True)
        if form.style == "roots":
            roots = frozenset(s[unknowns[0]] for s in found if s.get(unknowns[0]) is not None)
            if not roots or any(not r.is_real for r in roots):
                raise IllPosed("no real solutions" if not roots else "a solution is not real")
            return roots
        if len(found) != 1 or any(u not in found[0] for u in unknowns):
            raise IllPosed(f"{len(found)} solutions for {form.unknowns}; a unique one is needed")
        solution = found[0]
    for r in form.constraints:
        if r.op != "=" and RELATIONS[r.op](_substituted(form, r.lhs).xreplace(solution),
                                           _substituted(form, r.rhs).xreplace(solution)) is not sp.true:
            raise IllPosed(f"the constraint {r.lhs} {r.op} {r.rhs} fails")
    values = tuple(exact(_substituted(form, t).xreplace(solution)) for t in form.target)
    for v in values:
        if v.free_symbols or not v.is_real or abs(v) > MAX_ANSWER:
            raise IllPosed(f"the answer {v} is not a number in range")
        if form.integral and not v.is_Integer:
            raise IllPosed(f"the answer {v} is not an integer")
    return values[0] if len(values) == 1 else values


_POOL = None
MAX_FORM_CHARS = 8_000


def derive_within(form: Symbolic, timeout: float = 5.0) -> str:
    """`derive_answer` rendered, computed in a worker process that is killed at `timeout`: a form written by an LLM is
    hostile, and SymPy's `solve` has no deadline of its own. IllPosed for an ill-posed form or a timeout."""
    global _POOL
    import multiprocessing
    from concurrent.futures import TimeoutError as FutureTimeout

    from pebble import ProcessPool

    if _POOL is None or not _POOL.active:
        _POOL = ProcessPool(max_workers=1, context=multiprocessing.get_context("spawn"))
    try:
        return _POOL.schedule(_derive_rendered, args=(form.to_dict(),), timeout=timeout).result()
    except FutureTimeout:
        raise IllPosed(f"deriving the answer took longer than {timeout:g}s") from None


def _derive_rendered(data: dict) -> str:
    return render(derive_answer(Symbolic.from_dict(data)))


def form_from_json(text: str) -> Symbolic:
    """A symbolic form from untrusted JSON text (length-bounded, `json.loads`, then `Symbolic.from_dict`)."""
    if len(text) > MAX_FORM_CHARS:
        raise IllPosed(f"a symbolic form longer than {MAX_FORM_CHARS} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IllPosed(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise IllPosed("a symbolic form is a JSON object")
    return Symbolic.from_dict(data)


# ---------------------------------------------------------------- words


SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^"}  # a binary node's operator as written


def tree_text(node: tuple) -> str:
    """A syntax tree as text: binary operators spaced, every compound operand in brackets (the arithmetic
    generators' spelling, so a realised expression reads as the generated one)."""
    kind = node[0]
    if kind in ("num", "sym"):
        return node[1]
    if kind == "neg":
        return f"-{_operand(node[1])}"
    symbol = SYMBOLS.get(kind)
    if symbol is None:
        raise IllPosed(f"cannot write a {kind} node in an expression problem")
    return f"{_operand(node[1])} {symbol} {_operand(node[2])}"


def _operand(node: tuple) -> str:
    return tree_text(node) if node[0] in ("num", "sym") else f"({tree_text(node)})"


def with_values(node: tuple, values: dict[str, int]) -> tuple:
    """The tree with each quantity's name replaced by its value (negative values as a negated number)."""
    if node[0] == "sym" and node[1] in values:
        v = values[node[1]]
        return ("num", str(v)) if v >= 0 else ("neg", ("num", str(-v)))
    if node[0] in ("num", "sym", "const"):
        return node
    return (node[0], *(with_values(child, values) if isinstance(child, tuple) else child for child in node[1:]))


def realise(form: Symbolic) -> str:
    """The form in words, by its style's template."""
    if form.style == "expression":
        return fill(form.text, {"expr": expression_text(form), **form.values()})
    if form.style in ("equation", "roots"):
        return fill(form.text, {"equations": equations_text(form)})
    return fill(form.text, {**form.slots, **form.values()})


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,30})\}")


def fill(text: str, values: dict) -> str:
    """`text` with each `{name}` replaced by its value: plain substitution, no format specs or attribute access
    (the words may come from an LLM). IllPosed for a placeholder with no value."""
    def value(match: re.Match) -> str:
        if match.group(1) not in values:
            raise IllPosed(f"the words name {match.group(1)!r}, which the form does not give")
        return str(values[match.group(1)])

    if re.search(r"[{}]", PLACEHOLDER.sub("", text)):
        raise IllPosed("the words hold a brace that is not a {name} placeholder")
    return PLACEHOLDER.sub(value, text)


def missing_quantities(form: Symbolic) -> list[str]:
    """The placeholders the words must hold and do not: `{expr}` or `{equations}`, and in a story every quantity the
    target or constraints use (an answer must not hang on a number the question never states)."""
    if form.style == "expression":
        need = {"expr"} | ({str(s) for r in form.constraints for s in parsed(r.rhs).free_symbols} if form.unknowns
                           else set())
    elif form.style in ("equation", "roots"):
        need = {"equations"}
    else:
        used = {str(s) for text in [*form.target, *(t for r in form.constraints for t in (r.lhs, r.rhs))]
                for s in parsed(text).free_symbols}
        need = used & {q.name for q in form.quantities}
    return sorted(n for n in need if "{" + n + "}" not in form.text)


def expression_text(form: Symbolic) -> str:
    """The expression the words show, values written in: the target, or (solving for an unknown) the left-hand
    side of the first constraint."""
    shown = form.constraints[0].lhs if form.unknowns else form.target[0]
    return tree_text(with_values(parse_tree(shown), form.values()))


OPERATIONS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def expression_steps(form: Symbolic) -> list[str] | None:
    """The worked lines of an expression problem, as the arithmetic generators write them: every operation once its
    operands are known, left operand first (`7 + 5 = 12`). None for any other form, one with unknowns, or an
    expression with an operation other than + - * /."""
    if form.style != "expression" or form.unknowns or len(form.target) != 1:
        return None
    lines: list[str] = []

    def value(node: tuple):
        if node[0] == "num" or (node[0] == "neg" and node[1][0] == "num"):
            return to_sympy(node)
        if node[0] not in OPERATIONS:
            raise IllPosed(f"no worked line for a {node[0]} node")
        left, right = value(node[1]), value(node[2])
        result = OPERATIONS[node[0]](left, right)
        lines.append(f"{render(left)} {SYMBOLS[node[0]]} {render(right)} = {render(result)}")
        return result

    try:
        value(with_values(parse_tree(form.target[0]), form.values()))
    except (IllPosed, Unparsable, RecursionError):
        return None
    return lines


LINEAR = (Relation("a*x + b", "=", "a*s + b"),)  # the one-equation form of `linear_equations`


def equation_steps(form: Symbolic, answer) -> list[str] | None:
    """The worked lines of a linear equation or system solved for all its unknowns, as `linear_equations` writes
    them (`answer`: the derived value, or tuple of values in the order of `form.unknowns`); None for any other
    form."""
    if form.style != "equation" or form.target != form.unknowns or len(form.constraints) != len(form.unknowns):
        return None
    if len(form.unknowns) == 1:
        v = form.values()
        if form.constraints != LINEAR or form.unknowns != ("x",) or not {"a", "b", "s"} <= v.keys():
            return None
        a, b, rhs = v["a"], v["b"], v["a"] * v["s"] + v["b"]
        return [f"Subtract {b}: {a}x = {rhs} - {b} = {rhs - b}.", f"Divide by {a}: x = {render(answer)}."]
    values = answer if isinstance(answer, tuple) else (answer,)
    return ([f"Eliminate {u} between equation {i + 1} and the ones after it." for i, u in enumerate(form.unknowns[:-1])]
            + [f"{u} = {render(value)}" for u, value in reversed(list(zip(form.unknowns, values)))]
            + ["Check: every equation holds with these values."])


def worked_steps(form: Symbolic, answer) -> list[str] | None:
    """A form's worked lines where they follow from the form alone (expressions, linear equations and systems)."""
    return expression_steps(form) if form.style == "expression" else equation_steps(form, answer)


def _equations(form: Symbolic) -> list[tuple[object, object]]:
    sides = [(_substituted(form, r.lhs), _substituted(form, r.rhs)) for r in form.constraints if r.op == "="]
    return [(sp.expand(lhs), sp.expand(rhs)) for lhs, rhs in sides]


def equations_text(form: Symbolic) -> str:
    return "; ".join(f"{render(lhs)} = {render(rhs)}" for lhs, rhs in _equations(form))


def fact_source(form: Symbolic) -> str:
    """The SymPy source of the fact the form asks, spelled as the generators spell `meta["recompute"]`, so a
    modified problem and a generated one with the same fact share a `fact_key` (and a side of the split)."""
    if form.style == "expression" and not form.unknowns:
        return f"sympify('{expression_text(form)}')"
    if form.style == "expression":
        rhs = render(_substituted(form, form.constraints[0].rhs))
        return f"solve(Eq(sympify('{expression_text(form)}'), {rhs}), {', '.join(form.unknowns)})[0]"
    if form.style == "story":
        return form.source.format(**form.values())
    equations = [f"Eq({lhs}, {rhs})" for lhs, rhs in _equations(form)]
    names = ", ".join(form.unknowns)
    if form.style == "roots":
        return f"frozenset(solve({equations[0]}, {names}))"
    if len(equations) == 1 and form.target == form.unknowns:
        return f"solve({equations[0]}, {names})[0]"
    if form.target == form.unknowns:
        return f"tuple(solve([{', '.join(equations)}], [{names}])[s] for s in [{names}])"
    return f"solve([{', '.join(equations)}], [{names}], dict=True)[0][{', '.join(form.target)}]"


def expression_form(text: str, phrasing: str, ranges: list[tuple[int, int]], *, structure: str,
                    integral: bool = False) -> Symbolic:
    """The form of an arithmetic expression (our own text): each number becomes a quantity, named in order, with
    its range (`ranges[i]`, the last one repeated); `phrasing` holds `{expr}`."""
    quantities: list[Quantity] = []

    def named(node: tuple) -> tuple:
        if node[0] == "num":
            low, high = ranges[min(len(quantities), len(ranges) - 1)]
            quantities.append(Quantity(NAMES[len(quantities)], int(node[1]), low, high))
            return ("sym", quantities[-1].name)
        return node if node[0] == "sym" else (node[0], *(named(c) for c in node[1:]))

    target = tree_text(named(parse_tree(text)))
    return Symbolic("expression", (target,), tuple(quantities), text=phrasing, structure=structure, integral=integral)
