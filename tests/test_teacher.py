"""The teacher's symbolic space: every generated problem's form recomputes its answer, words and fact; operators keep
children well posed and on the training side of the split; the strategy bandit finds what hits the target."""
from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthesis.generators import GENERATORS, generate_problems, in_split, to_problem
from synthesis.operators import OPERATORS, modify, structure_key
from synthesis.problem import Problem, fact_key
from synthesis.symbolic import IllPosed, Symbolic, derive_answer, fact_source, realise
from verifier_pool.tools import render

TEACHER_TOPICS = ("mental_math", "arithmetic", "linear_equations", "word_problems", "quadratics")


@pytest.mark.parametrize("topic", TEACHER_TOPICS)
def test_the_symbolic_form_recomputes_every_generated_problem(topic):
    """Answer (derived by SymPy from the form), words and fact source all equal the generator's own, for every
    problem drawn at nine difficulties."""
    for d in (0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0):
        rng = random.Random(f"{topic}/{d}")
        for _ in range(40):
            problem = to_problem(topic, d, GENERATORS[topic](rng, d))
            form = problem.symbolic
            assert render(derive_answer(form)) == problem.answer, problem.question
            assert realise(form) == problem.question
            assert fact_source(form) == problem.meta["recompute"]


def test_a_problem_with_its_form_survives_json_and_a_hostile_form_is_refused_unread():
    problem = generate_problems(1, 3, topics={"word_problems": 1}, seed=5)[0]
    again = Problem.from_dict(json.loads(json.dumps(problem.to_dict())))
    assert again == problem and again.symbolic == problem.symbolic
    good = problem.symbolic.to_dict()
    for bad in ({**good, "target": ["__import__('os')"]}, {**good, "target": ["a + zz9"]}, {**good, "style": "exec"},
                {**good, "quantities": [{"name": "e", "value": 1, "low": 0, "high": 2}]},
                {**good, "target": ["a" + " + a" * 400]}, {**good, "quantities": "nope"},
                {**good, "target": ["q"]}):
        with pytest.raises(IllPosed):
            Symbolic.from_dict(bad)


def test_a_form_that_stalls_sympy_is_stopped_at_its_deadline():
    """A hostile form's `solve` runs in a worker process killed at the deadline; the next form is served at once."""
    from synthesis.symbolic import Quantity, Relation, derive_within, form_from_json

    stall = Symbolic("equation", ("x",), (Quantity("a", 7, 0, 9),), ("x", "y"),
                     (Relation("x^a*y^a + x^(a - 1) + y^a*x + x*y^3 - a", "=", "0"),
                      Relation("x^a + y^a + x*y - a^a", "=", "1")))
    with pytest.raises(IllPosed, match="longer than 1s"):
        derive_within(stall, timeout=1.0)
    linear = generate_problems(1, 2, topics={"linear_equations": 1}, seed=1)[0]
    assert derive_within(linear.symbolic) == linear.answer
    with pytest.raises(IllPosed, match="JSON"):
        form_from_json("{'style': 1}")
    with pytest.raises(IllPosed, match="longer"):
        form_from_json("{" + " " * 9000 + "}")


def test_ill_posed_forms_are_named():
    linear = generate_problems(1, 1, topics={"linear_equations": 1}, seed=1)[0].symbolic
    with pytest.raises(IllPosed, match="solutions"):
        derive_answer(linear.with_values({"a": 0}))
    shopping = next(p for p in generate_problems(40, 1, topics={"word_problems": 1}, seed=2)
                    if p.meta["template"].startswith("word/shopping")).symbolic
    with pytest.raises(IllPosed, match="constraint"):
        derive_answer(shopping.with_values({"c": 10, "a": 9, "b": 15}))


@pytest.fixture(scope="module")
def parents() -> dict[str, list[Problem]]:
    return {t: generate_problems(24, 2, topics={t: 1}, seed=11, split="train") for t in TEACHER_TOPICS}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=st.sampled_from(TEACHER_TOPICS), operator=st.sampled_from(OPERATORS), seed=st.integers(0, 10**6),
       index=st.integers(0, 23), second=st.sampled_from((None,) + OPERATORS))
def test_every_child_is_well_posed_realised_and_on_the_training_side(parents, topic, operator, seed, index, second):
    recipe = (operator,) if second is None else (operator, second)
    parent, partner = parents[topic][index], parents[topic][(index + 7) % 24]
    child = modify(parent, recipe, random.Random(seed), partner=partner)
    if child is None:
        return
    form = child.symbolic
    assert render(derive_answer(form)) == child.answer
    assert realise(form) == child.question and child.question != parent.question
    assert in_split(fact_key(child), "train") and child.source == "teacher"
    assert form.structure.endswith(">" + ">".join(recipe))
    assert all(q.low <= q.value <= q.high for q in form.quantities)
    if form.integral:
        assert "/" not in child.answer


def test_a_modified_fact_has_the_key_the_generator_gives_the_same_fact(parents):
    """Children and generated problems spell the same fact the same way, so the split audit covers teacher output:
    a child whose question a generator also draws shares that problem's fact key (and side of the split)."""
    rng = random.Random(3)
    drawn = [to_problem(t, d, GENERATORS[t](rng, d)) for t in ("mental_math", "linear_equations", "quadratics",
                                                                "word_problems") for d in (0, 0.5, 1) for _ in range(300)]
    generated = {p.question: fact_key(p) for p in drawn}
    rng, matched = random.Random(0), 0
    for topic in ("mental_math", "linear_equations", "quadratics", "word_problems"):
        for parent in parents[topic]:
            for _ in range(20):
                child = modify(parent, ("change_constant",), rng, split=None)
                if child is not None and child.question in generated:
                    matched += 1
                    assert fact_key(child) == generated[child.question], child.question
    assert matched >= 20


def test_no_modification_creates_a_held_out_fact(parents):
    """Over many draws, every child whose fact is held out (by hash, or by name in `exclude`) is refused."""
    rng = random.Random(1)
    held_out_children = []
    for parent in parents["mental_math"]:
        for _ in range(40):
            child = modify(parent, ("change_constant",), rng, split=None)
            if child is not None and not in_split(fact_key(child), "train"):
                held_out_children.append((parent, child))
    assert held_out_children, "the draw should reach held-out facts for the test to mean anything"
    excluded = {fact_key(c) for _, c in held_out_children}
    for parent, _ in held_out_children[:20]:
        for seed in range(40):
            child = modify(parent, ("change_constant",), random.Random(seed), exclude=excluded)
            assert child is None or (fact_key(child) not in excluded and in_split(fact_key(child), "train"))


def test_structure_keys_ignore_numbers_and_see_steps(parents):
    parent = parents["mental_math"][0]
    moved = modify(parent, ("change_constant",), random.Random(0))
    stepped = modify(parent, ("add_step",), random.Random(0))
    assert structure_key(moved.symbolic) == structure_key(parent.symbolic)
    assert structure_key(stepped.symbolic) != structure_key(parent.symbolic)


def operations(node) -> int:
    return (node[0] in ("add", "sub", "mul", "div")) + sum(operations(c) for c in node[1:] if isinstance(c, tuple))


def test_easing_operators_make_a_problem_smaller_or_shorter(parents):
    from synthesis.operators import OPERATOR_STYLES
    from synthesis.symbolic import parse_tree

    assert set(OPERATOR_STYLES) == set(OPERATORS)
    chains = generate_problems(24, 3, topics={"mental_math": 1}, seed=11, split="train")
    assert all(p.meta["template"] == "mental/chain" for p in chains)
    made = 0
    for i, parent in enumerate(chains):
        shorter = modify(parent, ("drop_step",), random.Random(i))
        if shorter is None:
            continue
        made += 1
        assert 1 <= operations(parse_tree(shorter.symbolic.target[0])) < operations(parse_tree(parent.symbolic.target[0]))
        assert len(shorter.symbolic.quantities) < len(parent.symbolic.quantities)
        assert set(re.findall(r"\b[a-z]\b", shorter.symbolic.target[0])) == {q.name for q in shorter.symbolic.quantities}
    assert made > len(chains) // 2
    single = parents["mental_math"][0]
    assert modify(single, ("drop_step",), random.Random(0)) is None, "one operation is the least a problem keeps"
    for topic in TEACHER_TOPICS:
        for i, parent in enumerate(parents[topic]):
            smaller = modify(parent, ("smaller_constants",), random.Random(i))
            if smaller is None:
                continue
            before, after = parent.symbolic.values(), smaller.symbolic.values()
            assert all(abs(after[name]) <= abs(value) for name, value in before.items()), (topic, before, after)
            assert after != before


# ---------------------------------------------------------------- the strategy bandit


def simulated_step(teacher, cfg, parents, pass_rates: dict[str, float], rng: random.Random, n: int = 16):
    """Children taught from `parents`; a simulated student passes each with its strategy's probability."""
    from cluster.teacher import observe_teacher, taught_problems

    children = taught_problems(teacher, cfg, 0.5, n, rng, exclude=set())
    groups = [(c, [rng.random() < pass_rates[c.meta["strategy"]] for _ in range(8)]) for c in children]
    return observe_teacher(teacher, cfg, 0.5, groups + [(p, [True] * 8) for p in parents[:2]]), children


def test_the_bandit_converges_to_the_strategy_that_lands_children_at_the_target(parents):
    from cluster.config import TeacherConfig
    from cluster.teacher import observe_teacher, start_teacher

    cfg = TeacherConfig(strategies=("change_constant", "add_step", "compose", "swap_operation"), novelty=0.0)
    pass_rates = {"change_constant": 0.95, "add_step": 0.5, "compose": 0.1, "swap_operation": 0.85}
    rng = random.Random(0)
    teacher = observe_teacher(start_teacher(cfg), cfg, 0.5, [(p, [True] * 8) for p in parents["mental_math"]])
    assert len(teacher.parents) == 24 and all(e["pass_rate"] == 1.0 for e in teacher.parents)
    picks = []
    for _ in range(25):
        teacher, children = simulated_step(teacher, cfg, parents["mental_math"], pass_rates, rng)
        picks.append([c.meta["strategy"] for c in children])
    late = [s for step in picks[-8:] for s in step]
    assert late.count("add_step") > 0.6 * len(late), late
    values = {s: a.reward / a.pulls for s, a in teacher.arms["easy"].items() if a.pulls}
    assert max(values, key=values.get) == "add_step"
    assert {c for step in picks[:2] for c in step} == set(cfg.strategies), "every strategy is tried first"
    assert teacher.last["teacher/add_step/children"] > 0 and "teacher/easy/add_step/value" in teacher.last

    two_step = TeacherConfig(strategies=("add_step+add_step", "change_constant"), novelty=0.0)
    taught, _ = simulated_step(start_teacher(two_step), two_step, parents["mental_math"],
                               {"add_step+add_step": 0.5, "change_constant": 0.9}, rng)
    taught, _ = simulated_step(observe_teacher(taught, two_step, 0.5, [(p, [True] * 8) for p in parents["mental_math"]]),
                               two_step, parents["mental_math"], {"add_step+add_step": 0.5, "change_constant": 0.9}, rng)
    mlflow_name = re.compile(r"^[A-Za-z0-9_\-. :/]+$")  # what MLflow accepts in a metric name
    assert any("then" in k for k in taught.last) and all(mlflow_name.match(k) for k in taught.last)


def test_novelty_rewards_a_structure_the_run_has_not_seen(parents):
    from cluster.config import TeacherConfig
    from cluster.teacher import observe_teacher, start_teacher, strategy_reward

    assert strategy_reward(0.5, 0.5, False, 0.2) == 1.0 and strategy_reward(1.0, 0.5, True, 0.2) == pytest.approx(0.2)
    cfg = TeacherConfig(strategies=("add_step",))
    child = modify(parents["mental_math"][0], ("add_step",), random.Random(0))
    child = Problem.from_dict({**child.to_dict(), "meta": {**child.meta, "strategy": "add_step", "context": "easy"}})
    first = observe_teacher(start_teacher(cfg), cfg, 0.5, [(child, [True, False] * 4)])
    second = observe_teacher(first, cfg, 0.5, [(child, [True, False] * 4)])
    assert first.arms["easy"]["add_step"].reward == pytest.approx(1.2)
    assert second.arms["easy"]["add_step"].reward == pytest.approx(1.2 * 0.9 + 1.0)


def test_the_bandit_learns_which_parents_are_worth_rewriting(parents):
    """Children of problems near the target land near it, children of hopeless ones stay hopeless: the teacher
    tries both contexts, then rewrites mostly the near ones."""
    from cluster.config import TeacherConfig
    from cluster.teacher import Arm, Teacher, context_of, observe_teacher, start_teacher, taught_problems

    assert [context_of(p, 0.5, 0.25) for p in (0.0, 0.25, 0.375, 0.625, 0.75, 1.0)] == \
        ["hard", "hard", "near", "near", "easy", "easy"]
    cfg = TeacherConfig(strategies=("change_constant", "smaller_constants"), novelty=0.0)
    chains = parents["mental_math"]
    teacher = observe_teacher(start_teacher(cfg), cfg, 0.5, [(p, [False] * 8) for p in chains[:18]]
                              + [(p, [True, False] * 4) for p in chains[18:]])
    rng, contexts = random.Random(1), []
    for _ in range(20):
        children = taught_problems(teacher, cfg, 0.5, 12, rng, exclude=set())
        contexts.append([c.meta["context"] for c in children])
        groups = [(c, [c.meta["context"] == "near" and rng.random() < 0.5 for _ in range(8)]) for c in children]
        teacher = observe_teacher(teacher, cfg, 0.5, groups)
    assert {"near", "hard"} <= set(contexts[0]), "both contexts are tried"
    late = [c for step in contexts[-8:] for c in step]
    assert late.count("near") > 0.75 * len(late), late
    assert all(a.reward / a.pulls < 0.1 for a in teacher.arms["hard"].values() if a.pulls)
    older = teacher.to_dict()
    del older["arms"]["near"]  # a run state saved before the near context existed resumes with fresh near arms
    assert Teacher.from_dict(older).arms["near"] == {s: Arm() for s in cfg.strategies}


def test_a_pick_whose_strategy_makes_no_child_falls_back_to_the_next(parents):
    from cluster.teacher import Pick, operator_child

    single = parents["mental_math"][0]  # one operation: drop_step does not apply
    assert operator_child(Pick(single, "near", "drop_step", single), random.Random(0), set()) == (None, "drop_step")
    child, strategy = operator_child(Pick(single, "near", "drop_step", single, ("drop_step+smaller_constants",
                                                                                 "change_constant")),
                                     random.Random(0), set())
    assert strategy == "change_constant" and child.meta["recipe"] == ["change_constant"]


def test_teacher_mode_batches_hold_taught_children_and_resume_to_the_same_choices(parents):
    from cluster.config import CurriculumConfig, TeacherConfig
    from cluster.curriculum import Curriculum, next_problems, observe, start_stage
    from synthesis.generators import generate_problems

    cfg, teacher = CurriculumConfig(mode="teacher"), TeacherConfig(share=0.5)
    cur = start_stage({"mental_math": 1, "word_problems": 1}, 0.0, 0.5, teacher=teacher)
    cur = observe(cur, cfg, [(p, [False] * 8) for p in parents["mental_math"][:6] + parents["word_problems"][:6]],
                  teacher)
    held = {fact_key(p) for p in generate_problems(300, 2, topics={"mental_math": 1, "word_problems": 1}, seed=5,
                                                   split="heldout")}
    batch = next_problems(cur, cfg, 16, "seed/3", held, teacher)
    taught = [p for p in batch if p.source == "teacher"]
    assert len(batch) == 16 and len(taught) == 8 and not held & {fact_key(p) for p in batch}
    assert all(p.meta["context"] == "hard" and p.meta["strategy"] in teacher.strategies for p in taught)
    live = observe(cur, cfg, [(p, [True, False, False, False] * 2) for p in batch], teacher)
    restored = Curriculum.from_dict(json.loads(json.dumps(live.to_dict())))
    assert restored == live and live.teacher["last"]
    again = [p.to_dict() for p in next_problems(restored, cfg, 16, "seed/4", held, teacher)]
    assert again == [p.to_dict() for p in next_problems(live, cfg, 16, "seed/4", held, teacher)]


def test_restating_keeps_the_form_and_the_fact_and_changes_only_the_words(parents):
    restated = 0
    for topic in ("mental_math", "arithmetic", "word_problems"):
        for i, parent in enumerate(parents[topic]):
            child = modify(parent, ("restate",), random.Random(i))
            if topic == "word_problems" and "who" not in parent.symbolic.slots:
                assert child is None, "a story with no person to rename is not restated"
                continue
            restated += 1
            assert child is not None and child.question != parent.question, parent.question
            assert fact_key(child) == fact_key(parent) and child.answer == parent.answer
            assert child.symbolic.values() == parent.symbolic.values()
            assert structure_key(child.symbolic) == structure_key(parent.symbolic)
    assert restated > 50
    assert all(modify(p, ("restate",), random.Random(0)) is None for p in parents["linear_equations"])


def test_the_teacher_remembers_the_newest_parents_of_each_context_once():
    from cluster.teacher import PARENTS, recent_parents

    def entry(question, rate):
        return {"problem": {"question": question}, "pass_rate": rate}

    hard = [entry(f"q{i}", 0.0) for i in range(PARENTS + 6)]
    near = [entry(f"n{i}", 0.5) for i in range(3)]
    kept = recent_parents(hard + near + [entry("q5", 0.375)], 0.5, 0.25)
    assert [e["problem"]["question"] for e in kept] == \
        [f"q{i}" for i in range(6, PARENTS + 6)] + ["n0", "n1", "n2", "q5"]
    assert kept[-1]["pass_rate"] == 0.375, "a problem seen again keeps its newest pass rate"


def test_a_revisit_is_the_parent_again_unless_its_fact_is_excluded(parents):
    from cluster.config import ConfigError, load_config
    from cluster.teacher import Pick, operator_child

    parent = parents["word_problems"][3]
    child, strategy = operator_child(Pick(parent, "near", "revisit", parent), random.Random(0), set())
    assert strategy == "revisit" and child.source == "teacher" and "-t-" in child.id
    assert (child.question, child.answer, fact_key(child)) == (parent.question, parent.answer, fact_key(parent))
    assert child.meta["structure"] == structure_key(parent.symbolic) and child.meta["parent"] == parent.id
    child, strategy = operator_child(Pick(parent, "near", "revisit", parent, ("change_constant",)), random.Random(0),
                                     {fact_key(parent)})
    assert strategy == "change_constant" and fact_key(child) != fact_key(parent)
    held_out = generate_problems(4, 2, topics={"word_problems": 1}, seed=11, split="heldout")[0]
    assert operator_child(Pick(held_out, "near", "revisit", held_out), random.Random(0), set()) == (None, "revisit")
    with pytest.raises(ConfigError, match="revisit"):
        load_config("tiny", overrides=["teacher.strategies=[revisit+add_step]"])


def test_a_revisit_never_earns_novelty_and_generated_structures_count_as_seen(parents):
    from cluster.config import TeacherConfig
    from cluster.teacher import Pick, observe_teacher, operator_child, start_teacher

    cfg = TeacherConfig(strategies=("revisit", "change_constant"), novelty=0.2)
    parent = parents["mental_math"][0]
    child, _ = operator_child(Pick(parent, "near", "revisit", parent), random.Random(0), set())
    child = Problem.from_dict({**child.to_dict(), "meta": {**child.meta, "strategy": "revisit", "context": "near"}})
    taught = observe_teacher(start_teacher(cfg), cfg, 0.5, [(child, [True, False] * 4)])
    assert taught.arms["near"]["revisit"].reward == pytest.approx(1.0), "the same question is never new"
    moved = modify(parent, ("change_constant",), random.Random(0))
    moved = Problem.from_dict({**moved.to_dict(), "meta": {**moved.meta, "strategy": "change_constant",
                                                           "context": "near"}})
    after_parent = observe_teacher(observe_teacher(start_teacher(cfg), cfg, 0.5, [(parent, [True] * 8)]), cfg, 0.5,
                                   [(moved, [True, False] * 4)])
    assert after_parent.arms["near"]["change_constant"].reward == pytest.approx(1.0), \
        "a child of the structure of a problem already sampled is not new"


@pytest.mark.parametrize("topic", ["mental_math", "arithmetic", "linear_equations"])
def test_a_form_gives_the_worked_lines_the_generator_wrote(topic):
    """`worked_steps` re-derives a generated expression problem's or linear system's worked lines from its form
    alone; a story or a quadratic has none. Rational results stay rationals (SymPy 1.14's `nsimplify` wrote 1374/19
    as a product of radicals, in the generator's lines and in its gold answers alike)."""
    from synthesis.problem import solution_steps
    from synthesis.symbolic import worked_steps

    for d in (0, 0.5, 0.75, 1.0):
        for problem in generate_problems(60, d=d, topics={topic: 1.0}, seed=11, split="train"):
            steps = worked_steps(problem.symbolic, derive_answer(problem.symbolic))
            assert steps == solution_steps(problem.solution), problem.question
            assert "^" not in problem.answer
    for topic in ("word_problems", "quadratics"):
        problem = generate_problems(1, d=0.5, topics={topic: 1.0}, seed=1, split="train")[0]
        assert worked_steps(problem.symbolic, derive_answer(problem.symbolic)) is None


def test_an_expression_or_system_child_carries_a_worked_solution_of_its_own_answer(parents):
    from synthesis.problem import solution_steps

    rng = random.Random(2)
    children = [modify(p, (op,), rng, partner=parents["mental_math"][0]) for p in parents["mental_math"][:20]
                for op in ("add_step", "change_constant", "compose", "swap_operation")]
    children = [c for c in children if c is not None]
    assert len(children) >= 20
    for child in children:
        assert child.solution.endswith(f"<final_answer>{child.answer}</final_answer></response>")
        assert solution_steps(child.solution)[-1].endswith(f"= {child.answer}")
    story = [modify(p, ("add_distractor",), rng) for p in parents["word_problems"][:5]]
    assert all(c.solution == "" for c in story if c is not None)
    systems = [modify(p, ("change_constant",), rng) for p in parents["linear_equations"][:10]]
    assert any(c is not None and c.answer in c.solution for c in systems)


def test_screening_keeps_the_candidates_predicted_nearest_the_target():
    """The batch is the `n` candidates nearest the target pass rate, in drawn order, each with its prediction;
    candidates with no prediction keep their share of the draw; a length mismatch is an error."""
    from cluster.teacher import screened

    candidates = [Problem(id=str(i), question=f"q{i}", answer="1") for i in range(8)]
    predicted = [0.0, 0.9, 0.45, None, 0.52, 1.0, None, 0.3]
    kept = screened(candidates, predicted, 4, 0.5)
    assert [p.id for p in kept] == ["2", "3", "4", "7"]
    assert [p.meta.get("predicted_pass_rate") for p in kept] == [0.45, None, 0.52, 0.3]
    assert [p.id for p in screened(candidates, [None] * 8, 3, 0.5)] == ["0", "1", "2"]
    with pytest.raises(ValueError):
        screened(candidates, predicted[:-1], 4, 0.5)


def screening_run(parents):
    """A teacher-mode config with `teacher.screen: 3`, a run state whose teacher knows eight half-solved parents, and a
    predictor that records what it scores (0.5 for questions of even length, else 1.0)."""
    from cluster.config import load_config
    from cluster.curriculum import observe
    from cluster.schedule import RunState, stage_curriculum

    cfg = load_config("tiny", overrides=["curriculum.mode=teacher", "teacher.screen=3", "batch_size=8"])
    cur = stage_curriculum(cfg, 0, None)
    cur = observe(cur, cfg.curriculum, [(p, [True, False] * 4) for p in parents["mental_math"][:8]], cfg.teacher)
    seen: list[list[Problem]] = []

    def predict(problems):
        seen.append(problems)
        return [1.0 if len(p.question) % 2 else 0.5 for p in problems]

    return cfg, RunState(curriculum=cur.to_dict()), predict, seen


def test_a_screened_step_draws_more_and_keeps_what_the_predictor_puts_at_the_target(parents):
    """`teacher.screen: 3`: `step_problems` draws three candidates per slot and keeps the batch whose predicted pass
    rates are nearest the target; without a predictor (or in adaptive mode) the draw is the batch."""
    import dataclasses

    from cluster.schedule import step_problems

    cfg, state, predict, seen = screening_run(parents)
    batch = step_problems(cfg, state, [], set(), predict=predict)
    assert len(seen) == 1 and len(seen[0]) == 24 and len(batch) == 8
    assert {p.id for p in batch} <= {p.id for p in seen[0]}
    assert all(p.meta["predicted_pass_rate"] == 0.5 for p in batch)
    plain = step_problems(cfg, state, [], set())
    assert len(plain) == 8 and all("predicted_pass_rate" not in p.meta for p in plain)
    adaptive = dataclasses.replace(cfg, curriculum=dataclasses.replace(cfg.curriculum, mode="adaptive"))
    assert len(step_problems(adaptive, state, [], set(), predict=predict)) == 8 and len(seen) == 1


def test_screened_replacements_skip_the_step_and_score_screen_candidates_per_slot(parents):
    """Dynamic sampling's replacements under `teacher.screen: 3`: `n` problems, none already in the step, kept by the
    predictor from `n · screen` fresh candidates (the draw adds only as many as the step holds, for collisions)."""
    from cluster.schedule import replacement_problems, step_problems

    cfg, state, predict, seen = screening_run(parents)
    taken = {p.question for p in step_problems(cfg, state, [], set(), predict=predict)}
    fresh = replacement_problems(cfg, state, [], set(), 2, 0, taken, predict=predict)
    assert len(fresh) == 2 and not {p.question for p in fresh} & taken
    assert 2 * 3 <= len(seen[-1]) <= 2 * 3 + len(taken)
    assert {p.id for p in fresh} <= {p.id for p in seen[-1]}
    assert all(p.meta["predicted_pass_rate"] == 0.5 for p in fresh)
