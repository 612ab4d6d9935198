"""`verifier_pool.trl_reward`: TRL's reward-function signature over our sandboxed verifier, and two real
`GRPOTrainer` steps on the tiny model with it in `reward_funcs`."""
from __future__ import annotations

import pytest

from verifier_pool.trl_reward import sympy_accuracy, trl_reward


def test_the_reward_reads_strings_and_chats_and_judges_by_value_under_either_policy():
    completions = ["so the answer is \\boxed{\\frac{1}{2}}", [{"role": "assistant", "content": "The answer is 0.5"}],
                   "<final_answer>2/4</final_answer>", "no idea", "\\boxed{9^9^9^9^9}", "The answer is 7."]
    golds = ["0.5", "1/2", "1/2", "1/2", "1/2", ""]
    assert sympy_accuracy(completions, answer=golds) == [1.0, 1.0, 1.0, 0.0, 0.0, None]
    strict = trl_reward("strict", answer_column="solution")
    assert strict.__name__ == "sympy_strict"
    prompts = ["Simplify 2/4."] * 3
    assert strict(completions[:3], prompts=prompts, solution=golds[:3]) == [1.0, 1.0, 0.0]  # 2/4 is not final form
    with pytest.raises(KeyError, match="answer_column"):
        strict(completions, answer=golds)
    with pytest.raises(ValueError, match="policy"):
        trl_reward("loose")


def test_grpo_trainer_trains_two_steps_with_our_reward(tiny_model_dir, tmp_path):
    pytest.importorskip("trl")
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from synthesis.generators import generate_problems

    problems = generate_problems(4, 1, topics={"mental_math": 1}, seed=0)
    dataset = Dataset.from_list([{"prompt": p.question, "answer": p.answer} for p in problems])
    seen: list[list] = []

    def recording(completions, **columns):
        rewards = sympy_accuracy(completions, **columns)
        seen.append(rewards)
        return rewards

    config = GRPOConfig(output_dir=str(tmp_path / "trl"), num_generations=2, max_completion_length=8,
                        per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=2, logging_steps=1,
                        save_strategy="no", report_to=[], use_cpu=True, learning_rate=1e-3, beta=0.0, seed=0,
                        disable_tqdm=True)
    trainer = GRPOTrainer(model=tiny_model_dir, reward_funcs=[sympy_accuracy, recording], args=config,
                          train_dataset=dataset, peft_config=LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM",
                                                                        target_modules=["q_proj", "v_proj"]))
    trainer.train()
    assert trainer.state.global_step == 2 and len(seen) >= 2
    assert all(r in (0.0, 1.0) for batch in seen for r in batch)
    logged = [row for row in trainer.state.log_history if "rewards/sympy_lenient/mean" in row]
    assert len(logged) == 2
