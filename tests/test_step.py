"""The rules of one training step, without Ray: stage-end reasons, group selection after resampling, the GRPO
batch (and `drop_zero_spread`), the step's records and line, reward health, and episodes run turn by turn in a
real rollout worker (in-process) with an environment registered here."""
from __future__ import annotations

import collections
import dataclasses

import pytest

from actors.environments import ENVIRONMENTS, AnswerEnv, EnvStep, make_env, register
from actors.records import EnvSpec, Episode, GroupBatch, SamplingConfig, Turn
from cluster.config import load_config
from cluster.curriculum import Curriculum
from cluster.learn import grpo_batch
from cluster.loop import stage_end_reason, staleness_of
from cluster.records import GroupStats, RewardHealth, ScoredStep, StepResult, StepTimes
from cluster.report import health_warning, reward_health, step_line
from cluster.schedule import RunState
from cluster.episodes import select_groups
from learner.grpo import has_spread
from learner.learner import LearnStats
from synthesis.problem import Problem
from verifier_pool.reward import Verdict, error_breakdown


def judged(verdict: str, total: float | None = None, shaping: float = 0.0):
    return dataclasses.replace(error_breakdown(Verdict(verdict)), total=(verdict == "correct") if total is None else total,
                               correctness=float(verdict == "correct"), shaping=shaping)


def group(pid: str, verdicts: list[str], version: int = 0, tokens: int = 3) -> GroupBatch:
    problem = Problem(id=pid, question=f"q {pid}", answer="1")
    return GroupBatch(problem, [Episode(pid, "answer", problem.question, [1, 2],
                                        [Turn("model", "1", list(range(tokens)), [-0.5] * tokens, "stop", version)],
                                        done=True, reward=judged(v)) for v in verdicts])


def curriculum(passing_steps: int = 0) -> Curriculum:
    return Curriculum(topics={}, low=0.0, high=1.0, passing_steps=passing_steps)


# ------------------------------------------------------------------ when a stage ends, and why


def test_a_stage_ends_on_its_last_batch():
    cfg = load_config("tiny", overrides=["curriculum.mode=fixed"])
    state = RunState(stage=0, stage_step=4)
    assert stage_end_reason(cfg, state, 5, curriculum(), [], 0.0) == "its last batch (5 steps)"
    assert stage_end_reason(cfg, dataclasses.replace(state, stage_step=3), 5, curriculum(), [], 0.0) is None


def test_the_adaptive_curriculum_promotes_after_its_passing_steps():
    cfg = load_config("tiny", overrides=["curriculum.promote_steps=3"])
    state = RunState(stage=0, stage_step=1)
    assert stage_end_reason(cfg, state, 20, curriculum(passing_steps=2), [], 0.0) is None
    assert stage_end_reason(cfg, state, 20, curriculum(passing_steps=3), [], 0.0).startswith("promoted")
    fixed = load_config("tiny", overrides=["curriculum.mode=fixed"])
    assert stage_end_reason(fixed, state, 20, curriculum(passing_steps=3), [], 0.0) is None


def test_grpo_minutes_end_a_stage_after_its_share_of_the_seconds():
    cfg = load_config("tiny", overrides=["grpo_minutes=3", "curriculum.mode=fixed"])  # 3 stages: 60 s each
    state = RunState(stage=1, stage_step=1)
    assert stage_end_reason(cfg, state, 20, curriculum(), [], 59.9) is None
    assert stage_end_reason(cfg, state, 20, curriculum(), [], 60.0) == "its share of grpo_minutes=3 spent"


def test_advance_accuracy_needs_a_full_window_at_the_threshold():
    cfg = load_config("tiny", overrides=["curriculum.mode=fixed", "rolling_window=3", "stages.0.advance_accuracy=0.6"])
    state = RunState(stage=0, stage_step=1)
    assert stage_end_reason(cfg, state, 20, curriculum(), [0.9, 0.9], 0.0) is None  # window not full
    assert stage_end_reason(cfg, state, 20, curriculum(), [0.5, 0.6, 0.6], 0.0) is None  # mean 0.567
    assert stage_end_reason(cfg, state, 20, curriculum(), [0.6, 0.6, 0.6], 0.0) == "rolling accuracy 0.600 >= 0.6"


# ------------------------------------------------------------------ which groups the learner gets


def test_one_spread_rule():
    assert has_spread([0.0, 1.0]) and not has_spread([1.0, 1.0]) and not has_spread([0.0, 0.0]) and not has_spread([])


def test_after_resampling_groups_with_spread_come_first_in_sampling_order_and_the_batch_is_topped_up():
    groups = [group("a", ["wrong", "wrong"]), group("b", ["correct", "wrong"]), group("c", ["correct", "correct"]),
              group("d", ["wrong", "correct"]), group("e", ["correct", "wrong"])]
    assert select_groups(groups, 3, resampled=True) == [False, True, False, True, True]
    assert select_groups(groups, 4, resampled=True) == [True, True, False, True, True]  # topped up: first spread-less
    assert select_groups(groups, 2, resampled=False) == [True] * 5  # nothing resampled: every group trains


def test_the_grpo_batch_is_laid_out_group_by_group_and_can_drop_zero_spread_groups():
    scored = ScoredStep([group("a", ["correct", "correct"]), group("b", ["correct", "wrong"], tokens=2)], [True, True])
    keep_all = grpo_batch(load_config("tiny", overrides=["group_size=2"]), scored)
    assert keep_all.correct == [1.0, 1.0, 1.0, 0.0] and keep_all.group_size == 2
    assert keep_all.completion_ids == [[0, 1, 2], [0, 1, 2], [0, 1], [0, 1]] and keep_all.sampler_logprobs is None
    dropped = grpo_batch(load_config("tiny", overrides=["group_size=2", "drop_zero_spread=true"]), scored)
    assert dropped.correct == [1.0, 0.0] and dropped.completion_ids == [[0, 1], [0, 1]]
    untrained = ScoredStep(scored.groups, [False, False])
    assert grpo_batch(load_config("tiny"), untrained) is None
    with_tis = grpo_batch(load_config("tiny", overrides=["group_size=2", "learner.tis='on'"]), scored)
    assert with_tis.sampler_logprobs[2] == [-0.5, -0.5]


def test_staleness_is_the_learner_version_minus_the_mean_sampling_version():
    scored = ScoredStep([group("a", ["correct", "wrong"], version=2), group("b", ["wrong", "wrong"], version=4)],
                        [True, True])
    assert staleness_of(scored, 5) == 2.0


# ------------------------------------------------------------------ what a step reports


def test_group_stats_and_reward_health():
    groups = [group("a", ["correct", "wrong"]), group("b", ["timeout", "wrong"])]
    stats = GroupStats.of(groups)
    assert stats.accuracy == 0.25 and stats.timeouts == 0.25 and stats.zero_spread_groups == 0.5
    assert stats.completion_tokens == 12 and stats.signals["correctness"] == 0.25
    health = reward_health(groups, collections.deque([0.0, 0.0]))
    assert health == RewardHealth(identical_rewards=False, timeouts=0.25, timeout_jump=True)
    assert health_warning(health) == "timeouts jumped to 25%"
    calm = reward_health(groups, collections.deque([0.2, 0.2, 0.3]))  # 0.25 is under 3 × the median 0.2
    assert not calm.timeout_jump and health_warning(calm) is None
    same = reward_health([group("c", ["wrong", "wrong"])], [])
    assert same.identical_rewards and health_warning(same).startswith("every completion got the same reward")


def step_result(**changes) -> StepResult:
    groups = [group("a", ["correct", "wrong"]), group("b", ["wrong", "wrong"])]
    result = StepResult(step=7, stage=0, trained=GroupStats.of(groups), sampled=GroupStats.of(groups + groups),
                        extra_problems=0, shortfall=3, staleness=0.0,
                        health=RewardHealth(False, 0.0, False), times=StepTimes(2.0, 0.5, 1.0, 0.25, 4.0, 1.0, 0.3),
                        learn=LearnStats(loss=0.5, grad_norm=1.0, lr=1e-3, seconds=1.0, tokens=12, tokens_per_s=12.0,
                                         version=7, step=7, kl=0.125))
    return dataclasses.replace(result, **changes)


def test_the_step_result_gives_mlflow_its_flat_names():
    metrics = step_result().metrics()
    assert metrics["accuracy"] == 0.25 and metrics["zero_spread_groups"] == 0.5 and metrics["resample/shortfall"] == 3
    assert metrics["learn_seconds"] == 1.0 and metrics["kl"] == 0.125 and metrics["version"] == 7
    assert metrics["gpu_idle_share"] == 0.25 and metrics["rollout_tokens_per_s"] == 6.0
    assert "raft/kept" not in metrics and "learn_seconds" not in step_result(learn=None).metrics()


def test_hedged_finals_are_counted_and_logged_like_not_final_ones():
    stats = GroupStats.of([group("a", ["hedged", "not_final"]), group("b", ["hedged", "correct"])])
    assert stats.hedged == 0.5 and stats.not_final == 0.25 and stats.accuracy == 0.25
    assert step_result(trained=stats).metrics()["hedged"] == 0.5


def test_the_step_line():
    cfg = load_config("tiny", overrides=["curriculum.mode=fixed", "batch_size=4"])
    state = RunState(step=7, stage=0, stage_step=3)
    line = step_line(cfg, state, 8, 4, step_result())
    assert line.startswith("[easy e2/2 b1/2] step 7  reward ") and "acc 0.250  zero-spread 0.50" in line
    assert "kl 0.1250  6 tok/s  draw 0.3s rollout 2.0s score 0.5s learn 1.0s push 0.25s  step 4.0s idle 25%" in line
    resampled = step_line(cfg, state, 8, 4, step_result(extra_problems=2))
    assert "(sampled 0.50, +2 resampled)" in resampled
    adaptive = load_config("tiny")
    state = dataclasses.replace(state, curriculum={"topics": {"mental_math": {"d": 0.25}}})
    assert step_line(adaptive, state, 0, 10, step_result()).startswith("[easy 3/10] step 7")
    assert step_line(adaptive, state, 0, 10, step_result()).endswith("d mental_math=0.25")


# ------------------------------------------------------------------ environments and episodes


def test_the_answer_environment_is_one_turn_in_the_prompt_template():
    env = make_env(EnvSpec("answer", template="Q: {question}"))
    assert isinstance(env, AnswerEnv) and env.init(Problem(id="p", question="1 + 1?", answer="2")) == "Q: 1 + 1?"
    assert env.step("2") == EnvStep(observations=[], reward=None, done=True, info={})
    with pytest.raises(ValueError, match="unknown environment 'nope'"):
        make_env(EnvSpec("nope"))


def test_an_episode_masks_observations_out_of_the_loss():
    episode = Episode("p", "x", "prompt", [9], [Turn("model", "a", [1, 2], [-0.1, -0.2], "stop", 3),
                                              Turn("env", "obs", [7]), Turn("model", "b", [3], [-0.3], "stop", 4)])
    assert episode.token_ids == [1, 2, 7, 3] and episode.loss_mask == [1, 1, 0, 1]
    assert episode.sampler_logprobs == [-0.1, -0.2, 0.0, -0.3]
    assert episode.final_text == "b" and episode.transcript == "aobsb" and episode.policy_version == 3


@register("test-echo")
class EchoEnv:
    """Two model turns: the first gets an observation back, the second ends the episode."""

    def __init__(self, spec: EnvSpec) -> None:
        self.turns = 0

    def init(self, problem) -> str:
        return problem.question

    def step(self, turn_text: str) -> EnvStep:
        self.turns += 1
        return EnvStep(observations=[" seen."], done=self.turns >= 2, info={"turns": self.turns})


def test_the_rollout_worker_runs_episodes_turn_by_turn(tiny_model_dir):
    from actors.worker import RolloutWorker

    worker = RolloutWorker("hf", torch_threads=1, model=tiny_model_dir, max_batch_size=16)
    problems = [Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(2)]
    sampling = SamplingConfig(temperature=1.0, max_tokens=4, logprobs=True, seed=3)
    groups = worker.run_episodes(problems, EnvSpec("test-echo", max_turns=3), 2, sampling)
    assert [g.problem.id for g in groups] == ["p0", "p1"] and all(len(g.episodes) == 2 for g in groups)
    for episode in (e for g in groups for e in g.episodes):
        assert [t.role for t in episode.turns] == ["model", "env", "model", "env"]
        assert episode.done and not episode.truncated and episode.info == {"turns": 2}
        assert len(episode.sampler_logprobs) == len(episode.token_ids) == len(episode.loss_mask)
    cut = worker.run_episodes(problems[:1], EnvSpec("test-echo", max_turns=1), 1, sampling)[0].episodes[0]
    assert cut.truncated and not cut.done and [t.role for t in cut.turns] == ["model", "env"]
    single = worker.run_episodes(problems, EnvSpec("answer"), 2, sampling)
    direct = worker.generate([p.question for p in problems], 2, sampling, [p.id for p in problems])
    assert [[e.token_ids for e in g.episodes] for g in single] == [[c.token_ids for c in row] for row in direct]
    assert "test-echo" in ENVIRONMENTS
