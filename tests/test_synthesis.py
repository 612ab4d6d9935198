"""Generators: answers recomputed independently by SymPy, difficulty adds steps, determinism, dedupe;
dataset loaders on the shipped fixtures; `rlvr synth`."""
import json
import random
import statistics

import pytest
import sympy as sp
from sympy.ntheory.modular import crt

from cluster.cli import main
from synthesis.datasets import gsm8k_answer, load_gsm8k, load_math, load_problems, math_answer
from synthesis.generators import TOPICS, generate, generate_problems, render, sibling
from synthesis.problem import Problem, fact_key, question_key, solution_text
from verifier_pool import answers_match, extract_answer

DATA = "synthesis/data"
SAMPLES = 12


def recompute(problem: Problem):
    """Evaluate the problem's SymPy recipe in a namespace of its own (not the generator's code path)."""
    namespace = {**vars(sp), "crt": crt, **{s: sp.Symbol(s) for s in "xyznk"}}
    return eval(problem.meta["recompute"], namespace)  # noqa: S307 - our own generated SymPy source


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_every_answer_matches_an_independent_recomputation(topic, difficulty):
    rng = random.Random(f"{topic}{difficulty}")
    for _ in range(SAMPLES):
        problem = generate(topic, rng, difficulty)
        assert answers_match(problem.answer, render(recompute(problem)), timeout=10), problem
        assert extract_answer(problem.solution) == problem.answer
        assert problem.solution.startswith("<response><reasoning>") and problem.meta["steps"] >= 1


@pytest.mark.parametrize("topic", TOPICS)
def test_a_plain_solution_keeps_the_reasoning_and_states_the_same_final_answer(topic):
    from verifier_pool.reward import score

    rng = random.Random(topic)
    for difficulty in (1, 3):
        problem = generate(topic, rng, difficulty)
        plain = solution_text(problem, "plain")
        assert "<" not in plain.replace(problem.answer, "") and plain.endswith(f"The answer is {problem.answer}.")
        assert plain.splitlines()[:-1] == problem.solution.split("<reasoning>")[1].split("</reasoning>")[0].splitlines()
        assert score(plain, problem.question, problem.answer, policy="strict", form=problem.form).verdict == "correct"
        assert solution_text(problem, "xml") == problem.solution
    with pytest.raises(ValueError, match="unknown solution style"):
        solution_text(problem, "json")


@pytest.mark.parametrize("topic", TOPICS)
def test_hard_problems_need_more_solution_steps_than_easy_ones(topic):
    def mean_steps(difficulty):
        rng = random.Random(7)
        return statistics.mean(generate(topic, rng, difficulty).meta["steps"] for _ in range(SAMPLES))

    assert mean_steps(3) > mean_steps(1) + 0.9


def test_generate_problems_is_deterministic_distinct_and_respects_the_mix():
    first = generate_problems(60, 1, topics={"arithmetic": 1, "number_theory": 1}, seed=3)
    again = generate_problems(60, 1, topics={"arithmetic": 1, "number_theory": 1}, seed=3)
    other = generate_problems(60, 1, topics={"arithmetic": 1, "number_theory": 1}, seed=4)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again]
    assert [p.id for p in first] != [p.id for p in other]
    assert len({question_key(p.question) for p in first}) == 60
    assert {p.topic for p in first} == {"arithmetic", "number_theory"}
    held_out = {fact_key(p) for p in first[:30]}  # exclusions are by fact, not by spelling
    fresh = generate_problems(30, 1, topics={"arithmetic": 1, "number_theory": 1}, seed=3, exclude=held_out)
    assert not held_out & {fact_key(p) for p in fresh}


def test_bad_topic_and_difficulty_are_clear_errors():
    with pytest.raises(ValueError, match="unknown topic 'geometry'"):
        generate_problems(5, 1, topics={"geometry": 1})
    with pytest.raises(ValueError, match="difficulty"):
        generate("arithmetic", random.Random(0), 4)


def test_problem_round_trips_through_a_dict():
    problem = generate("quadratics", random.Random(1), 2)
    assert Problem.from_dict(json.loads(json.dumps(problem.to_dict()))) == problem


def test_gsm8k_loader_takes_the_number_after_the_hashes():
    problems = load_gsm8k(f"{DATA}/gsm8k_sample.jsonl")
    assert [p.answer for p in problems] == ["12", "115", "3750", "15", "18"]
    assert all(p.source == "gsm8k" for p in problems)
    with pytest.raises(ValueError, match="####"):
        gsm8k_answer("no marker")


def test_math_loaders_take_answer_or_last_boxed(tmp_path):
    math = load_math(f"{DATA}/math_sample.jsonl")
    assert [p.answer for p in math] == ["5", r"\frac{19}{12}", "5", "13", r"5\sqrt{2}"]
    assert [p.difficulty for p in math] == [1, 1, 1, 2, 3]
    m500 = load_problems(f"{DATA}/math500_sample.jsonl")
    assert m500[0].id == "test/algebra/1.json" and m500[0].source == "math500"
    assert answers_match(m500[3].answer, "5/6")
    with pytest.raises(ValueError, match="boxed"):
        math_answer({"problem": "p", "solution": "no box"})

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in open(f"{DATA}/math500_sample.jsonl")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    assert [p.answer for p in load_math(str(tmp_path / "m.parquet"))] == [p.answer for p in m500]
    with pytest.raises(FileNotFoundError):
        load_math(str(tmp_path / "missing.jsonl"))


def test_rlvr_synth_writes_checked_problems(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert main(["synth", "--difficulty", "2", "--n", "25", "--out", str(out), "--topics", "sequences,combinatorics:2"]) == 0
    problems = load_problems(str(out))
    assert len(problems) == 25 and {p.difficulty for p in problems} == {2}
    assert {p.topic for p in problems} == {"sequences", "combinatorics"}
    assert main(["synth", "--n", "3", "--out", str(out), "--topics", "astrology"]) == 2
    assert "unknown topic" in capsys.readouterr().err


@pytest.mark.parametrize("topic", TOPICS)
def test_continuous_difficulty_keeps_the_levels_and_grows_the_steps(topic):
    """d = 0, 0.5, 1 are levels 1, 2, 3 draw for draw; between them the mean number of steps never falls."""
    for level, d in ((1, 0.0), (2, 0.5), (3, 1.0)):
        by_level, by_d = random.Random(f"{topic}/{level}"), random.Random(f"{topic}/{level}")
        assert [generate(topic, by_level, level).question for _ in range(4)] == \
               [generate(topic, by_d, d=d).question for _ in range(4)]

    def mean_steps(d):
        rng = random.Random(11)
        return statistics.mean(generate(topic, rng, d=d).meta["steps"] for _ in range(60))

    steps = [mean_steps(d) for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(later >= earlier - 0.35 for earlier, later in zip(steps, steps[1:])), steps
    assert steps[-1] > steps[0] + 0.9


def test_a_sibling_keeps_the_template_with_new_numbers_or_adds_a_step_when_harder():
    rng = random.Random(4)
    parent = generate("mental_math", rng, d=0.2)
    same = sibling(parent, 0.2, rng)
    assert same.meta["template"] == parent.meta["template"] and same.question != parent.question
    harder = sibling(parent, 1.0, rng)
    assert harder.meta["steps"] > parent.meta["steps"] and harder.meta["d"] == 1.0
    word = generate("word_problems", rng, 2)
    assert sibling(word, 0.5, rng).topic == "word_problems"


def test_continuous_difficulty_outside_the_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        generate_problems(3, d=1.5, topics={"mental_math": 1})
    assert {p.meta["d"] for p in generate_problems(5, d=0.3, topics={"mental_math": 1})} == {0.3}
