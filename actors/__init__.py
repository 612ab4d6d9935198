"""Rollout service: the Engine interface, the transformers and vLLM engines, and the RolloutWorker Ray actor."""
