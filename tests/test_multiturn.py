"""Multi-turn episodes in the learner: observation tokens are context, never loss, and an episode's log-probs are
one forward pass over its whole transcript (equal to what the sampler saw turn by turn)."""
from __future__ import annotations

import torch

from tests.test_step import EchoEnv  # noqa: F401 - registers the two-turn test environment `test-echo`
from actors.records import EnvSpec, SamplingConfig
from learner.learner import LearnerConfig, LearnerCore, TrainBatch
from learner.policy import PolicyConfig
from synthesis.problem import Problem


def learner(model_dir: str) -> LearnerCore:
    return LearnerCore(LearnerConfig(lr=1e-3, beta=0.0, micro_batch_size=4), PolicyConfig(name=model_dir, lora_rank=4,
                                                                                            lora_alpha=8), seed=0)


def adapter_gradient(core: LearnerCore, batch: TrainBatch) -> torch.Tensor:
    """The loss gradient w.r.t. the adapter for `batch` (no update)."""
    core.model.train()
    core.optimizer.zero_grad(set_to_none=True)
    for param in core.trainable:
        param.grad = None
    micro = core._micro_batches(batch.prompt_ids, batch.completion_ids)
    advantages = torch.tensor([1.0, -1.0])
    lengths = [len(c) for c in batch.completion_ids]
    for m in micro:
        targets = core._targets(m, advantages, batch, lengths)
        core._micro_step(m, targets, float(batch.trained_tokens()), float(batch.trained_tokens()),
                         dict.fromkeys(("loss", "kl", "clip_fraction", "ratio", "mismatch_kl", "tis_clipped"), 0.0))
    return torch.cat([p.grad.flatten() for p in core.master])


def test_observation_tokens_carry_no_gradient(tiny_model_dir):
    """Two episodes whose model turns are the same and whose final observations differ: the same gradient when
    observations are masked; a different one when they are trained on (the test can fail)."""
    core = learner(tiny_model_dir)
    torch.nn.init.normal_(next(p for n, p in core.model.named_parameters() if "lora_B" in n), std=0.02)
    prompts, turn_a, turn_b = [[5, 6, 7], [5, 6, 8]], [11, 12, 13, 14], [21, 22, 23]
    mask = [[1] * 4 + [0] * 3, [1] * 3 + [0] * 3]

    def batch(obs_a: list[int], obs_b: list[int], masks) -> TrainBatch:
        return TrainBatch(prompts, [turn_a + obs_a, turn_b + obs_b], rewards=[1.0, 0.0], group_size=2,
                          correct=[1.0, 0.0], loss_masks=masks)

    one = adapter_gradient(core, batch([30, 31, 32], [40, 41, 42], mask))
    other = adapter_gradient(core, batch([50, 51, 52], [60, 61, 62], mask))
    assert one.abs().sum() > 0 and torch.equal(one, other)
    unmasked = adapter_gradient(core, batch([30, 31, 32], [40, 41, 42], None))
    assert not torch.allclose(unmasked, one)
    assert batch([1, 2, 3], [4, 5, 6], mask).trained_tokens() == 7


def test_a_multi_turn_episode_has_the_log_probs_of_one_forward_pass_over_its_transcript(tiny_model_dir):
    """The sampler's per-token log-probs, generated turn by turn with the observation in between, equal the
    learner's over prompt + every turn in one pass (same weights: the adapter is zero), on the model's tokens."""
    from actors.worker import RolloutWorker

    worker = RolloutWorker("hf", torch_threads=1, model=tiny_model_dir, max_batch_size=8)
    problems = [Problem(id="p", question="What is 3 + 4?", answer="7")]
    groups = worker.run_episodes(problems, EnvSpec("test-echo", max_turns=2), 2,
                                 SamplingConfig(temperature=1.0, max_tokens=5, logprobs=True, seed=1))
    core = learner(tiny_model_dir)
    for episode in groups[0].episodes:
        assert [t.role for t in episode.turns] == ["model", "env", "model", "env"]
        learned = core.completion_logprobs([episode.prompt_token_ids], [episode.token_ids])[0]
        sampled = episode.sampler_logprobs
        trained = [i for i, m in enumerate(episode.loss_mask) if m]
        assert len(learned) == len(sampled) == len(episode.loss_mask)
        assert torch.allclose(torch.tensor([learned[i] for i in trained]), torch.tensor([sampled[i] for i in trained]),
                              atol=1e-4)


# ------------------------------------------------------------------ code feedback


def code_env(max_turns: int):
    from cluster.environments import CodeFeedbackEnv

    env = CodeFeedbackEnv(EnvSpec("code-feedback", max_turns=max_turns))
    assert env.init(Problem(id="p", question="What is 3 + 4?", answer="7")).startswith("What is 3 + 4?\nWrite a Python")
    return env


def test_code_feedback_runs_the_program_then_asks_for_the_answer():
    env = code_env(max_turns=2)
    ran = env.step("```python\nprint(3 + 4)\n```")
    assert not ran.done and ran.observations == ["\nOutput: 7\nGive the final answer.\n"]
    answered = env.step("The program printed 7. The answer is 7.")
    assert answered.done and answered.observations == [] and answered.info == {"programs": ["ok"]}


def test_code_feedback_lets_a_failed_program_be_written_again_while_a_turn_for_the_answer_remains():
    env = code_env(max_turns=3)
    missing = env.step("I think it is 7.")
    assert missing.observations == ["\nError: no program found\nWrite a corrected Python program that prints the answer.\n"]
    failed = env.step("```python\nprint(3 +)\n```")
    assert failed.observations[0].startswith("\nError: SyntaxError") and failed.observations[0].endswith("Give the final answer.\n")
    assert env.step("7").done and env.programs == ["no_code", "error"]


def test_a_hostile_program_in_an_episode_stays_contained(tmp_path):
    target = tmp_path / "escaped"
    env = code_env(max_turns=2)
    step = env.step(f"```python\nopen({str(target)!r}, 'w').write('x')\nprint(7)\n```")
    assert env.programs == ["error"] and not target.exists() and step.observations[0].startswith("\nError: ")


# ------------------------------------------------------------------ solver-verifier


def test_the_verifier_reward_is_agreement_with_sympys_verdict_on_the_judged_answer():
    import dataclasses

    from actors.records import Episode, GroupBatch, Turn
    from cluster.verifier_role import VerifierStats, agreement, check_problem, judged_solutions, verdict_word
    from verifier_pool.reward import Verdict, error_breakdown

    assert [verdict_word(t) for t in ("… so it is CORRECT.", "It is INCORRECT.", "WRONG, then CORRECT", "UNCLEAR",
                                      "no idea")] == ["CORRECT", "WRONG", "CORRECT", "UNCLEAR", None]
    assert [agreement(t, "WRONG").total for t in ("WRONG", "INCORRECT", "CORRECT", "UNCLEAR", "")] == [1, 1, 0, 0, 0]
    assert agreement("It checks out: CORRECT", "CORRECT").verdict == Verdict.CORRECT

    def solver_group(pid: str, verdicts: list[str]) -> GroupBatch:
        problem = Problem(id=pid, question="What is 3 + 4?", answer="7")
        return GroupBatch(problem, [Episode(pid, "solver-verifier", "", [], [Turn("model", f"answer {j}", [1])],
                                            reward=dataclasses.replace(error_breakdown(Verdict(v))))
                                    for j, v in enumerate(verdicts)])

    groups = [solver_group("a", ["wrong", "correct", "correct"]), solver_group("b", ["not_final", "wrong", "wrong"]),
              solver_group("c", ["correct", "correct", "correct"])]
    assert [(g.problem.id, j) for g, j in judged_solutions(groups)] == [("a", 1), ("a", 0), ("c", 0), ("b", 0)]
    assert judged_solutions(groups[1:2]) == [], "one class alone is not judged: the set stays balanced"
    right, wrong = check_problem(groups[0], 1), check_problem(groups[1], 0)
    assert right.answer == "CORRECT" and wrong.answer == "WRONG" and right.id == "a/check1"
    assert "Proposed solution:\nanswer 1\n" in right.question and right.question.startswith("What is 3 + 4?")

    def verifier_group(problem: Problem, replies: list[str]) -> GroupBatch:
        return GroupBatch(problem, [Episode(problem.id, "answer", "", [], [Turn("model", r, [1])],
                                            reward=agreement(r, problem.answer)) for r in replies], role="verifier")

    stats = VerifierStats.of([verifier_group(right, ["CORRECT", "WRONG"]), verifier_group(wrong, ["CORRECT"] * 3 + ["WRONG"])])
    assert (stats.approve_right, stats.approve_wrong, stats.groups) == (0.5, 0.75, 2)


def test_the_code_feedback_warm_start_writes_its_turns_in_the_episodes_token_layout(tiny_model_dir):
    """The answer turn's SFT prompt is the episode so far (question, program turn with its EOS, the runner's
    observation) as token ids, and that observation is what the environment answers to the same program."""
    from transformers import AutoTokenizer

    from actors.engine import encode_prompts
    from cluster.config import load_config
    from cluster.environments import CodeFeedbackEnv
    from cluster.warm_start import agent_rows
    from learner.sft import encode_target
    from synthesis.generators import generate_problems

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = generate_problems(3, 1, topics={"mental_math": 1}, seed=5, split="train")
    prompts, targets = agent_rows(load_config("tiny", overrides=["rollout.env=code-feedback", "rollout.max_turns=2"]),
                                  problems, tokenizer)
    assert len(prompts) == len(targets) == 6
    question = encode_prompts(tokenizer, [f"{problems[0].question}\nWrite a Python program that prints the answer."])[0]
    env = CodeFeedbackEnv(EnvSpec("code-feedback", max_turns=2))
    observation = env.step(targets[0]).observations[0]
    assert prompts[0] == question and targets[0].startswith("```python\nprint(")
    assert prompts[1] == question + encode_target(tokenizer, targets[0]) + tokenizer(observation, add_special_tokens=False).input_ids
    assert observation == f"\nOutput: {problems[0].answer}\nGive the final answer.\n"
    assert targets[1].endswith(f"<final_answer>{problems[0].answer}</final_answer></response>")
    checks = agent_rows(load_config("tiny", overrides=["rollout.env=solver-verifier"]), problems, tokenizer)
    assert checks[0] and all(t.endswith(("CORRECT", "WRONG", "</response>")) for t in checks[1])
    assert any(t.endswith("CORRECT") for t in checks[1]) and any(t.endswith("WRONG") for t in checks[1])
    assert agent_rows(load_config("tiny"), problems, tokenizer) == ([], [])
