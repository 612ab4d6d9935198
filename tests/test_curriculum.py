"""The closed-loop curriculum controller on simulated students (a pass-probability curve over difficulty),
without Ray or a model: convergence to the target pass rate from both sides, topic mixing, promotion,
and the same decisions after a round trip through the saved state."""
import json
import math
import random

import pytest

from cluster.curriculum import (Curriculum, CurriculumConfig, next_problems, observe, should_promote, start_stage,
                                topic_weights)
from synthesis.problem import Problem

G, BATCH = 8, 32


def student(ability: float, slope: float = 0.08):
    """Pass probability at difficulty d: 0.5 at d = ability, falling with d."""
    return lambda d: 1 / (1 + math.exp((d - ability) / slope))


def simulate(cur: Curriculum, cfg: CurriculumConfig, students: dict, steps: int, seed: int = 0) -> list[Curriculum]:
    rng = random.Random(seed)
    trail = []
    for step in range(steps):
        groups = []
        for i in range(BATCH):
            topic = sorted(cur.topics)[i % len(cur.topics)]
            d = cur.topics[topic].d
            p = students[topic](d)
            problem = Problem(id=f"{step}-{i}", question=f"q{step}-{i}", answer="1", topic=topic, meta={"d": d})
            groups.append((problem, [rng.random() < p for _ in range(G)]))
        cur = observe(cur, cfg, groups)
        trail.append(cur)
    return trail


@pytest.mark.parametrize("start", [0.0, 1.0])
def test_difficulty_converges_to_the_target_pass_rate_from_either_side(start):
    cfg = CurriculumConfig(mode="adaptive")
    cur = start_stage({"mental_math": 1.0}, 0.0, 1.0)
    cur.topics["mental_math"].d = start
    pass_at = student(0.6)
    trail = simulate(cur, cfg, {"mental_math": pass_at}, steps=60)
    settled = [c.topics["mental_math"].d for c in trail[-20:]]
    assert abs(sum(settled) / len(settled) - 0.6) < 0.05
    assert abs(pass_at(sum(settled) / len(settled)) - cfg.target) < 0.15
    assert abs(trail[0].topics["mental_math"].d - start) < abs(settled[-1] - start)  # it moved toward it


def test_difficulty_stays_inside_the_stage_range():
    cfg = CurriculumConfig(mode="adaptive")
    strong = simulate(start_stage({"mental_math": 1}, 0.0, 0.5), cfg, {"mental_math": student(3.0)}, steps=20)
    weak = simulate(start_stage({"mental_math": 1}, 0.2, 0.5), cfg, {"mental_math": student(-3.0)}, steps=20)
    assert strong[-1].topics["mental_math"].d == 0.5 and weak[-1].topics["mental_math"].d == 0.2


def test_topics_with_more_correctness_spread_get_more_of_the_batch():
    cfg = CurriculumConfig(mode="adaptive")
    cur = start_stage({"mental_math": 1, "arithmetic": 1, "quadratics": 1}, 0.0, 0.0)
    groups = [(Problem(id="a", question="a", answer="1", topic="mental_math"), [True] * 4 + [False] * 4),
              (Problem(id="b", question="b", answer="1", topic="arithmetic"), [True] * 8),
              (Problem(id="c", question="c", answer="1", topic="quadratics"), [False] * 8)]
    weights = topic_weights(observe(cur, cfg, groups), cfg)
    assert weights["mental_math"] > 5 * weights["arithmetic"] and weights["arithmetic"] == weights["quadratics"]
    assert abs(sum(weights.values()) - 1) < 1e-9


def test_promotion_needs_the_top_difficulty_passed_for_k_steps_in_a_row():
    cfg = CurriculumConfig(mode="adaptive", promote_pass=0.7, promote_steps=3)
    strong = simulate(start_stage({"mental_math": 1}, 0.0, 0.5), cfg, {"mental_math": student(2.0)}, steps=12)
    first = next(i for i, c in enumerate(strong) if should_promote(c, cfg))
    assert first == cfg.promote_steps - 1 and strong[first].topics["mental_math"].d == 0.5  # the 3rd passed step
    weak = simulate(start_stage({"mental_math": 1}, 0.0, 0.5), cfg, {"mental_math": student(0.3)}, steps=40)
    assert not any(should_promote(c, cfg) for c in weak)


def test_a_resumed_controller_makes_the_same_decisions():
    cfg = CurriculumConfig(mode="adaptive", sibling_share=0.5)
    students = {"mental_math": student(0.4), "arithmetic": student(0.2)}
    trail = simulate(start_stage({"mental_math": 1, "arithmetic": 1}, 0.0, 1.0), cfg, students, steps=6)
    half_solved = Problem.from_dict({"id": "m", "question": "What is 17 + 25?", "answer": "42", "topic": "mental_math",
                                     "meta": {"steps": 1, "template": "mental/+", "d": 0.2}})
    live = observe(trail[-1], cfg, [(half_solved, [True, False] * 4)])
    restored = Curriculum.from_dict(json.loads(json.dumps(live.to_dict())))
    assert restored == live
    first = next_problems(live, cfg, 12, "seed/7", exclude=set())
    again = next_problems(restored, cfg, 12, "seed/7", exclude=set())
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again] and len(first) == 12
    assert any(p.meta["template"].startswith("mental/") for p in first)
    assert simulate(restored, cfg, students, 5, seed=3)[-1] == simulate(live, cfg, students, 5, seed=3)[-1]


def test_next_problems_never_draws_held_out_facts_and_carries_its_difficulty():
    from synthesis.generators import generate_problems
    from synthesis.problem import fact_key

    cfg = CurriculumConfig(mode="adaptive")
    cur = start_stage({"mental_math": 1}, 0.0, 0.5)
    cur.topics["mental_math"].d = 0.3
    held = {fact_key(p) for p in generate_problems(200, d=0.3, topics={"mental_math": 1}, seed=5, split="heldout")}
    problems = next_problems(cur, cfg, 40, "x", exclude=held)
    assert len(problems) == 40 and not held & {fact_key(p) for p in problems}
    assert {p.meta["d"] for p in problems} == {0.3}


def test_raft_keeps_at_most_m_correct_completions_per_problem():
    from cluster.raft import raft_selection

    verdicts = [["wrong", "correct", "correct", "correct"], ["wrong", "not_final", "wrong", "wrong"], ["correct"] * 4]
    rewards = [[0.4, 0.7, 0.9, 0.8], [0.3, 0.1, 0.2, 0.4], [0.6, 0.9, 0.7, 0.8]]
    assert raft_selection(verdicts, rewards, "correct", 2) == [(0, 1), (0, 2), (2, 0), (2, 1)]
    assert raft_selection(verdicts, rewards, "top_reward", 2) == [(0, 2), (0, 3), (2, 1), (2, 3)]
    assert raft_selection(verdicts, rewards, "correct", 1) == [(0, 1), (2, 0)]
