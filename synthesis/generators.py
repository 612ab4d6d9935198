"""SymPy-backed problem generators: topic × difficulty, a continuous knob d in [0, 1] per topic.

Today's levels 1 (easy), 2 (medium) and 3 (hard) are the points d = 0, 0.5 and 1 (`level_point`). Each
generator reads its structural parameters off d: numeric knobs (operand ranges, number of operations) are
interpolated linearly between their values at the three levels (`along`) and rounded stochastically
(`whole`); a generator whose levels differ in kind (one more unknown, a chain rule, a discount step) draws
level ⌊1 + 2d⌋ or the next one with the fractional part as probability (`tier`). At the level points no
extra random draw is made, so levels 1/2/3 give exactly the problems they always gave; between them the
expected number of steps grows with d. Each generator draws a symbolic representation (numbers, unknowns, an expression or equations), lets
SymPy compute the answer, and renders an English question plus a worked solution whose lines are the
computation's steps. Difficulty changes the structure (more operations, more unknowns, nesting, rules
to chain), not only the size of the numbers; `meta["steps"]` counts the solution's computed lines and
`meta["recompute"]` is a SymPy expression that recomputes the answer independently.
"""
from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable
from typing import NamedTuple

import sympy as sp

from synthesis.problem import Problem, fact_key, question_key, worked_solution
from synthesis.symbolic import Quantity, Relation, Symbolic, expression_form, fact_source, realise
from verifier_pool.tools import exact, render

x, y, z, n, k = sp.symbols("x y z n k")
NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Keiko", "Liam", "Maya",
         "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq"]
ITEMS = [("notebook", "notebooks"), ("pencil", "pencils"), ("apple", "apples"), ("ticket", "tickets"),
         ("sticker", "stickers"), ("muffin", "muffins"), ("book", "books"), ("candle", "candles")]


class Draft(NamedTuple):
    """What a generator returns before it becomes a `Problem`."""

    question: str
    answer: object  # a SymPy value, or a tuple/set of them
    steps: list[str]
    template: str
    recompute: str  # SymPy source that evaluates to the answer
    symbolic: Symbolic | None = None  # variables, constraints, target and words (`synthesis.symbolic`)


def fmt(value) -> str:
    """A number as written in a solution line."""
    return render(value)


# ------------------------------------------------------------------ the difficulty knob


def level_point(level: int) -> float:
    """Where today's level 1, 2 or 3 sits on the continuous difficulty."""
    if level not in (1, 2, 3):
        raise ValueError(f"difficulty must be 1, 2 or 3, got {level!r}")
    return (level - 1) / 2


def nearest_level(d: float) -> int:
    return int(min(3, max(1, math.floor(1 + 2 * d + 0.5))))


def along(d: float, at_levels: tuple[float, float, float]) -> float:
    """A knob's value at difficulty d: its values at levels 1, 2, 3 (d = 0, 0.5, 1), linear in between."""
    low, mid, high = at_levels
    return low + (mid - low) * d / 0.5 if d <= 0.5 else mid + (high - mid) * (d - 0.5) / 0.5


def whole(rng: random.Random, value: float) -> int:
    """`value` rounded up with probability its fractional part (no draw when it is whole)."""
    low = math.floor(value + 1e-9)
    frac = value - low
    return low if frac < 1e-9 else low + (rng.random() < frac)


def tier(rng: random.Random, d: float) -> int:
    """The structural level (1, 2, 3) to draw at difficulty d: level 1 + 2d, rounded stochastically."""
    return min(3, whole(rng, 1 + 2 * d))


# ------------------------------------------------------------------ arithmetic


_OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _expression_tree(rng: random.Random, ops: int, top: int):
    """A random expression with `ops` operators over small integers, as (text, sympy value, steps)."""
    if ops == 0:
        value = rng.randint(2, top)
        return str(value), sp.Integer(value), []
    left_ops = rng.randint(0, ops - 1)
    lt, lv, ls = _expression_tree(rng, left_ops, top)
    rt, rv, rs = _expression_tree(rng, ops - 1 - left_ops, top)
    op = rng.choice(["+", "-", "*", "/"] if rv != 0 else ["+", "-", "*"])
    value = _OPERATIONS[op](lv, rv)
    text = f"{_wrap(lt, left_ops)} {op} {_wrap(rt, ops - 1 - left_ops)}"
    return text, exact(value), ls + rs + [f"{fmt(lv)} {op} {fmt(rv)} = {fmt(value)}"]


def _wrap(text: str, ops: int) -> str:
    return f"({text})" if ops else text


MENTAL_PHRASING = "What is {expr}?"
ARITHMETIC_PHRASINGS = ("Calculate {expr}.", "What is the value of {expr}?", "Evaluate the expression {expr}.")


def arithmetic(rng: random.Random, d: float) -> Draft:
    """An expression tree: 2 → 4 → 6 operators on integers up to 20 → 50 → 99."""
    ops, top = whole(rng, along(d, (2, 4, 6))), round(along(d, (20, 50, 99)))
    text, value, steps = _expression_tree(rng, ops, top)
    phrasing = rng.randrange(len(ARITHMETIC_PHRASINGS))
    form = expression_form(text, ARITHMETIC_PHRASINGS[phrasing], [(2, top)], structure=f"arithmetic/tree/{phrasing}")
    return Draft(realise(form), value, steps, form.structure, fact_source(form), form)


def mental_math(rng: random.Random, d: float) -> Draft:
    """Drills without division: one operation on numbers up to 30 (d = 0) growing to 99 (d = 0.5), then, with
    probability rising to 1 at d = 1, a two-operation chain on numbers up to 12, which needs two facts and an
    intermediate result."""
    if d >= 1 or (d > 0.5 and rng.random() < (d - 0.5) / 0.5):
        text, value, steps = _chain(rng, 12)
        form = expression_form(text, MENTAL_PHRASING, [(2, 12)], structure="mental/chain", integral=True)
        return Draft(realise(form), value, steps, form.structure, fact_source(form), form)
    size = min(d, 0.5)
    top, factor_top = round(along(size, (30, 99, 99))), round(along(size, (12, 9, 9)))
    op = rng.choice("+-*")
    a, b = rng.randint(1, top), rng.randint(1, top if op != "*" else factor_top)
    value = _OPERATIONS[op](sp.Integer(a), b)
    form = expression_form(f"{a} {op} {b}", MENTAL_PHRASING, [(1, top), (1, top if op != "*" else factor_top)],
                           structure=f"mental/{op}", integral=True)
    return Draft(realise(form), value, [f"{a} {op} {b} = {value}"], form.structure, fact_source(form), form)


def _chain(rng: random.Random, top: int):
    """a op b op c evaluated left to right (parenthesised so the order is explicit)."""
    a, b, c = (rng.randint(2, top) for _ in range(3))
    op1, op2 = rng.choice("+-*"), rng.choice("+-")
    first = _OPERATIONS[op1](sp.Integer(a), b)
    value = _OPERATIONS[op2](first, c)
    return f"({a} {op1} {b}) {op2} {c}", value, [f"{a} {op1} {b} = {first}", f"{first} {op2} {c} = {value}"]


# ------------------------------------------------------------------ word problems (GSM8K style)


def _story(text: str, slots: dict, quantities: list[tuple[str, int, int, int]], target: str, source: str,
           structure: str, *, integral: bool = False, constraints: tuple[Relation, ...] = (),
           unknowns: tuple[str, ...] = ()) -> Symbolic:
    """A word problem's form: `text` and `source` hold `{name}` for each quantity (name, value, low, high)."""
    return Symbolic("story", (target,), tuple(Quantity(*q) for q in quantities), unknowns, constraints,
                    integral=integral, text=text, slots=slots, source=source, structure=structure)


def _shopping(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    who = rng.choice(NAMES)
    (one, many), (one2, many2) = rng.sample(ITEMS, 2)
    q1, p1 = rng.randint(2, 9), rng.randint(2, 15)
    steps = [f"{q1} {many} cost {q1} * {p1} = {q1 * p1} dollars."]
    total = sp.Integer(q1 * p1)
    text, quantities, cost, source = "{who} buys {a} {many} at ${b} each.", [("a", q1, 2, 9), ("b", p1, 2, 15)], "a*b", "{a}*{b}"
    if difficulty >= 2:
        q2, p2 = rng.randint(2, 9), rng.randint(2, 15)
        total += q2 * p2
        steps += [f"{q2} {many2} cost {q2} * {p2} = {q2 * p2} dollars.", f"Together: {q1 * p1} + {q2 * p2} = {total} dollars."]
        text += " {who} also buys {d} {many2} at ${f} each."
        quantities += [("d", q2, 2, 9), ("f", p2, 2, 15)]
        cost, source = "(a*b + d*f)", "({a}*{b} + {d}*{f})"
    if difficulty == 3:
        off = rng.choice([10, 20, 25, 50])
        discount = total * sp.Rational(off, 100)
        total -= discount
        steps += [f"The discount is {off}% of {fmt(total + discount)} = {fmt(discount)} dollars.",
                  f"After the discount: {fmt(total + discount)} - {fmt(discount)} = {fmt(total)} dollars."]
        text += " The shop takes {g}% off the whole bill."
        quantities.append(("g", off, 10, 50))
        cost, source = f"{cost}*(1 - g/100)", f"{source}*(1 - Rational({{g}}, 100))"
    bill = next(b for b in (10, 20, 50, 100, 200, 500) if b >= total)
    change = bill - total
    steps.append(f"Change from ${bill}: {bill} - {fmt(total)} = {fmt(change)} dollars.")
    form = _story(text + " {who} pays with a ${c} bill. How much change, in dollars, does {who} get back?",
                  {"who": who, "many": many, "many2": many2}, quantities + [("c", bill, 10, 500)], f"c - {cost}",
                  f"{{c}} - {source}", f"word/shopping/{difficulty}", integral=difficulty < 3,
                  constraints=(Relation("c", ">=", cost),))
    return Draft(realise(form), change, steps, form.structure, fact_source(form), form)


def _rates(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    who = rng.choice(NAMES)
    v1, t1 = rng.randint(20, 90), rng.randint(1, 5)
    if difficulty == 1:
        steps = [f"Distance = speed * time = {v1} * {t1} = {v1 * t1} km."]
        form = _story("{who} drives at {a} km/h for {b} hours. How many kilometres does {who} travel?", {"who": who},
                      [("a", v1, 20, 90), ("b", t1, 1, 5)], "a*b", "{a}*{b}", "word/rates/1", integral=True)
        return Draft(realise(form), sp.Integer(v1 * t1), steps, form.structure, fact_source(form), form)
    v2, t2 = rng.randint(20, 90), rng.randint(1, 5)
    d1, d2 = v1 * t1, v2 * t2
    steps = [f"First leg: {v1} * {t1} = {d1} km.", f"Second leg: {v2} * {t2} = {d2} km.",
             f"Total distance: {d1} + {d2} = {d1 + d2} km."]
    text = "{who} drives {b} hours at {a} km/h and then {d} hours at {c} km/h."
    quantities = [("a", v1, 20, 90), ("b", t1, 1, 5), ("c", v2, 20, 90), ("d", t2, 1, 5)]
    if difficulty == 2:
        form = _story(text + " How many kilometres is that in total?", {"who": who}, quantities, "a*b + c*d",
                      "{a}*{b} + {c}*{d}", "word/rates/2", integral=True)
        return Draft(realise(form), sp.Integer(d1 + d2), steps, form.structure, fact_source(form), form)
    average = sp.Rational(d1 + d2, t1 + t2)
    steps += [f"Total time: {t1} + {t2} = {t1 + t2} hours.", f"Average speed: {d1 + d2} / {t1 + t2} = {fmt(average)} km/h."]
    form = _story(text + " What is the average speed for the whole trip, in km/h?", {"who": who}, quantities,
                  "(a*b + c*d)/(b + d)", "Rational({a}*{b} + {c}*{d}, {b} + {d})", "word/rates/3")
    return Draft(realise(form), average, steps, form.structure, fact_source(form), form)


def _ages(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    a, b = rng.sample(NAMES, 2)
    young, gap = rng.randint(4, 30), rng.randint(2, 25)
    old = young + gap
    slots = {"older": a, "younger": b}
    if difficulty == 1:
        form = _story("{younger} is {a} years old. {older} is {b} years older than {younger}. How old is {older}?",
                      slots, [("a", young, 4, 30), ("b", gap, 2, 25)], "a + b", "{a} + {b}", "word/ages/1",
                      integral=True)
        return Draft(realise(form), sp.Integer(old), [f"{a} is {young} + {gap} = {old} years old."], form.structure,
                     fact_source(form), form)
    if difficulty == 2:
        later = rng.randint(2, 15)
        steps = [f"{a} is {young} + {gap} = {old} now.", f"In {later} years {a} is {old} + {later} = {old + later}.",
                 f"In {later} years {b} is {young} + {later} = {young + later}.",
                 f"Sum: {old + later} + {young + later} = {old + young + 2 * later}."]
        form = _story("{younger} is {a} years old and {older} is {b} years older. What will the sum of their ages be "
                      "in {c} years?", slots, [("a", young, 4, 30), ("b", gap, 2, 25), ("c", later, 2, 15)],
                      "(a + b + c) + (a + c)", "({a} + {b} + {c}) + ({a} + {c})", "word/ages/2", integral=True)
        return Draft(realise(form), sp.Integer(old + young + 2 * later), steps, form.structure, fact_source(form), form)
    total = old + young
    solution = sp.solve([sp.Eq(x + y, total), sp.Eq(x - y, gap)], [x, y])
    steps = [f"Let {a} be x and {b} be y: x + y = {total} and x - y = {gap}.",
             f"Adding the equations: 2x = {total} + {gap} = {total + gap}.", f"x = {total + gap} / 2 = {solution[x]}.",
             f"y = {total} - {solution[x]} = {solution[y]}.", f"So {b} is {solution[y]} years old."]
    form = _story("The ages of {older} and {younger} add up to {a} years, and {older} is {b} years older than "
                  "{younger}. How old is {younger}?", slots, [("a", total, 10, 85), ("b", gap, 2, 25)], "y",
                  "solve([Eq(x + y, {a}), Eq(x - y, {b})], [x, y])[y]", "word/ages/3", integral=True,
                  constraints=(Relation("x + y", "=", "a"), Relation("x - y", "=", "b"), Relation("y", ">", "0")),
                  unknowns=("x", "y"))
    return Draft(realise(form), solution[y], steps, form.structure, fact_source(form), form)


def _work(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    h1, h2, h3 = rng.sample(range(2, 13), 3)
    if difficulty == 1:
        form = _story("A pipe fills a tank in {a} hours. What fraction of the tank does it fill in one hour?", {},
                      [("a", h1, 2, 12)], "1/a", "Rational(1, {a})", "word/work/1")
        return Draft(realise(form), sp.Rational(1, h1), [f"In one hour it fills 1/{h1} of the tank."], form.structure,
                     fact_source(form), form)
    rate = sp.Rational(1, h1) + sp.Rational(1, h2)
    steps = [f"Rates: 1/{h1} + 1/{h2} = {fmt(rate)} of the tank per hour."]
    if difficulty == 2:
        steps.append(f"Time together: 1 / ({fmt(rate)}) = {fmt(1 / rate)} hours.")
        form = _story("One worker paints a fence in {a} hours and another in {b} hours. How many hours do they take "
                      "working together?", {}, [("a", h1, 2, 12), ("b", h2, 2, 12)], "1/(1/a + 1/b)",
                      "1/(Rational(1, {a}) + Rational(1, {b}))", "word/work/2")
        return Draft(realise(form), 1 / rate, steps, form.structure, fact_source(form), form)
    drain = max(h1, h2, h3) + rng.randint(1, 8)
    net = rate - sp.Rational(1, drain)
    steps += [f"The drain empties 1/{drain} per hour.", f"Net rate: {fmt(rate)} - 1/{drain} = {fmt(net)} per hour.",
              f"Time to fill: 1 / ({fmt(net)}) = {fmt(1 / net)} hours."]
    form = _story("Two pipes fill a pool in {a} and {b} hours on their own, while a drain empties the full pool in "
                  "{c} hours. With all three open, how many hours does the empty pool take to fill?", {},
                  [("a", h1, 2, 12), ("b", h2, 2, 12), ("c", drain, 3, 20)], "1/(1/a + 1/b - 1/c)",
                  "1/(Rational(1, {a}) + Rational(1, {b}) - Rational(1, {c}))", "word/work/3",
                  constraints=(Relation("1/a + 1/b", ">", "1/c"),))
    return Draft(realise(form), 1 / net, steps, form.structure, fact_source(form), form)


def _percent(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    who = rng.choice(NAMES)
    base = rng.choice([40, 60, 80, 120, 150, 200, 250, 400, 500])
    p1 = rng.choice([5, 10, 15, 20, 25, 30, 40, 50])
    first = base * sp.Rational(p1, 100)
    if difficulty == 1:
        form = _story("What is {b}% of {a}?", {}, [("a", base, 40, 500), ("b", p1, 5, 50)], "a*(b/100)",
                      "{a}*Rational({b}, 100)", "word/percent/1")
        return Draft(realise(form), first, [f"{p1}% of {base} = {base} * {p1}/100 = {fmt(first)}."], form.structure,
                     fact_source(form), form)
    raised = base + first
    p2 = rng.choice([10, 20, 25, 50])
    lowered = raised * (1 - sp.Rational(p2, 100))
    steps = [f"The rise is {p1}% of {base} = {fmt(first)}.", f"New price: {base} + {fmt(first)} = {fmt(raised)}.",
             f"A {p2}% cut leaves {100 - p2}%: {fmt(raised)} * {100 - p2}/100 = {fmt(lowered)}."]
    text = "A jacket costs ${a}. Its price goes up by {b}%, then the new price is cut by {c}%."
    quantities = [("a", base, 40, 500), ("b", p1, 5, 50), ("c", p2, 10, 50)]
    price, source = "a*(1 + b/100)*(1 - c/100)", "{a}*(1 + Rational({b}, 100))*(1 - Rational({c}, 100))"
    if difficulty == 2:
        form = _story(text + " What is the final price in dollars?", {}, quantities, price, source, "word/percent/2")
        return Draft(realise(form), lowered, steps, form.structure, fact_source(form), form)
    share = rng.choice([2, 3, 4, 5])
    spent = lowered / share
    left = 250 + base - spent
    steps += [f"{who} pays 1/{share} of it now: {fmt(lowered)} / {share} = {fmt(spent)}.",
              f"{who} had 250 + {base} = {250 + base} dollars; left: {250 + base} - {fmt(spent)} = {fmt(left)}."]
    form = _story("{who} has ${m}. " + text + " {who} pays 1/{d} of the final price as a deposit. How many dollars "
                  "does {who} have left?", {"who": who}, quantities + [("d", share, 2, 5), ("m", 250 + base, 290, 750)],
                  f"m - {price}/d", f"{{m}} - {source}/{{d}}", "word/percent/3",
                  constraints=(Relation(f"{price}/d", "<=", "m"),))
    return Draft(realise(form), left, steps, form.structure, fact_source(form), form)


def word_problems(rng: random.Random, d: float) -> Draft:
    return rng.choice([_shopping, _rates, _ages, _work, _percent])(rng, d)


# ------------------------------------------------------------------ algebra


def linear_equations(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    unknowns = [x, y, z][:difficulty]
    solution = {u: rng.randint(-9, 9) for u in unknowns}
    equations = []
    while len(equations) < difficulty or sp.Matrix([[e.lhs.coeff(u) for u in unknowns] for e in equations]).det() == 0:
        if len(equations) == difficulty:
            equations = []
        coeffs = [rng.choice([c for c in range(-6, 7) if c]) for _ in unknowns]
        lhs = sum(c * u for c, u in zip(coeffs, unknowns))
        equations.append(sp.Eq(lhs, lhs.xreplace(solution), evaluate=False))
    if difficulty == 1:
        (eq,) = equations
        a, b = eq.lhs.coeff(x), rng.randint(-20, 20)
        eq = sp.Eq(a * x + b, eq.rhs + b)
        steps = [f"Subtract {b}: {a}x = {eq.rhs} - {b} = {eq.rhs - b}.", f"Divide by {a}: x = {solution[x]}."]
        form = Symbolic("equation", ("x",), (Quantity("a", int(a), -6, 6), Quantity("b", b, -20, 20),
                                             Quantity("s", solution[x], -9, 9)),
                        ("x",), (Relation("a*x + b", "=", "a*s + b"),), integral=True, text="Solve for x: {equations}.",
                        structure="algebra/linear/1")
        return Draft(realise(form), sp.Integer(solution[x]), steps, form.structure, fact_source(form), form)
    form = linear_system_form(equations, unknowns, solution)
    solved = {u: sp.Integer(v) for u, v in solution.items()}  # unique: the coefficient matrix is invertible
    steps = []
    for i, u in enumerate(unknowns[:-1]):
        steps.append(f"Eliminate {u} between equation {i + 1} and the ones after it.")
    steps += [f"{u} = {solved[u]}" for u in reversed(unknowns)]
    steps.append("Check: every equation holds with these values.")
    return Draft(realise(form), tuple(solved[u] for u in unknowns), steps, form.structure, fact_source(form), form)


def linear_system_form(equations: list, unknowns: list, solution: dict) -> Symbolic:
    """A system's form: each coefficient a quantity, each unknown's intended value a hidden quantity the right-hand
    sides are computed from (so a changed value keeps the solution integral)."""
    coefficients = [[int(e.lhs.coeff(u)) for u in unknowns] for e in equations]
    names = iter("abcdfghjkmnp")
    coefficient_names = [[next(names) for _ in unknowns] for _ in equations]
    value_names = {u: "qrs"[i] for i, u in enumerate(unknowns)}
    quantities = [Quantity(n, c, -6, 6) for row, row_names in zip(coefficients, coefficient_names)
                  for c, n in zip(row, row_names)]
    quantities += [Quantity(value_names[u], solution[u], -9, 9) for u in unknowns]
    constraints = tuple(Relation(" + ".join(f"{n}*{u}" for n, u in zip(row, unknowns)), "=",
                                 " + ".join(f"{n}*{value_names[u]}" for n, u in zip(row, unknowns)))
                        for row in coefficient_names)
    names_text = ", ".join(str(u) for u in unknowns)
    return Symbolic("equation", tuple(str(u) for u in unknowns), tuple(quantities), tuple(str(u) for u in unknowns),
                    constraints, integral=True, text=f"Solve the system {{equations}}. Give ({names_text}).",
                    structure=f"algebra/system/{len(unknowns)}")


def quadratics(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    if difficulty == 1:
        r1, r2 = rng.sample(range(-9, 10), 2)
        poly = sp.expand((x - r1) * (x - r2))
        quantities, lhs = (Quantity("r", r1, -9, 9), Quantity("s", r2, -9, 9)), "(x - r)*(x - s)"
        steps = [f"Find two numbers with product {r1 * r2} and sum {r1 + r2}: {r1} and {r2}.",
                 f"So {render(poly)} = (x - ({r1}))(x - ({r2})) = 0."]
    elif difficulty == 2:
        a = rng.choice([2, 3, 4, 5])
        r1, r2 = sp.Rational(rng.choice([-7, -5, -3, -1, 1, 3, 5]), a), rng.randint(-6, 6)
        while r1 == r2:
            r2 = rng.randint(-6, 6)
        poly = sp.expand(a * (x - r1) * (x - r2))
        quantities = (Quantity("a", a, 2, 5), Quantity("p", int(r1 * a), -7, 7), Quantity("s", r2, -6, 6))
        lhs = "a*(x - p/a)*(x - s)"
        disc = sp.Poly(poly, x).discriminant()
        steps = [f"a = {a}, discriminant = {disc}, whose square root is {sp.sqrt(disc)}.",
                 f"x = (-b ± {sp.sqrt(disc)}) / {2 * a}.", f"Roots: {fmt(r1)} and {fmt(r2)}."]
    else:
        a, b, c = rng.randint(1, 4), rng.randint(-9, 9), rng.randint(-9, 9)
        while (b * b - 4 * a * c) <= 0 or sp.sqrt(b * b - 4 * a * c).is_rational:
            a, b, c = rng.randint(1, 4), rng.randint(-9, 9), rng.randint(-9, 9)
        poly = a * x**2 + b * x + c
        quantities, lhs = (Quantity("a", a, 1, 4), Quantity("b", b, -9, 9), Quantity("c", c, -9, 9)), "a*x^2 + b*x + c"
        disc = b * b - 4 * a * c
        steps = [f"a = {a}, b = {b}, c = {c}.", f"Discriminant: {b}^2 - 4*{a}*{c} = {disc}.",
                 f"sqrt({disc}) = {render(sp.sqrt(disc))} is irrational, so use the formula.",
                 f"x = ({-b} ± {render(sp.sqrt(disc))}) / {2 * a}."]
    roots = frozenset(sp.solve(sp.Eq(poly, 0), x))
    steps.append(f"Solutions: {render(roots)}.")
    form = Symbolic("roots", ("x",), quantities, ("x",), (Relation(lhs, "=", "0"),),
                    text="Find all real solutions of {equations}.", structure=f"algebra/quadratic/{difficulty}")
    return Draft(realise(form), roots, steps, form.structure, fact_source(form), form)


def polynomials(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    if difficulty == 1:
        a, b = rng.sample([v for v in range(-9, 10) if v], 2)
        product = sp.expand((x + a) * (x + b))
        steps = [f"x*x = x^2; x*{b} + {a}*x = {a + b}x; {a}*{b} = {a * b}.", f"So the product is {render(product)}."]
        return Draft(f"Expand (x + {a})(x + {b}).".replace("+ -", "- "), product, steps, "algebra/expand/1",
                     f"expand((x + {a})*(x + {b}))")
    if difficulty == 2:
        roots = rng.sample([v for v in range(-6, 7) if v], 3)
        poly = sp.expand((x - roots[0]) * (x - roots[1]) * (x - roots[2]))
        factored = sp.factor(poly)
        steps = [f"Try divisors of the constant {poly.subs(x, 0)}: x = {roots[0]} is a root.",
                 f"Divide by (x - {roots[0]}) to get {render(sp.expand(poly / (x - roots[0])))}.",
                 f"That quadratic has roots {roots[1]} and {roots[2]}.", f"So {render(poly)} = {render(factored)}."]
        return Draft(f"Factor completely: {render(poly)}.", factored, steps, "algebra/factor/2", f"factor({poly})")
    a, b, c = rng.sample([v for v in range(-7, 8) if v], 3)
    numerator = sp.expand((x - a) * (x - b))
    second = sp.expand((x - c) * (x + c))
    result = sp.simplify(numerator / (x - a) + second / (x - c))
    steps = [f"Both fractions are defined for x ≠ {a} and x ≠ {c}.",
             f"Factor the first numerator: {render(numerator)} = (x - {a})(x - {b}).",
             f"Cancel x - {a}: the first fraction is x - {b}.",
             f"Factor the second numerator: {render(second)} = (x - {c})(x + {c}).",
             f"Cancel x - {c}: the second fraction is x + {c}.",
             f"Add: (x - {b}) + (x + {c}) = {render(result)}."]
    return Draft(f"Simplify ({render(numerator)})/(x - {a}) + ({render(second)})/(x - {c}).".replace("- -", "+ "),
                 result, steps, "algebra/simplify/3", f"simplify(({numerator})/(x - {a}) + ({second})/(x - {c}))")


# ------------------------------------------------------------------ calculus


def derivatives(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    if difficulty == 1:
        f = sum(rng.randint(1, 9) * x**p for p in rng.sample(range(1, 6), 3)) + rng.randint(-9, 9)
        terms = sp.Add.make_args(f)
        steps = [f"d/dx {render(t)} = {render(sp.diff(t, x))}" for t in terms]
        template = "calculus/diff/power"
    elif difficulty == 2:
        u = x ** rng.randint(1, 4)
        v = rng.choice([sp.sin(x), sp.cos(x), sp.exp(x), sp.log(x)])
        f = rng.randint(1, 5) * u * v
        steps = [f"Product rule with u = {render(f / v)} and v = {render(v)}.", f"u' = {render(sp.diff(f / v, x))}.",
                 f"v' = {render(sp.diff(v, x))}.", "f' = u'v + uv'."]
        template = "calculus/diff/product"
    else:
        inner = rng.randint(2, 5) * x**2 + rng.randint(1, 9)
        outer = rng.choice([sp.sin, sp.exp, sp.cos])
        g = x ** rng.randint(1, 3)
        f = g * outer(inner)
        steps = [f"Inner function w = {render(inner)}, w' = {render(sp.diff(inner, x))}.",
                 f"Chain rule: d/dx {render(outer(inner))} = {render(sp.diff(outer(inner), x))}.",
                 f"Product rule with u = {render(g)}: u' = {render(sp.diff(g, x))}.", "f' = u'·(outer) + u·(outer)'.",
                 "Collect the terms."]
        template = "calculus/diff/chain"
    derivative = sp.expand(sp.diff(f, x)) if difficulty == 1 else sp.diff(f, x)
    steps.append(f"f'(x) = {render(derivative)}")
    return Draft(f"Find the derivative of f(x) = {render(f)} with respect to x.", derivative, steps, template,
                 f"diff({f}, x)")


def integrals(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    lo = rng.randint(0, 2)
    hi = lo + rng.randint(1, 3)
    if difficulty == 1:
        f = rng.randint(1, 6) * x ** rng.randint(1, 3)
        template = "calculus/integral/monomial"
    elif difficulty == 2:
        f = sum(rng.randint(1, 6) * x**p for p in rng.sample(range(0, 4), 3))
        template = "calculus/integral/polynomial"
    else:
        power = rng.randint(1, 2)
        f = x**power * rng.choice([sp.exp(x), sp.sin(x), sp.cos(x)])
        template = "calculus/integral/by_parts"
    antiderivative = sp.integrate(f, x)
    value = sp.simplify(sp.integrate(f, (x, lo, hi)))
    steps = [f"An antiderivative of {render(t)} is {render(sp.integrate(t, x))}." for t in sp.Add.make_args(f)]
    if difficulty == 3:
        steps = ["Integrate by parts with u = x." if power == 1
                 else "Integrate by parts twice, lowering the power of x each time."] + steps
        steps += [f"Antiderivative: {render(antiderivative)}.", "Differentiate it back to check."]
    steps += [f"F({hi}) - F({lo}) = {render(antiderivative.subs(x, hi))} - ({render(antiderivative.subs(x, lo))}).",
              f"Value: {render(value)}."]
    return Draft(f"Evaluate the definite integral of {render(f)} from x = {lo} to x = {hi}.", value, steps, template,
                 f"integrate({f}, (x, {lo}, {hi}))")


# ------------------------------------------------------------------ discrete maths


def sequences(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    a, d = rng.randint(-10, 20), rng.choice([v for v in range(-6, 8) if v])
    terms = [a + i * d for i in range(4)]
    if difficulty == 1:
        m = rng.randint(8, 30)
        value = a + (m - 1) * d
        steps = [f"Common difference: {terms[1]} - {terms[0]} = {d}.", f"Term {m}: {a} + ({m} - 1)*{d} = {value}."]
        return Draft(f"The sequence {', '.join(map(str, terms))}, ... is arithmetic. What is its {m}th term?",
                     sp.Integer(value), steps, "sequences/arithmetic_term", f"{a} + ({m} - 1)*{d}")
    if difficulty == 2:
        m = rng.randint(10, 40)
        value = sp.summation(a + (k - 1) * d, (k, 1, m))
        last = a + (m - 1) * d
        steps = [f"Common difference {d}; term {m} is {a} + {m - 1}*{d} = {last}.",
                 f"Sum = {m}*(first + last)/2 = {m}*({a} + {last})/2 = {value}."]
        return Draft(f"Find the sum of the first {m} terms of the arithmetic sequence {', '.join(map(str, terms))}, ...",
                     value, steps, "sequences/arithmetic_sum", f"summation({a} + (k - 1)*{d}, (k, 1, {m}))")
    if rng.random() < 0.5:
        p, q = rng.randint(1, 5), rng.randint(1, 5)
        m = rng.randint(10, 30)
        value = sp.summation(p * k**2 + q * k, (k, 1, m))
        steps = [f"Split: {p}*sum k^2 + {q}*sum k for k = 1..{m}.", f"sum k^2 = {m}*{m + 1}*{2 * m + 1}/6 = {m * (m + 1) * (2 * m + 1) // 6}.",
                 f"sum k = {m}*{m + 1}/2 = {m * (m + 1) // 2}.",
                 f"Total: {p}*{m * (m + 1) * (2 * m + 1) // 6} + {q}*{m * (m + 1) // 2} = {value}."]
        return Draft(f"Compute the sum of {p}k^2 + {q}k for k from 1 to {m}.", value, steps, "sequences/power_sum",
                     f"summation({p}*k**2 + {q}*k, (k, 1, {m}))")
    first, ratio = rng.randint(1, 20), sp.Rational(rng.randint(1, 4), rng.randint(5, 9)) * rng.choice([1, -1])
    value = sp.summation(first * ratio ** (k - 1), (k, 1, sp.oo))
    steps = [f"Ratio r = {fmt(ratio)}, and |r| < 1 so the series converges.", f"First term a = {first}.",
             f"Sum = a / (1 - r) = {first} / (1 - ({fmt(ratio)})) = {fmt(value)}."]
    shown = ", ".join(fmt(first * ratio**i) for i in range(3))
    return Draft(f"Find the sum of the infinite geometric series {shown}, ...", value, steps, "sequences/geometric_infinite",
                 f"summation({first}*({ratio})**(k - 1), (k, 1, oo))")


def combinatorics(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    if difficulty == 1:
        total, pick = rng.randint(5, 12), rng.randint(2, 4)
        value = sp.binomial(total, pick)
        steps = [f"Order does not matter: C({total}, {pick}) = {total}! / ({pick}! * {total - pick}!) = {value}."]
        return Draft(f"In how many ways can a team of {pick} be chosen from {total} people?", value, steps,
                     "counting/choose", f"binomial({total}, {pick})")
    red, blue = rng.randint(2, 8), rng.randint(2, 8)
    both = sp.Rational(red, red + blue) * sp.Rational(red - 1, red + blue - 1)
    steps = [f"First draw red: {red}/{red + blue}.", f"Second draw red given the first: {red - 1}/{red + blue - 1}.",
             f"Both: {red}/{red + blue} * {red - 1}/{red + blue - 1} = {fmt(both)}."]
    if difficulty == 2:
        return Draft(f"A bag holds {red} red and {blue} blue marbles. Two are drawn without replacement. What is the "
                     f"probability that both are red?", both, steps, "probability/two_red",
                     f"binomial({red}, 2)/binomial({red + blue}, 2)")
    draws = 3
    none_red = sp.binomial(blue, draws) / sp.binomial(red + blue, draws)
    value = 1 - none_red
    steps = [f"Complement: no red in {draws} draws.", f"Ways with no red: C({blue}, {draws}) = {sp.binomial(blue, draws)}.",
             f"All ways: C({red + blue}, {draws}) = {sp.binomial(red + blue, draws)}.",
             f"P(no red) = {sp.binomial(blue, draws)}/{sp.binomial(red + blue, draws)} = {fmt(none_red)}.",
             f"P(at least one red) = 1 - {fmt(none_red)} = {fmt(value)}."]
    return Draft(f"A bag holds {red} red and {blue} blue marbles. Three are drawn without replacement. What is the "
                 f"probability that at least one is red?", value, steps, "probability/at_least_one",
                 f"1 - binomial({blue}, 3)/binomial({red + blue}, 3)")


def number_theory(rng: random.Random, d: float) -> Draft:
    difficulty = tier(rng, d)
    if difficulty == 1:
        g = rng.randint(2, 12)
        a, b = g * rng.randint(2, 15), g * rng.randint(2, 15)
        if rng.random() < 0.5:
            value = sp.gcd(a, b)
            steps = [f"{a} = {sp.factorint(a)}, {b} = {sp.factorint(b)} as prime powers.", f"gcd({a}, {b}) = {value}."]
            return Draft(f"What is the greatest common divisor of {a} and {b}?", value, steps, "number/gcd", f"gcd({a}, {b})")
        value = sp.lcm(a, b)
        steps = [f"gcd({a}, {b}) = {sp.gcd(a, b)}.", f"lcm = {a}*{b}/{sp.gcd(a, b)} = {value}."]
        return Draft(f"What is the least common multiple of {a} and {b}?", value, steps, "number/lcm", f"lcm({a}, {b})")
    if difficulty == 2:
        base, power, mod = rng.randint(2, 20), rng.randint(5, 60), rng.randint(5, 30)
        value = pow(base, power, mod)
        bits = bin(power)[2:]
        steps = [f"Write {power} in binary: {bits}.", f"Square repeatedly modulo {mod}.",
                 f"Multiply the powers for the 1 bits modulo {mod}.", f"{base}^{power} mod {mod} = {value}."]
        return Draft(f"What is the remainder when {base}^{power} is divided by {mod}?", sp.Integer(value), steps,
                     "number/power_mod", f"Mod({base}**{power}, {mod})")
    m1, m2 = rng.sample([3, 4, 5, 7, 8, 9, 11, 13], 2)
    while sp.gcd(m1, m2) != 1:
        m1, m2 = rng.sample([3, 4, 5, 7, 8, 9, 11, 13], 2)
    r1, r2 = rng.randrange(m1), rng.randrange(m2)
    from sympy.ntheory.modular import crt

    value = crt([m1, m2], [r1, r2])[0]
    steps = [f"x = {r1} + {m1}t.", f"{r1} + {m1}t ≡ {r2} (mod {m2}).",
             f"The inverse of {m1} mod {m2} is {sp.mod_inverse(m1, m2)}.",
             f"t ≡ {(r2 - r1) * sp.mod_inverse(m1, m2) % m2} (mod {m2}).", f"Smallest x: {value}."]
    return Draft(f"Find the smallest non-negative integer x with x ≡ {r1} (mod {m1}) and x ≡ {r2} (mod {m2}).",
                 sp.Integer(value), steps, "number/crt", f"crt([{m1}, {m2}], [{r1}, {r2}])[0]")


GENERATORS: dict[str, Callable[[random.Random, float], Draft]] = {
    "arithmetic": arithmetic,
    "mental_math": mental_math,
    "word_problems": word_problems,
    "linear_equations": linear_equations,
    "quadratics": quadratics,
    "polynomials": polynomials,
    "derivatives": derivatives,
    "integrals": integrals,
    "sequences": sequences,
    "combinatorics": combinatorics,
    "number_theory": number_theory,
}
TOPICS = tuple(GENERATORS)


def check_topic_mix(mix: dict[str, float]) -> None:
    """Raise ValueError naming an unknown topic or a mix with no positive weight."""
    unknown = sorted(set(mix) - set(GENERATORS))
    if unknown:
        raise ValueError(f"unknown topic {unknown[0]!r}; known: {', '.join(TOPICS)}")
    if not any(w > 0 for w in mix.values()) or any(w < 0 for w in mix.values()):
        raise ValueError("a topic mix needs non-negative weights, at least one positive")


def generate(topic: str, rng: random.Random, difficulty: int | None = None, *, d: float | None = None) -> Problem:
    """One problem of `topic` at level `difficulty` (1, 2 or 3) or continuous difficulty `d` in [0, 1]."""
    check_topic_mix({topic: 1.0})
    point = _difficulty(difficulty, d)
    return to_problem(topic, point, GENERATORS[topic](rng, point))


def _difficulty(level: int | None, d: float | None) -> float:
    if d is None:
        return level_point(level)
    if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0.0 <= d <= 1.0:
        raise ValueError(f"continuous difficulty d must be in [0, 1], got {d!r}")
    return float(d)


def to_problem(topic: str, d: float, draft: Draft) -> Problem:
    answer = render(draft.answer)
    level = nearest_level(d)
    return Problem(
        id=f"{topic}-{level}-{question_key(draft.question)}", question=draft.question, answer=answer,
        difficulty=level, topic=topic, source="sympy",
        meta={"steps": len(draft.steps), "template": draft.template, "recompute": draft.recompute, "d": round(d, 4)},
        solution=worked_solution(draft.steps, answer), form=required_form(draft.template), symbolic=draft.symbolic,
    )


def required_form(template: str) -> str:
    """The form a factor / expand / simplify task's answer must take ("" when any equal value will do)."""
    for task, form in (("/factor/", "factored"), ("/expand/", "expanded"), ("/simplify/", "simplified")):
        if task in template:
            return form
    return ""


HELDOUT_SHARE = 0.2


def in_split(key: str, split: str | None) -> bool:
    """Every fact belongs to one side by its hash (`fact_key`): `heldout` (20%) or `train`; None accepts both.
    Training data (pretraining, SFT, GRPO) comes from `train` only, evaluation from `heldout` only, so no
    held-out question is a training fact with its operands swapped."""
    if split is None:
        return True
    heldout = int(key[:4], 16) < HELDOUT_SHARE * 0x10000
    return heldout if split == "heldout" else not heldout


def generate_problems(n: int, difficulty: int | None = None, *, d: float | None = None,
                      topics: dict[str, float] | None = None, seed: int = 0,
                      exclude: set[str] | None = None, split: str | None = None,
                      progress: bool = False) -> list[Problem]:
    """`n` distinct problems at level `difficulty` (1-3) or continuous difficulty `d`, topics sampled from the
    `topics` weights (all topics equally by default).

    Deterministic for a seed. A question already drawn, a fact in `exclude` (a set of `fact_key`s) or a fact
    outside `split` ("train" / "heldout", see `in_split`) is skipped. Every answer is re-checked with the verifier against SymPy's own string
    for the value before it is kept; a problem that fails the check is dropped.
    """
    from tqdm import tqdm

    mix = topics or {t: 1.0 for t in TOPICS}
    check_topic_mix(mix)
    names, weights = zip(*[(t, w) for t, w in mix.items() if w > 0])
    point = _difficulty(difficulty, d)
    rng = random.Random(f"{seed}-{difficulty if d is None else f'd{point!r}'}-{sorted(mix.items())}")
    seen: set[str] = set()
    excluded = set(exclude or ())
    out: list[Problem] = []
    attempts = 0
    bar = tqdm(total=n, desc=f"synth d={point:g}", unit="problem", disable=not progress)
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"only {len(out)} distinct problems after {attempts} draws; widen the topic mix")
        topic = rng.choices(names, weights)[0]
        draft = GENERATORS[topic](rng, point)
        key = question_key(draft.question)
        if key in seen:
            continue
        seen.add(key)
        problem = vetted(topic, point, draft, excluded, split)
        if problem is None:
            continue
        out.append(problem)
        bar.update(1)
    bar.close()
    return out


def vetted(topic: str, d: float, draft: Draft, exclude: set[str], split: str | None) -> Problem | None:
    """The draft as a `Problem`, or None when its fact is excluded or on the other side of `split`, or when the
    verifier does not match its rendered answer to SymPy's own string for the value."""
    from verifier_pool import answers_match

    problem = to_problem(topic, d, draft)
    fact = fact_key(problem)
    if fact in exclude or not in_split(fact, split):
        return None
    return problem if answers_match(problem.answer, sympy_string(draft.answer)) else None


def sibling(parent: Problem, d: float, rng: random.Random, *, exclude: set[str] = frozenset(),
            split: str | None = "train", tries: int = 32) -> Problem | None:
    """A mutation of `parent` in symbolic space at difficulty `d`: the same topic and template with new numbers
    when `d` keeps its structure, one more step (or one fewer) when `d` moved far enough to change it — the
    first draw that keeps the parent's template, or whose step count moved the way `d` did; after `tries`
    draws, any vetted draw. None when no draw passes `vetted`."""
    if parent.topic not in GENERATORS:
        return None
    parent_d = float(parent.meta.get("d", level_point(parent.difficulty)))
    parent_steps, parent_template = parent.meta.get("steps", 0), parent.meta.get("template")
    fallback = None
    for _ in range(tries):
        draft = GENERATORS[parent.topic](rng, d)
        if draft.question == parent.question:
            continue
        problem = vetted(parent.topic, d, draft, set(exclude), split)
        if problem is None:
            continue
        moved = len(draft.steps) - parent_steps
        if draft.template == parent_template or (d > parent_d and moved > 0) or (d < parent_d and moved < 0):
            return problem
        fallback = fallback or problem
    return fallback


def sympy_string(value) -> str:
    """SymPy's own string for a value (`**` powers, `E`, Python tuples): the other side of the re-check."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sp.sstr(v) for v in value) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(sp.sstr(v) for v in value) + ")"
    return sp.sstr(sp.sympify(value))  # trusted: a value SymPy computed (generator or derive_answer), never text
