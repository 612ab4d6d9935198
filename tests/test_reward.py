import dataclasses
import json
import math

import msgpack
import pytest

import verifier_pool
from verifier_pool.equivalence import Judgement, compare
from verifier_pool.reward import (
    RewardBreakdown, RewardWeights, Verdict, consistency_signal, correctness_signal, error_breakdown, format_signal,
    length_signal, numerical_grounding_signal, parsability_signal, reasoning_depth_signal, reasoning_text,
    repetition_signal, score,
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
    assert correctness_signal(Judgement(True, Verdict.CORRECT, 0.0), w) == 1.0
    near = correctness_signal(Judgement(False, Verdict.WRONG, 0.01), w)
    far = correctness_signal(Judgement(False, Verdict.WRONG, 1.0), w)
    assert near == pytest.approx(0.1 * math.exp(-0.1))
    assert far == pytest.approx(0.1 * math.exp(-10.0))
    assert correctness_signal(Judgement(False, Verdict.WRONG, None), w) == 0.0
    assert correctness_signal(Judgement(False, Verdict.WRONG, math.inf), w) == 0.0
    assert correctness_signal(Judgement(False, Verdict.TIMEOUT, None), w) == 0.0
    assert correctness_signal(Judgement(False, Verdict.NOT_FINAL, 0.0), w) == 0.0  # no partial credit for form


def test_consistency():
    assert consistency_signal("42", "12 + 30 = 42 apples.") == 1.0
    assert consistency_signal("41", "12 + 30 = 42 apples.") == 0.0
    assert consistency_signal("42", "first 10, then 42") == 1.0
    assert consistency_signal(None, "12 + 30 = 42") == 0.0
    assert consistency_signal("42", "") == 0.0


def test_reasoning_depth_grows_with_arithmetic_shown():
    assert reasoning_depth_signal("I just know.") == 0.0
    assert reasoning_depth_signal("12 + 30 = 42") == 0.25  # 2 operators + 3 numbers, of the target 20
    assert reasoning_depth_signal("12 + 30 = 42, 42 * 2 = 84, 84 - 4 = 80") == 0.75
    assert reasoning_depth_signal("12 + 30 = 42, 42 * 2 = 84, 84 - 4 = 80, 80 / 2 = 40, 40 + 2 = 42") == 1.0  # capped


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
    assert parsability_signal(Judgement(False, Verdict.WRONG)) == 1.0
    assert parsability_signal(Judgement(True, Verdict.CORRECT)) == 1.0
    for verdict in (Verdict.NOT_FINAL, Verdict.UNPARSABLE, Verdict.TIMEOUT, Verdict.ERROR):
        assert parsability_signal(Judgement(False, verdict)) == 0.0


def test_length():
    assert length_signal("word " * 25) == 0.5
    assert length_signal("word " * 100) == 1.0
    assert length_signal("word " * 600) == 0.5
    assert length_signal("word " * 900) == 0.0


def test_repetition():
    assert repetition_signal("a b c d e f g") == 1.0
    assert repetition_signal("a b c d " * 20) == pytest.approx(4 / 77)  # 77 four-grams, 4 distinct
    assert repetition_signal("short") == 1.0


def test_reasoning_text_prefers_the_block():
    assert reasoning_text(GOOD).startswith("Tom starts")
    assert reasoning_text(r"I compute 2+2. \boxed{4}") == "I compute 2+2."


def test_score_good_completion():
    b = score(GOOD, PROBLEM, "42")
    assert b.verdict == Verdict.CORRECT and b.extracted == "42"
    assert b.correctness == b.consistency == b.format == b.parsability == b.numerical_grounding == 1.0
    assert b.repetition == 1.0
    assert b.reasoning_depth == pytest.approx(0.35)  # 7 operators and numbers of 20
    assert b.length == pytest.approx(0.36)  # 18 words of the 50 that earn full credit
    w = RewardWeights()
    expected = sum(getattr(w, name) * getattr(b, name) for name in RewardWeights.SIGNALS)
    assert b.total == pytest.approx(expected) == pytest.approx(0.9158)


def test_correct_but_badly_formatted_beats_well_formatted_wrong():
    bare_correct = score("42", PROBLEM, "42")
    polished_wrong = score(GOOD.replace("42", "42.0001"), PROBLEM, "42")
    assert polished_wrong.verdict == Verdict.WRONG
    assert polished_wrong.correctness == pytest.approx(0.1 * math.exp(-10 * 0.0001 / 42))  # partial credit
    assert bare_correct.total == pytest.approx(0.6956) and polished_wrong.total == pytest.approx(0.4657988)
    assert bare_correct.total > polished_wrong.total
    w = RewardWeights()
    worst_correct = w.correctness + w.parsability
    best_wrong = w.correctness * w.partial_credit_max + (1 - w.correctness)
    assert worst_correct > best_wrong


@pytest.mark.parametrize("bad, verdict", [
    ("", Verdict.UNPARSABLE), ("\x00" * 100, Verdict.UNPARSABLE), (r"\boxed{9^{9^{9^9}}}", Verdict.NOT_FINAL),
    ("<final_answer>" * 500, Verdict.UNPARSABLE), (None, Verdict.UNPARSABLE),
])
def test_score_never_raises_on_garbage(bad, verdict):
    b = score(bad, PROBLEM, "42")
    assert b.verdict == verdict and b.correctness == 0.0 and b.parsability == 0.0


def test_custom_weights_change_the_total():
    only_format = RewardWeights(correctness=0, consistency=0, reasoning_depth=0, numerical_grounding=0,
                                format=1.0, parsability=0, length=0, repetition=0)
    assert score("<final_answer>41</final_answer>", PROBLEM, "42", only_format).total == 0.25


def test_reward_presets():
    from verifier_pool.reward import RewardWeights

    right = "<response><reasoning>7 * 8 = 56</reasoning><final_answer>56</final_answer></response>"
    wrong = "<response><reasoning>7 * 8 = 54</reasoning><final_answer>54</final_answer></response>"
    none = "I do not know"
    worked = "<response><reasoning>7 * 8 = 56, then 56 - 2 = 54</reasoning></response>"
    q = "What is 7 * 8?"
    simple = RewardWeights(preset="simple")  # halo-forge's table, row by row
    assert [score(c, q, "56", simple).total for c in (right, wrong, worked, none)] == [1.0, 0.2, 0.2, 0.1]
    binary = RewardWeights(preset="binary")
    assert [score(c, q, "56", binary).total for c in (right, wrong, worked, none)] == [1.0, 0.0, 0.0, 0.0]
    dense = [score(c, q, "56") for c in (right, wrong, none)]
    assert [b.total for b in dense] == pytest.approx([0.898, 0.43298363, 0.0224])
    assert [b.shaping for b in dense] == pytest.approx([0.796, 0.796, 0.0448])  # right and wrong: the same work shown
    assert score(wrong, q, "56", binary).format == dense[1].format  # every signal is still logged
    with pytest.raises(ValueError, match="preset"):
        RewardWeights(preset="dense9")


def test_verdict_is_a_str_enum_that_travels_as_its_plain_value():
    assert [v.value for v in Verdict] == ["correct", "wrong", "not_final", "hedged", "unparsable", "timeout",
                                          "error"]
    assert Verdict.CORRECT == "correct" and "timeout" == Verdict.TIMEOUT and Verdict.WRONG != "correct"
    assert {"not_final": 1}[Verdict.NOT_FINAL] == 1 and {Verdict.ERROR: 2}["error"] == 2  # same hash as the string
    assert f"dropped_{Verdict.NOT_FINAL}" == "dropped_not_final" and str(Verdict.UNPARSABLE) == "unparsable"
    assert json.dumps({Verdict.CORRECT: Verdict.WRONG}) == '{"correct": "wrong"}'
    assert verifier_pool.Verdict is Verdict
    with pytest.raises(ValueError):
        Verdict("maybe")


def test_breakdowns_and_judgements_go_out_as_plain_strings_and_come_back_as_verdicts():
    row = score(GOOD, PROBLEM, "42").to_dict()
    assert type(row["verdict"]) is str and row["verdict"] == "correct"
    wire = msgpack.unpackb(msgpack.packb(row, use_bin_type=True), raw=False)
    assert type(wire["verdict"]) is str
    back = RewardBreakdown.from_dict(wire)
    assert back.verdict is Verdict.CORRECT and dataclasses.replace(back, seconds=0.0) == \
        dataclasses.replace(score(GOOD, PROBLEM, "42"), seconds=0.0)
    assert error_breakdown("timeout").verdict is Verdict.TIMEOUT  # an old log's plain string
    assert type(error_breakdown(Verdict.ERROR).to_dict()["verdict"]) is str
    judged = compare(r"\sqrt{4}", "2")  # decided in the sandbox: its reply is plain msgpack
    assert judged.verdict is Verdict.CORRECT
    assert judged.to_dict()["verdict"] == "correct" and type(judged.to_dict()["verdict"]) is str
    assert Judgement(**judged.to_dict()) == judged
