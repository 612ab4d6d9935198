"""Rollout service: the Engine interface, the transformers and vLLM engines, and the RolloutWorker Ray actor."""
from actors.engine import Engine, encode_prompts, make_engine
from actors.records import Completion, SamplingConfig

__all__ = ["Completion", "Engine", "SamplingConfig", "encode_prompts", "make_engine"]
