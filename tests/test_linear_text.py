"""Every scan of model or dataset text is linear: extraction, normalisation, shapes and the reward's text signals run
in the caller's process, outside the sandbox's deadline, so a super-linear regex there is a hang no deadline stops.

Two checks. A static one walks every regex of the verifier's text modules (module-level patterns and the literal
patterns of `re.*` calls) and refuses the two spellings that backtrack super-linearly: an unbounded repeat nested in
another, and two unbounded repeats over overlapping characters with only optional items (or characters both take)
between them (`[ \\t]*:?[ \\t]*`, `\\w+_\\w+`), unless one is possessive or atomic. A dynamic one times the work (CPU
time, best of three) of each text function on each crafted family of bench/verifier_adversarial.py at n and 2n
characters, up to the cap the entry points apply: linear work doubles, quadratic work quadruples.
"""
from __future__ import annotations

import ast
import gc
import importlib.util
import inspect
import pathlib
import re
import time

import pytest

from verifier_pool import commitment, equivalence, extract, normalize, parse, reward, tools, trl_reward
from verifier_pool.commitment import commitment_issue
from verifier_pool.extract import MAX_COMPLETION_CHARS, FinalStatement, extract_final
from verifier_pool.normalize import MAX_RAW_CHARS
from verifier_pool.parse import Unparsable

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = (extract, normalize, parse, equivalence, reward, trl_reward, tools, commitment)
_C = re._constants
UNBOUNDED = (_C.MAX_REPEAT, _C.MIN_REPEAT)
PROBE = [chr(i) for i in range(128)] + ["\xa0", "\u2009", "é", "٣", "’"]
CATEGORIES = {getattr(_C, f"CATEGORY_{name}"): re.compile(rx) for name, rx in
              (("DIGIT", r"\d"), ("NOT_DIGIT", r"\D"), ("SPACE", r"\s"), ("NOT_SPACE", r"\S"), ("WORD", r"\w"),
               ("NOT_WORD", r"\W"))}


def _load_families() -> list:
    spec = importlib.util.spec_from_file_location("verifier_adversarial", ROOT / "bench/verifier_adversarial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FAMILIES


FAMILIES = _load_families()


# ---------------------------------------------------------------- static: the spellings that backtrack


def module_patterns(module) -> list[str]:
    """The patterns of a module: compiled ones it holds (alone, in a dict, list or tuple) and the literal first
    argument of its `re.*` calls."""
    found, stack = [], list(vars(module).values())
    while stack:
        value = stack.pop()
        if isinstance(value, re.Pattern):
            found.append(value.pattern)
        elif isinstance(value, dict):
            stack += value.values()
        elif isinstance(value, (list, tuple)):
            stack += value
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        first = node.args[0]
        if (isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.func.attr != "escape"
                and isinstance(first, ast.Constant) and isinstance(first.value, str)):
            found.append(first.value)
    return found


def _chars(items) -> frozenset[str]:
    """The probe characters any part of a parsed pattern can consume."""
    out: set[str] = set()
    for op, av in items:
        if op == _C.LITERAL:
            out.add(chr(av))
        elif op == _C.NOT_LITERAL:
            out.update(c for c in PROBE if ord(c) != av)
        elif op == _C.ANY:
            out.update(c for c in PROBE if c != "\n")
        elif op == _C.IN:
            out.update(c for c in PROBE if _in_set(c, av))
        elif op == _C.BRANCH:
            out.update(*(_chars(branch) for branch in av[1]))
        elif op == _C.SUBPATTERN:
            out |= _chars(av[3])
        elif op in UNBOUNDED or op == _C.POSSESSIVE_REPEAT:
            out |= _chars(av[2])
        elif op == _C.ATOMIC_GROUP:
            out |= _chars(av)
    return frozenset(out)


def _in_set(c: str, items) -> bool:
    negate = bool(items) and items[0][0] == _C.NEGATE
    hit = False
    for op, av in items:
        if op == _C.LITERAL:
            hit |= c == chr(av)
        elif op == _C.RANGE:
            hit |= av[0] <= ord(c) <= av[1]
        elif op == _C.CATEGORY:
            hit |= bool(CATEGORIES[av].match(c))
    return hit != negate


def _unbounded(item):
    """The body of an unbounded backtracking repeat (seen through groups around it alone), else None."""
    op, av = item
    if op in UNBOUNDED and av[1] == _C.MAXREPEAT:
        return av[2]
    if op == _C.SUBPATTERN and len(av[3]) == 1:
        return _unbounded(av[3][0])
    return None


def _width(item) -> tuple[int, int]:
    return re._parser.SubPattern(re._parser.State(), [item]).getwidth()


def _children(op, av) -> list:
    if op == _C.BRANCH:
        return list(av[1])
    if op == _C.SUBPATTERN:
        return [av[3]]
    if op in UNBOUNDED or op == _C.POSSESSIVE_REPEAT:
        return [av[2]]
    if op == _C.ATOMIC_GROUP:
        return [av]
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        return [av[1]]
    return []


def backtracking_issues(pattern: str) -> list[str]:
    """Why a pattern can backtrack super-linearly (empty when it cannot, by the two rules in the module docstring)."""
    issues: list[str] = []

    def walk(items, in_unbounded: bool) -> None:
        for i, (op, av) in enumerate(items):
            body = _unbounded((op, av))
            if body is not None and op in UNBOUNDED and in_unbounded:
                issues.append(f"an unbounded repeat inside another: {av}")
            _adjacent(items, i, body, issues)
            for child in _children(op, av):
                walk(child, in_unbounded or (op in UNBOUNDED and av[1] == _C.MAXREPEAT))

    walk(re._parser.parse(pattern), False)
    return issues


def _adjacent(items, i: int, body, issues: list[str]) -> None:
    """Whether the unbounded repeat at `items[i]` meets another over shared characters, across optional items and
    single characters both repeats take."""
    if body is None:
        return
    shared, between = _chars(body), set()
    for item in items[i + 1 :]:
        other = _unbounded(item)
        if other is not None:
            if shared & _chars(other) and between <= _chars(other):
                issues.append(f"adjacent unbounded repeats over {sorted(shared & _chars(other))[:6]}")
            return
        low, high = _width(item)
        if low == 0:
            continue
        if high == 1 and _chars([item]) <= shared:
            between |= _chars([item])
            continue
        return


@pytest.mark.parametrize("pattern", [r"[ \t]*:?[ \t]*", r"\w+_\w+", r"(?:a+)*b", r"=\s*([^=\n]+?)\s*x",
                                     r"(?:[\s$,]|\\[()])*(?:and|,)?(?:[\s$,]|\\[()])*"])
def test_the_static_check_refuses_the_spellings_that_backtrack(pattern):
    assert backtracking_issues(pattern)


@pytest.mark.parametrize("pattern", [r"[ \t]*+:?+[ \t]*+", r"\w[^\W_]*+_\w++", r"\d+(?:\.\d+)?(?:[eE][-+]?\d{1,9})?",
                                     r"=\s*+([^=\n]+?)(?<![^\S\n])[^\S\n]*+x", r"####[ \t]*([^\n]{1,300})"])
def test_the_static_check_passes_their_linear_spellings(pattern):
    assert backtracking_issues(pattern) == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_no_regex_on_model_text_backtracks_super_linearly(module):
    found = {p: backtracking_issues(p) for p in module_patterns(module)}
    assert {p: why for p, why in found.items() if why} == {}


# ---------------------------------------------------------------- dynamic: work at n and 2n

FLOOR_S = 0.005  # below this at the cap, a ratio is noise and the cost harmless


def _structure(text: str):
    try:
        return equivalence.structure(normalize.normalize(text))
    except Unparsable:
        return None


ANSWER_FUNCTIONS = {
    "normalize": normalize.normalize,
    "structure": _structure,
    "commitment": lambda text: commitment_issue(FinalStatement(text, text, text), "1"),
    "final_answer": lambda text: extract_final(f"<final_answer>{text}</final_answer>"),
}
COMPLETION_FUNCTIONS = {
    "extract_final": extract_final,
    "last_result": reward.last_result,
    "tags": lambda text: (reward.format_signal(text), reward.reasoning_text(text)),
    "numbers": lambda text: (reward.reasoning_depth_signal(text), reward.numerical_grounding_signal(text, text)),
    "normalize": normalize.normalize,
}


def work(fn, text: str) -> float:
    """CPU seconds of one call, best of three (the cyclic garbage collector paused: its runs are noise here)."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(3):
            start = time.process_time()
            fn(text)
            best = min(best, time.process_time() - start)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("family", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_text_functions_do_linear_work(family):
    _, kind, _, build = family
    cap = MAX_RAW_CHARS if kind == "answer" else MAX_COMPLETION_CHARS
    n = cap * 2 // 5
    functions = ANSWER_FUNCTIONS if kind == "answer" else COMPLETION_FUNCTIONS
    slow = {}
    for name, fn in functions.items():
        small, large = build(n), build(2 * n)
        fn(small)
        t1, t2 = work(fn, small), work(fn, large)
        if t2 > FLOOR_S and t2 / max(t1, 1e-6) > 3.0:
            slow[name] = f"{t1 * 1000:.1f} ms at {len(small)} chars, {t2 * 1000:.1f} ms at {len(large)}"
    assert slow == {}


def test_entry_points_cap_before_they_scan():
    """Two megabytes cost what the cap costs: the entry points cut model text before any scan."""
    big = "\\boxed{1}" + " " * 1_000_000 + "x\\boxed{2} = 1" + " " * 1_000_000 + "=1"
    calls = {"extract_final": lambda: extract_final(big), "normalize": lambda: normalize.normalize(big),
             "fast_compare": lambda: equivalence.fast_compare(big, "1"),
             "commitment": lambda: commitment_issue(FinalStatement(big, big, big), big)}
    for name, call in calls.items():
        start = time.process_time()
        call()
        assert time.process_time() - start < 0.5, name
