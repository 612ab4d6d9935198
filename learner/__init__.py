"""GRPO maths, the LoRA policy, the Learner Ray actor, SFT warm start and adapter export."""
