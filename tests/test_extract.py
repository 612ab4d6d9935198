import pytest

from verifier_pool import extract_answer
from verifier_pool.extract import last_boxed


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<response><reasoning>r</reasoning><final_answer> 7 </final_answer></response>", "7"),
        ("<final_answer>1</final_answer> then <final_answer>2</final_answer>", "2"),
        (r"<final_answer>\boxed{\frac{1}{2}}</final_answer>", r"\frac{1}{2}"),
        (r"<final_answer>$x = 3$.</final_answer> \boxed{9}", "x = 3"),
        (r"first \boxed{3} then \boxed{\frac{a}{b^{2}}}", r"\frac{a}{b^{2}}"),
        (r"\fbox{12}", "12"),
        (r"\boxed {5}", "5"),
        ("Work.\n#### 1,200", "1,200"),
        ("#### 3\n#### 4", "4"),
        ("so the final answer is 17.", "17"),
        ("The answer is $\\frac{2}{3}$.", r"\frac{2}{3}"),
        ("Answer: (C)", "(C)"),
        ("we got 3 then 4.5 at the end", "4.5"),
        ("costs −12 dollars", "−12"),
        ("The answer is log(x) + 1.", "log(x) + 1"),  # a formula with a function name, not a sentence
        ("The answer is 2*sqrt(3) - pi.", "2*sqrt(3) - pi"),
        ("The answer is 5 apples and 3 pears.", "5"),
    ],
)
def test_priority_and_forms(completion, expected):
    assert extract_answer(completion) == expected


def test_tag_beats_box_beats_gsm_beats_phrase_beats_number():
    text = r"The answer is 1. #### 2 \boxed{3} <final_answer>4</final_answer> 5"
    assert extract_answer(text) == "4"
    assert extract_answer(text.replace("<final_answer>4</final_answer>", "")) == "3"
    assert extract_answer(r"The answer is 1. #### 2 and 5") == "2 and 5"
    assert extract_answer("The answer is 1. then 5") == "1"


@pytest.mark.parametrize("completion", ["", "   ", "no numbers here", r"\boxed{}", r"\boxed{ }", None, 42])
def test_nothing_gives_none(completion):
    assert extract_answer(completion) is None


def test_nested_braces_and_unbalanced_box():
    assert last_boxed(r"\boxed{\frac{\sqrt{2}}{2}} tail") == r"\frac{\sqrt{2}}{2}"
    assert last_boxed(r"\boxed{1 + \{2\}}") == r"1 + \{2\}"
    assert last_boxed(r"\boxed{unclosed") is None
