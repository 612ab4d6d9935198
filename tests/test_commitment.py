"""Finals that commit, or no credit (`verifier_pool.commitment`): every labelled right answer, wrapped in generated
hedges, negations, conditions and rival values (prose, LaTeX, `\\boxed{}`), earns nothing through `compare` and
`score` under both policies; the answers that only look like hedges keep their credit."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import load_jsonl
from verifier_pool import Verdict, compare, extract_answer, sandbox
from verifier_pool.commitment import commitment_issue
from verifier_pool.equivalence import _holds_several, compare_inline
from verifier_pool.extract import FinalStatement, extract_final
from verifier_pool.normalize import COMMITMENT_WORDS, UNIT_WORDS, drop_trailing_text, normalize
from verifier_pool.reward import score
from verifier_pool.trl_reward import trl_reward

POLICIES = ("lenient", "strict")


def _credited() -> list[tuple[str, str]]:
    """(answer as written, gold) of every row labelled equal in both corpora (a completion row: its final answer)."""
    out = []
    for name in ("bench/data/verifier_pairs.jsonl", "bench/data/math_verify_suite.jsonl"):
        for row in load_jsonl(name):
            if not row["label"]:
                continue
            pred = row["pred"] if "pred" in row else extract_answer(row["completion"])
            gold = extract_answer(row["gold"]) if row.get("gold_is_text") else row["gold"]
            if pred and gold:
                out.append((pred, gold))
    return out


CREDITED = _credited()
ONE_VALUE = [(answer, gold) for answer, gold in CREDITED if not _holds_several(gold)]

# Templates: {A} the answer and {R} the rival in one form (prose, `$…$`, `\boxed{}`), {a} / {r} as written (inside a
# box), {w} a word of the class.
HEDGES = ["probably", "maybe", "possibly", "perhaps", "presumably", "likely", "not sure, but", "it seems"]
QUALIFIERS = ["about", "around", "roughly", "approximately", "nearly", "almost", "at least", "at most", "more than",
              "less than", "no more than", "close to", "~", "≈", "over", "just under"]
NEGATIONS = ["is not", "isn't", "is never", "cannot be", "can't be", "is definitely not", "is \\neq", "≠"]
CONDITIONS = ["if x > 0", "unless I made an error", "if my arithmetic is right", "provided that n is even",
              "assuming no mistakes", "if x > 0, otherwise {R}"]
DISJUNCTIONS = ["or", "or maybe", "or possibly", ", or perhaps", ", or"]
TEMPLATES = {
    "hedge": ["The answer is {w} {A}.", "{W} {A}", "{W}, the answer is {A}.", "It is {w} {A}.", "{A}, {w}.",
              "The final answer is {w} {A}", "I'd say {w} {A}"],
    "qualifier": ["The answer is {w} {A}.", "{W} {A}", "It is {w} {A}.", "{A} or so", "{A} or more.",
                  "The answer is between {R} and {A}.", "between {A} and {R}", "Final Answer: {w} {A}",
                  "The answer is {A}, give or take.", "from {A} to {R}"],
    "negation": ["The answer {w} {A}.", "It {w} {A}.", "Not {A}.", "never {A}", "{A} (not {R})", "{R}, not {A}",
                 "The result {w} {A}", "{A} is wrong.", "{A} would be incorrect"],
    "condition": ["{A} {w}", "The answer is {A} {w}.", "{A}, {w}.", "If I made no error, {A}.", "{A} {w}, else {R}",
                  "Unless I slipped, the answer is {A}.", "If x > 0, the answer is {A}."],
    "disjunction": ["The answer is either {A} or {R}.", "The answer is {A} {w} {R}.", "The answer is {R} {w} {A}.",
                    "{A} {w} {R}", "{R} {w} {A}", "Either {A} or {R}", "Final Answer: {A}, or possibly {R}",
                    "It could be {A}, but it might be {R}.", "{A} (or {R})"],
    "question": ["{A}?", "Is it {A}?", "The answer is {A}?"],
}
WORDS = {"hedge": HEDGES, "qualifier": QUALIFIERS, "negation": NEGATIONS, "condition": CONDITIONS,
         "disjunction": DISJUNCTIONS, "question": [""]}
BOXED_ONLY = ["\\boxed{{{a}}}\\boxed{{{r}}}", "\\boxed{{{r}}}\\boxed{{{a}}}", "\\boxed{{{a}}} or \\boxed{{{r}}}",
              "\\boxed{{{r}}} or \\boxed{{{a}}}", "\\boxed{{{a} \\text{{ or }} {r}}}",
              "\\boxed{{{a}\\text{{ (probably)}}}}",
              "\\boxed{{{a} \\text{{ or maybe }} {r}}}", "\\boxed{{{a}}} unless I made an error",
              "$\\boxed{{{a}}}$ (or {r})", "maybe \\boxed{{{a}}}", "\\boxed{{\\text{{not }} {a}}}", "\\boxed{{{a}?}}"]
FORMS = {"prose": "{}", "latex": "${}$", "boxed": "\\boxed{{{}}}"}
REASONING = "Let me think. If we add 3 and 4 we do not get 8, and it is about 7 or so.\n"


@st.composite
def hedged(draw, answer: str, gold: str) -> str:
    """A completion whose final statement hedges `answer`: a class template in one form, or a boxes-only template,
    bare, after some reasoning, or inside <final_answer>; the rival is a number that is not in the gold."""
    rival = draw(st.integers(10, 9999).map(str).filter(lambda r: r not in gold and r not in answer))
    if draw(st.booleans()):
        text = draw(st.sampled_from(BOXED_ONLY)).format(a=answer, r=rival)
    else:
        kind = draw(st.sampled_from(sorted(TEMPLATES)))
        form = FORMS[draw(st.sampled_from(sorted(FORMS)))]
        word = draw(st.sampled_from(WORDS[kind])).replace("{R}", form.format(rival))
        template = draw(st.sampled_from(TEMPLATES[kind]))
        text = template.format(A=form.format(answer), R=form.format(rival), w=word, W=word[:1].upper() + word[1:])
    wrapper = draw(st.sampled_from(["{}", REASONING + "{}", "<final_answer>{}</final_answer>"]))
    return wrapper.format(text)


def _assert_no_credit(text: str, gold: str) -> None:
    for policy in POLICIES:
        judged = compare(text, gold, policy=policy)
        assert not judged.equal, (policy, judged)
        breakdown = score(text, "What is the answer?", gold, policy=policy)
        assert breakdown.verdict != Verdict.CORRECT and breakdown.correctness < 1.0, (policy, breakdown)


@pytest.mark.parametrize("answer, gold", CREDITED, ids=lambda s: s[:24])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_credited_answer_loses_its_credit_when_hedged(answer, gold, data):
    _assert_no_credit(data.draw(hedged(answer, gold)), gold)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), row=st.sampled_from(ONE_VALUE))
def test_a_hedged_final_is_verdict_hedged_not_merely_wrong(data, row):
    """Through `score`, a hedged final statement whose answer would be credited gets its own verdict, `hedged`, and
    correctness 0 (for a gold of several values, adjacent boxes are its members: judged by value, so not here)."""
    text = data.draw(hedged(row[0], row[1]))
    for policy in POLICIES:
        breakdown = score(text, "What is the answer?", row[1], policy=policy)
        if compare(breakdown.extracted, row[1], policy=policy).equal:
            assert breakdown.verdict == Verdict.HEDGED and breakdown.correctness == 0.0, (policy, text, breakdown)


@pytest.mark.parametrize("completion", [
    "The answer is either 3 or 5.", "The answer is 5 or 3", "\\boxed{3} or \\boxed{5}", "\\boxed{5}\\boxed{3}",
    "The answer is not 5.", "It isn't 5", "It isn’t 5", "The answer is probably 5", "maybe \\boxed{5}",
    "\\boxed{5 \\text{ or maybe } 6}", "\\boxed{5\\text{ (probably)}}", "about 5", "5 or so", "at least 5",
    "between 4 and 5", "5 if x > 0, otherwise 6", "\\boxed{5} unless I made an error", "Final Answer: 5, or possibly 6",
    "<final_answer>5 or 6</final_answer>", "$6$ or $5$", "6 (not 5)", "never 5", "5?", "\\boxed{5?}",
    "The answer is \\boxed{5}. Or maybe \\boxed{6}.", "The answer is $\\boxed{5}$. Or maybe 6.",
    "I think it's 6, but it could be 5", "\\boxed{\\text{either } 5 \\text{ or } 6}", "5, possibly",
    "The answer is not $x = \\boxed{5}$.", "Therefore, the answer is probably\n\\[\n\\boxed{5}\n\\]",
    "\\boxed{5}\n\\boxed{6}", "We get \\boxed{5} or \\boxed{6}.",
    "<final_answer>\\boxed{5} or \\boxed{6}</final_answer>",
    "The answer is 5, not 6.", "Answer: 5 or 6", "#### 5 or 6", "The answer is at most 5.", "\\boxed{5\\text{ maybe}}",
    "~5", "The answer is ≈ 5.", "\\boxed{\\neq 5}", "The answer is 4 to 5.", "Not sure, but I think it's 5.",
    "I'm not 100% sure, but the answer is \\boxed{5}.", "It seems the answer is 5.", "\\boxed{5} is wrong.",
    "probably <final_answer>5</final_answer>", "<final_answer>5</final_answer> or 6",
    "The answer is \\boxed{5}. Not sure.",
    "5ish", "The answer is 5, or thereabouts.", "The answer would be 5 if x were positive.", "\\boxed{5} (approx.)",
    "If x > 0, then \\boxed{5}.", "Unless I made a mistake, the answer is $\\boxed{5}$.", "$x = 6$ or $x = 5$",
    "The answer is \\boxed{5}, I think, or 6.", "\\boxed{5}, but it could also be 6.", "The answer cannot be 5.",
    "$6$, or $\\boxed{5}$.", "The answer is \\boxed{6}. Alternatively, \\boxed{5}.", "\\boxed{5} (I think)",
    "\\boxed{5} at minimum",
])
def test_each_class_of_hedge_is_refused_as_hedged(completion):
    for policy in POLICIES:
        breakdown = score(completion, "What is x?", "5", policy=policy)
        assert breakdown.verdict == Verdict.HEDGED and breakdown.correctness == 0.0, (policy, breakdown)
        pred = completion.replace("<final_answer>", "").replace("</final_answer>", "")
        assert compare(pred, "5", policy=policy).verdict == Verdict.HEDGED, policy


@pytest.mark.parametrize("completion, gold", [
    ("<final_answer>x = 2 or x = 3</final_answer>", "\\{2, 3\\}"),
    ("The roots are $\\boxed{x = 2 \\text{ or } x = 3}$.", "\\{2, 3\\}"),
    ("The answer is $x = 2$ or $x = 3$.", "x = 2, 3"),
    ("The solutions are $\\boxed{2}$ and $\\boxed{3}$.", "\\{2,3\\}"),
    ("<final_answer>2, 3</final_answer>", "{2,3}"),
    ("So the answer is \\boxed{7}\\boxed{7}.", "7"),
    ("The side is \\boxed{5 \\text{ cm}}.", "5"),
    ("The side is $5 \\text{ cm}$.", "5"),
    ("If we add 3 and 4 we do not get 8; it is about 7, not 6, or so it seems.\nThe answer is 7.", "7"),
    ("If we add 3 and 4 we do not get 8; maybe 6?\nTherefore, the answer is $\\boxed{7}$.", "7"),
    ("The point is \\boxed{(2, 3)}.", "(2, 3)"),
    ("The answer is $\\boxed{\\text{(C)}}$.", "\\text{(C)}"),
    ("Thus, $x \\in \\boxed{[2, 5)}$.", "[2,5)"),
    ("Therefore, the number of integers less than 100 that are not divisible by 3 or 5 is $\\boxed{47}$.", "47"),
    ("There are $\\boxed{47}$ integers less than 100 that are not divisible by 3 or 5.", "47"),
    ("So the distance between A and B is \\boxed{5}.", "5"),
    ("The probability of at least one head is $\\boxed{\\frac{3}{4}}$.", "\\frac{3}{4}"),
    ("Adding the numbers that are not multiples of 3 gives \\boxed{12}.", "12"),
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
    ("Final Answer: The largest $n$ for which this is not possible is 34.", "34"),
    ("So, I think the answer is \\boxed{12}.", "12"),
    ("First \\boxed{3}, then correcting: \\boxed{5}", "5"),
    ("It is \\boxed{\\text{not possible}}.", "\\text{not possible}"),
    ("The most likely sum is \\boxed{7}.", "7"),
    ("The three numbers add up to \\boxed{12}.", "12"),
    ("Rounding, $\\frac{16}{3} \\approx \\boxed{5.33}$.", "5.33"),
    ("<response><reasoning>2 + 3 is not 6, maybe 5.</reasoning><final_answer>5</final_answer></response>", "5"),
    # the final sentences of MATH and GSM8K reference solutions: premises, restatements, descriptions
    ("If $N^2 = 121$, then $N = \\boxed{11}$.", "11"),
    ("Thus, if $f(-3) = 2,$ then $f(3) = f(-3) + 6 = 2 + 6 = \\boxed{8}.$", "8"),
    ("By the Pythagorean Theorem, $AB=\\frac{5}{4}=1\\frac{1}{4}$, or $\\boxed{1.25}$.", "1.25"),
    ("The length of $DE$ is $\\sqrt{DF^2 - EF^2},$ or $\\sqrt{100 - 49} = \\boxed{\\sqrt{51}}$.", "\\sqrt{51}"),
    ("We have $-8y=392$, or $y=\\boxed{-49}$.", "-49"),
    ("Therefore, when $x=-8$, $y=\\boxed{-49}$.", "-49"),
    ("Because $x$ cannot be $0$, $x=\\boxed{5}$.", "5"),
    ("So the domain is $x<2 \\text{ or } x>3$, or $x \\in \\boxed{(-\\infty, 2) \\cup (3, \\infty)}$.",
     "(-\\infty, 2) \\cup (3, \\infty)"),
    ("It is true if and only if $x\\ge \\frac{8+3}{2} = \\boxed{\\frac{11}{2}}$.", "\\frac{11}{2}"),
    ("So the 100th term has a remainder of $\\boxed{3}$ when divided by 4.", "3"),
    ("If a dozen cartons cost $1440, then the price of a pack is $\\frac{1440}{1440} = \\boxed{1}$.", "1"),
    ("She had $10 and spent $7 so she had $10-$7 = $3.00 left over\n#### 3", "3"),
    ("$t$ is an integer between 5 and 12 inclusive, which leaves us with $\\boxed{8}$ possible values.", "8"),
    ("The answer is: \\[\n\\boxed{12}\n\\]\nI hope it is correct.", "12"),
])
def test_answers_that_only_look_like_hedges_keep_their_credit(completion, gold):
    for policy in POLICIES:
        breakdown = score(completion, "Find it.", gold, policy=policy)
        assert breakdown.verdict == Verdict.CORRECT and breakdown.correctness == 1.0, (policy, breakdown)


@pytest.mark.parametrize("pred, gold", [("x = 2 or x = 3", "\\{2, 3\\}"), ("2, 3", "{2,3}"), ("2 and 3", "{2,3}"),
                                        ("x = 3 \\text{ or } x = 2", "x = 2, 3"), ("5 \\text{ cm}", "5"),
                                        ("17\\text{ apples}", "17"), ("\\text{neither}", "\\text{neither}")])
def test_bare_answers_that_only_look_like_hedges_keep_their_credit(pred, gold):
    assert all(compare(pred, gold, policy=policy).equal for policy in POLICIES)


def test_trailing_text_is_dropped_only_when_it_does_not_hedge():
    assert not UNIT_WORDS & COMMITMENT_WORDS.keys()
    assert drop_trailing_text("17\\text{ apples}") == "17" and drop_trailing_text("18\\text{ ways.}") == "18"
    for tail in ("maybe", "or so", "or more", "not", "if correct", "approximately", "at least"):
        assert drop_trailing_text(f"5\\text{{ {tail}}}") == f"5\\text{{ {tail}}}"
        assert normalize(f"5\\text{{ {tail}}}") != "5"


def test_the_final_statement_is_the_sentence_holding_the_answer():
    final = extract_final("If we add 3 and 4 we do not get 8.\nSo the answer is $\\boxed{7}$ apples. Then more.")
    assert final.answer == "7"
    assert final.statement == FinalStatement("\\boxed{7}", "So the answer is $", "$ apples")
    assert extract_final("5 or so").statement == FinalStatement("5", "", " or so")
    assert extract_final("no answer here").statement is None


def test_the_check_travels_to_the_sandbox_and_through_trl_and_the_strict_canaries():
    statement = FinalStatement("\\frac{1}{2}", "probably ")
    assert compare_inline("\\frac{1}{2}", "1/2", "lenient", "", "", statement.to_wire()).verdict == Verdict.HEDGED
    reply = sandbox.run("compare", ("\\frac{1}{2}", "1/2", "lenient", "", "", statement.to_wire()), timeout=10)
    assert reply["verdict"] == "hedged"
    assert compare("\\frac{1}{2}", "1/2", statement=statement).verdict == Verdict.HEDGED
    assert compare("\\frac{1}{2}", "1/2", statement=FinalStatement("\\frac{1}{2}", "The answer is ")).equal
    reward = trl_reward("strict")
    assert reward(["The answer is probably 5.", "The answer is \\boxed{5}."], answer=["5", "5"]) == [0.0, 1.0]


def test_the_commitment_check_is_linear_on_hostile_text():
    for text in ("or " * 4000, "a" * 20000, "\\boxed{" * 3000, "n't " * 4000, "is " * 4000 + "5", "?" * 20000):
        start = time.perf_counter()
        commitment_issue(FinalStatement(text, text, text), text)
        extract_final(text + " 5 or so")
        assert time.perf_counter() - start < 0.5, text[:10]
    assert commitment_issue(FinalStatement("5", "The answer is "), "5") is None
    assert commitment_issue(FinalStatement("5", "It is probably "), "5") == "hedged ('probably')"
