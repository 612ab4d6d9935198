import math

import pytest

from verifier_pool.equivalence import Verdict
from verifier_pool.reward import (
    RewardWeights, consistency_signal, correctness_signal, format_signal, length_signal,
    numerical_grounding_signal, parsability_signal, reasoning_depth_signal, reasoning_text, repetition_signal,
    score,
)

PROBLEM = "Tom has 12 apples and buys 30 more. How many apples does he have?"
GOOD = ("<response><reasoning>Tom starts with 12 apples. He buys 30 more, so 12 + 30 = 42 apples in total."
        "</reasoning><final_answer>42</final_answer></response>")


def test_weights_must_sum_to_one_and_be_non_negative():
    RewardWeights()
    with pytest.raises(ValueError):
        RewardWeights(correctness=0.6)
    with pytest.raises(ValueError):
        RewardWeights(correctness=0.7, consistency=-0.1)


def test_correctness_full_partial_and_none():
    w = RewardWeights()
    assert correctness_signal(Verdict(True, "correct", 0.0), w) == 1.0
    near = correctness_signal(Verdict(False, "wrong", 0.01), w)
    far = correctness_signal(Verdict(False, "wrong", 1.0), w)
    assert near == pytest.approx(0.1 * math.exp(-0.1))
    assert 0 < far < near <= 0.1
    assert correctness_signal(Verdict(False, "wrong", None), w) == 0.0
    assert correctness_signal(Verdict(False, "timeout", None), w) == 0.0


def test_consistency():
    assert consistency_signal("42", "12 + 30 = 42 apples.") == 1.0
    assert consistency_signal("41", "12 + 30 = 42 apples.") == 0.0
    assert consistency_signal("42", "first 10, then 42") == 1.0
    assert consistency_signal(None, "12 + 30 = 42") == 0.0
    assert consistency_signal("42", "") == 0.0


def test_reasoning_depth_grows_with_arithmetic_shown():
    assert reasoning_depth_signal("I just know.") == 0.0
    shallow = reasoning_depth_signal("12 + 30 = 42")
    deep = reasoning_depth_signal("12 + 30 = 42, 42 * 2 = 84, 84 - 4 = 80, 80 / 2 = 40, 40 + 2 = 42")
    assert 0 < shallow < deep <= 1.0


def test_numerical_grounding():
    assert numerical_grounding_signal("12 + 30 = 42", PROBLEM) == 1.0
    assert numerical_grounding_signal("12 apples", PROBLEM) == 0.5
    assert numerical_grounding_signal("nothing", PROBLEM) == 0.0
    assert numerical_grounding_signal("anything", "What is x?") == 1.0
    assert numerical_grounding_signal("1,200 and 3.50", "He has 1200 and 3.5") == 1.0


def test_format_rules():
    assert format_signal(GOOD) == 1.0
    assert format_signal("preamble " + GOOD) == 0.75
    assert format_signal("<reasoning>r</reasoning><final_answer>1</final_answer>") == 0.5
    assert format_signal("<final_answer>1</final_answer>") == 0.25
    assert format_signal("<response><final_answer>1</final_answer><reasoning>r</reasoning></response>") == 0.75
    assert format_signal("just 42") == 0.0


def test_parsability():
    assert parsability_signal(Verdict(False, "wrong")) == 1.0
    assert parsability_signal(Verdict(True, "correct")) == 1.0
    assert parsability_signal(Verdict(False, "unparsable")) == 0.0
    assert parsability_signal(Verdict(False, "timeout")) == 0.0


def test_length():
    assert length_signal("word " * 25) == 0.5
    assert length_signal("word " * 100) == 1.0
    assert length_signal("word " * 600) == 0.5
    assert length_signal("word " * 900) == 0.0


def test_repetition():
    assert repetition_signal("a b c d e f g") == 1.0
    assert repetition_signal("a b c d " * 20) < 0.1
    assert repetition_signal("short") == 1.0


def test_reasoning_text_prefers_the_block():
    assert reasoning_text(GOOD).startswith("Tom starts")
    assert reasoning_text(r"I compute 2+2. \boxed{4}") == "I compute 2+2."


def test_score_good_completion():
    b = score(GOOD, PROBLEM, "42")
    assert b.verdict == "correct" and b.extracted == "42"
    assert b.correctness == b.consistency == b.format == b.parsability == b.numerical_grounding == 1.0
    w = RewardWeights()
    expected = sum(getattr(w, name) * getattr(b, name) for name in RewardWeights.SIGNALS)
    assert b.total == pytest.approx(expected)
    assert all(0.0 <= getattr(b, name) <= 1.0 for name in RewardWeights.SIGNALS)


def test_correct_but_badly_formatted_beats_well_formatted_wrong():
    bare_correct = score("42", PROBLEM, "42")
    polished_wrong = score(GOOD.replace("42", "42.0001"), PROBLEM, "42")
    assert polished_wrong.verdict == "wrong" and polished_wrong.correctness > 0
    assert bare_correct.total > polished_wrong.total
    w = RewardWeights()
    worst_correct = w.correctness + w.parsability
    best_wrong = w.correctness * w.partial_credit_max + (1 - w.correctness)
    assert worst_correct > best_wrong


def test_score_never_raises_on_garbage():
    for bad in ["", "\x00" * 100, r"\boxed{9^{9^{9^9}}}", "<final_answer>" * 500, None]:
        b = score(bad, PROBLEM, "42")
        assert b.verdict in ("unparsable", "wrong", "timeout", "not_final") and b.correctness == 0.0


def test_custom_weights_change_the_total():
    only_format = RewardWeights(correctness=0, consistency=0, reasoning_depth=0, numerical_grounding=0,
                                format=1.0, parsability=0, length=0, repetition=0)
    assert score("<final_answer>41</final_answer>", PROBLEM, "42", only_format).total == 0.25


def test_reward_presets():
    from verifier_pool.reward import RewardWeights

    right = "<response><reasoning>7 * 8 = 56</reasoning><final_answer>56</final_answer></response>"
    wrong = "<response><reasoning>7 * 8 = 54</reasoning><final_answer>54</final_answer></response>"
    none = "I do not know"
    q = "What is 7 * 8?"
    simple = RewardWeights(preset="simple")
    assert [score(c, q, "56", simple).total for c in (right, wrong, none)] == [1.0, 0.2, 0.1]
    binary = RewardWeights(preset="binary")
    assert [score(c, q, "56", binary).total for c in (right, wrong, none)] == [1.0, 0.0, 0.0]
    dense = [score(c, q, "56") for c in (right, wrong, none)]
    assert dense[0].total > 0.5 > dense[1].total > dense[2].total
    assert 0.0 <= dense[1].shaping <= 1.0 and dense[1].shaping > dense[2].shaping
    assert score(wrong, q, "56", binary).format == dense[1].format  # every signal is still logged
    with pytest.raises(ValueError, match="preset"):
        RewardWeights(preset="dense9")
