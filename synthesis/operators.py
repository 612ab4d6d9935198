"""Modifications in symbolic space (the closed-loop teacher's operators, seed 001): each takes a problem's symbolic
form to a new one, SymPy re-solves and re-checks the child, the words are realised from the child's form, and the
child is kept only when its fact lies on the training side of the split.

| operator          | what it does                                                    | styles              |
|-------------------|-----------------------------------------------------------------|---------------------|
| change_constant   | one quantity moves to another value in its range                | all                 |
| add_step          | one more quantity and operation (one more reasoning step)       | expression, story, equation |
| other_unknown     | ask for another unknown, or solve for a given quantity          | equation, expression |
| compose           | two problems joined into one (their answers combined)           | expression, story   |
| swap_operation    | one operation of the expression swapped for another             | expression          |
| add_distractor    | an irrelevant quantity added to the words                       | story               |
| smaller_constants | every quantity redrawn nearer the easy end of its range         | all                 |
| drop_step         | one operation of the expression removed (one step fewer)        | expression          |
| restate           | the same form in other words (phrasing, the person in a story)  | expression, story   |

`smaller_constants` and `drop_step` make a problem easier: a teacher must be able to move a student's pass rate up
as well as down, and a student below the target pass rate (the tiny default's, after SFT) needs children easier than
their parents. `restate` keeps the fact and changes only the words: a problem the student half-solves is worth
another group until it is learned, and the student's pass rate on one problem says little about its neighbours.

An operator that does not apply to a form returns None; so does one whose draws all come out ill posed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
import re

from synthesis.generators import ARITHMETIC_PHRASINGS, MENTAL_PHRASING, in_split, sympy_string
from synthesis.generators import NAMES as PEOPLE
from synthesis.problem import Problem, fact_key, question_key, worked_solution
from synthesis.symbolic import (NAMES, UNKNOWNS, IllPosed, Quantity, Relation, Symbolic, derive_answer, fact_source,
                                parse_tree, realise, tree_text, worked_steps)
from verifier_pool.tools import render

DISTRACTORS = ("A nearby shop has {n} customers waiting.", "The day before, it rained for {n} hours.",
               "A friend mentions that {n} buses passed by that morning.", "There are {n} chairs in the room.")
PHRASINGS = (MENTAL_PHRASING, *ARITHMETIC_PHRASINGS, "Compute {expr}.", "Work out {expr}.")
SWAPS = {"add": ("sub", "mul"), "sub": ("add", "mul"), "mul": ("add", "sub"), "div": ("mul", "add")}


def structure_key(form: Symbolic) -> str:
    """The form's symbolic structure with the quantities' values and names abstracted: two problems that differ only
    in numbers share it; one more step, another operation or another unknown does not."""
    names = {q.name for q in form.quantities}

    def shape(text: str) -> str:
        return re.sub("[" + "".join(sorted(names)) + "]", "#", tree_text(parse_tree(text))) if names else text

    parts = [form.style, *map(shape, form.target), *(f"{shape(r.lhs)}{r.op}{shape(r.rhs)}" for r in form.constraints)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def _unused(form: Symbolic, k: int = 1) -> list[str]:
    free = [n for n in NAMES if n not in {q.name for q in form.quantities}]
    if len(free) < k:
        raise IllPosed("no quantity names left")
    return free[:k]


def change_constant(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    movable = [q for q in form.quantities if q.high > q.low]
    if not movable:
        return None
    q = rng.choice(movable)
    value = rng.choice([v for v in range(q.low, q.high + 1) if v != q.value])
    return form.with_values({q.name: value})


def _joined(left: str, op: str, right: str) -> str:
    return tree_text((op, parse_tree(left), parse_tree(right)))


def add_step(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    (n,) = _unused(form)
    op = rng.choice(["add", "sub", "mul"])
    if form.style == "expression" and not form.unknowns:
        low, high = form.quantities[0].low, form.quantities[0].high
        return dataclasses.replace(form, target=(_joined(form.target[0], op, n),),
                                   quantities=form.quantities + (Quantity(n, rng.randint(low, high), low, high),))
    if form.style == "story" and len(form.target) == 1:
        symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
        return dataclasses.replace(form, target=(_joined(form.target[0], op, n),),
                                   quantities=form.quantities + (Quantity(n, rng.randint(2, 9), 2, 9),),
                                   text=f"{form.text} Call that answer A. What is A {symbol} {{{n}}}?",
                                   source=f"({form.source}) {symbol} {{{n}}}")
    if form.style == "equation" and len(form.unknowns) < len(UNKNOWNS) and form.target[0] in form.unknowns:
        new = next(u for u in UNKNOWNS if u not in form.unknowns)
        k, c = _unused(form, 2)
        relation = Relation(f"{new} - {k}*{form.target[0]}", "=", c)
        return dataclasses.replace(form, target=(new,), unknowns=form.unknowns + (new,),
                                   quantities=form.quantities + (Quantity(k, rng.randint(1, 5), 1, 5),
                                                                 Quantity(c, rng.randint(-20, 20), -20, 20)),
                                   constraints=form.constraints + (relation,),
                                   text=f"Solve the system {{equations}}. What is {new}?")
    return None


def other_unknown(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    if form.style == "equation" and len(form.unknowns) > 1:
        others = [u for u in form.unknowns if (u,) != form.target]
        target = rng.choice(others)
        return dataclasses.replace(form, target=(target,), text=f"Solve the system {{equations}}. What is {target}?")
    if form.style == "expression" and not form.unknowns and form.quantities:
        answer = derive_answer(form)
        if not answer.is_Integer:
            return None
        q = rng.choice(form.quantities)
        (r,) = _unused(form)
        bound = max(abs(int(answer)), 1) * 4
        return dataclasses.replace(form, target=("x",), unknowns=("x",),
                                   quantities=tuple(p for p in form.quantities if p != q) +
                                   (Quantity(r, int(answer), -bound, bound),),
                                   constraints=(Relation(re.sub(rf"\b{q.name}\b", "x", form.target[0]), "=", r),),
                                   text=f"Find x if {{expr}} = {{{r}}}.")
    return None


def _renamed(form: Symbolic, taken: set[str], suffix: str) -> Symbolic:
    """`form` with its quantities renamed away from `taken` and its slots suffixed (so two forms can be joined)."""
    free = iter(n for n in NAMES if n not in taken)
    mapping = {q.name: next(free) for q in form.quantities}

    def rename(text: str) -> str:
        return re.sub(r"\b[a-z]\b", lambda m: mapping.get(m.group(), m.group()), text)

    def rename_words(text: str) -> str:
        text = re.sub(r"\{([a-z])\}", lambda m: "{" + mapping.get(m.group(1), m.group(1)) + "}", text)
        return re.sub(r"\{([a-z_]{2,}\d?)\}", lambda m: "{" + m.group(1) + suffix + "}", text)

    return dataclasses.replace(form, target=tuple(rename(t) for t in form.target),
                               quantities=tuple(dataclasses.replace(q, name=mapping[q.name]) for q in form.quantities),
                               constraints=tuple(Relation(rename(r.lhs), r.op, rename(r.rhs)) for r in form.constraints),
                               text=rename_words(form.text), slots={k + suffix: v for k, v in form.slots.items()},
                               source=rename_words(form.source))


def compose(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    if (partner is None or partner.style != form.style or form.style not in ("expression", "story")
            or form.unknowns or partner.unknowns or len(form.target) != 1 or len(partner.target) != 1
            or len(form.quantities) + len(partner.quantities) > len(NAMES)):
        return None
    other = _renamed(partner, {q.name for q in form.quantities}, "2")
    op = rng.choice(["add", "sub"] if form.style == "story" else ["add", "sub", "mul"])
    joined = dataclasses.replace(form, target=(_joined(form.target[0], op, other.target[0]),),
                                 quantities=form.quantities + other.quantities,
                                 constraints=form.constraints + other.constraints,
                                 integral=form.integral and other.integral)
    if form.style == "expression":
        return joined
    word = {"add": "sum", "sub": "difference (first minus second)"}[op]
    return dataclasses.replace(joined, slots={**form.slots, **other.slots},
                               text=f"First: {form.text} Second: {other.text} What is the {word} of the two answers?",
                               source=f"({form.source}) {'+' if op == 'add' else '-'} ({other.source})")


def swap_operation(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    if form.style != "expression" or form.unknowns:
        return None
    tree = parse_tree(form.target[0])
    paths = list(_operation_paths(tree))
    if not paths:
        return None
    path = rng.choice(paths)
    return dataclasses.replace(form, target=(tree_text(_rewritten(tree, path, lambda node: (rng.choice(SWAPS[node[0]]),
                                                                                           *node[1:]))),))


def _operation_paths(node: tuple, path: tuple = ()):
    if node[0] in SWAPS:
        yield path
    for i, child in enumerate(node[1:], start=1):
        if isinstance(child, tuple):
            yield from _operation_paths(child, path + (i,))


def _rewritten(node: tuple, path: tuple, change) -> tuple:
    """The tree with the node at `path` (child indices from the root) replaced by `change(node)`."""
    if not path:
        return change(node)
    i = path[0]
    return node[:i] + (_rewritten(node[i], path[1:], change),) + node[i + 1:]


def add_distractor(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    if form.style != "story":
        return None
    (n,) = _unused(form)
    sentence = rng.choice(DISTRACTORS).replace("{n}", "{" + n + "}")
    sentences = re.split(r"(?<=[.!?]) ", form.text)
    at = rng.randrange(len(sentences))
    return dataclasses.replace(form, quantities=form.quantities + (Quantity(n, rng.randint(2, 30), 2, 30),),
                               text=" ".join(sentences[:at] + [sentence] + sentences[at:]))


def smaller_constants(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    """Each quantity not already at the easy end of its range (the value nearest zero in it) redrawn between that
    end and halfway to its value: smaller numbers, the same structure."""
    values = {}
    for q in form.quantities:
        easy = min(max(0, q.low), q.high)
        if q.value != easy:
            halfway = (easy + q.value) // 2 if q.value > easy else -((-easy - q.value) // 2)
            values[q.name] = rng.randint(min(easy, halfway), max(easy, halfway))
    return form.with_values(values) if values else None


def drop_step(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    """One operation of an expression with two or more replaced by one of its operands, and the quantities no
    longer used dropped: the same problem with one reasoning step fewer."""
    if form.style != "expression" or form.unknowns:
        return None
    tree = parse_tree(form.target[0])
    paths = list(_operation_paths(tree))
    if len(paths) < 2:
        return None
    path = rng.choice(paths)
    keeps_an_operation = lambda node: [c for c in node[1:] if path or c[0] in SWAPS]  # noqa: E731 - at the root
    target = _rewritten(tree, path, lambda node: rng.choice(keeps_an_operation(node)))
    used = set(re.findall(r"\b[a-z]\b", tree_text(target)))
    return dataclasses.replace(form, target=(tree_text(target),),
                               quantities=tuple(q for q in form.quantities if q.name in used))


def restate(form: Symbolic, rng: random.Random, partner: Symbolic | None = None) -> Symbolic | None:
    """The same quantities, target and fact in other words: another phrasing of an expression, another person in
    a story."""
    if form.style == "expression" and form.text in PHRASINGS:
        return dataclasses.replace(form, text=rng.choice([p for p in PHRASINGS if p != form.text]))
    if form.style == "story" and "who" in form.slots:
        return dataclasses.replace(form, slots={**form.slots, "who": rng.choice(
            [n for n in PEOPLE if n not in form.slots.values()])})
    return None


OPERATOR_FUNCTIONS = {"change_constant": change_constant, "add_step": add_step, "other_unknown": other_unknown,
                      "compose": compose, "swap_operation": swap_operation, "add_distractor": add_distractor,
                      "smaller_constants": smaller_constants, "drop_step": drop_step,
                      "restate": restate}
OPERATOR_STYLES = {"change_constant": {"expression", "equation", "roots", "story"},
                   "add_step": {"expression", "equation", "story"}, "other_unknown": {"expression", "equation"},
                   "compose": {"expression", "story"}, "swap_operation": {"expression"}, "add_distractor": {"story"},
                   "smaller_constants": {"expression", "equation", "roots", "story"}, "drop_step": {"expression"},
                   "restate": {"expression", "story"}}
OPERATORS = tuple(OPERATOR_FUNCTIONS)


def apply_recipe(form: Symbolic, recipe: tuple[str, ...], rng: random.Random, partner: Symbolic | None = None,
                 tries: int = 12) -> tuple[Symbolic, object] | None:
    """The form after each operator of `recipe` in turn, with its derived answer: each operator is drawn up to
    `tries` times until its child is well posed. None when an operator does not apply or never comes out well posed."""
    for name in recipe:
        for _ in range(tries):
            try:
                child = OPERATOR_FUNCTIONS[name](form, rng, partner)
                if child is None:
                    return None
                answer = derive_answer(child)
                break
            except IllPosed:
                continue
        else:
            return None
        form = dataclasses.replace(child, structure=f"{form.structure}>{name}")
    return form, answer


def child_problem(parent: Problem, form: Symbolic, answer, recipe: tuple[str, ...]) -> Problem:
    """The child as a `Problem`: words realised from its form, its fact spelled as the generators spell theirs."""
    question = realise(form)
    meta = {"template": form.structure, "recompute": fact_source(form), "d": parent.meta.get("d", 0.0),
            "steps": parent.meta.get("steps", 0) + recipe.count("add_step") + recipe.count("compose"),
            "parent": parent.id, "recipe": list(recipe), "structure": structure_key(form)}
    steps = worked_steps(form, answer)
    return Problem(id=f"{parent.topic}-t-{question_key(question)}", question=question, answer=render(answer),
                   difficulty=parent.difficulty, topic=parent.topic, source="teacher",
                   solution=worked_solution(steps, render(answer)) if steps else "", meta=meta, symbolic=form)


def modify(parent: Problem, recipe: tuple[str, ...], rng: random.Random, *, partner: Problem | None = None,
           exclude: set[str] = frozenset(), split: str | None = "train") -> Problem | None:
    """A child of `parent` made by `recipe`, or None: no symbolic form, an operator that does not apply, no
    well-posed draw, the same question as the parent, or a fact that is excluded or on the other side of `split`.
    The answer is the one SymPy derives, re-checked by the verifier against SymPy's own string for it."""
    from verifier_pool import answers_match

    if parent.symbolic is None:
        return None
    made = apply_recipe(parent.symbolic, recipe, rng, partner.symbolic if partner is not None else None)
    if made is None:
        return None
    child = child_problem(parent, *made, recipe)
    fact = fact_key(child)
    if child.question == parent.question or fact in exclude or not in_split(fact, split):
        return None
    return child if answers_match(child.answer, sympy_string(made[1])) else None

