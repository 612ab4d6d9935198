"""The `Engine` interface every rollout backend implements, and how to pick one."""
from __future__ import annotations

from typing import Any, Protocol

from actors.records import Completion, SamplingConfig


class Engine(Protocol):
    """Samples completions and hot-swaps LoRA adapters by version (version 0 = the base model).

    `load_adapter` never disturbs a `generate` already running: the new version is used from the next call."""

    adapter_version: int

    tokenizer: Any

    def generate(self, prompts: list, n: int, sampling: SamplingConfig,
                 problem_ids: list[str] | None = None) -> list[list[Completion]]: ...

    def score(self, prompts: list, targets: list[str]) -> list[float]: ...

    def load_adapter(self, weights: Any) -> None: ...

    def merge_adapter(self, weights: Any) -> None: ...

    def stats(self) -> dict[str, float]: ...

    def close(self) -> None: ...


def encode_prompts(tokenizer, prompts: list, system: str = "") -> list[list[int]]:
    """Prompt token ids through the chat template when the tokenizer has one (as the learner's SFT does), with
    `system` as the system turn when given (else the template's own default, if it has one); a prompt given as
    token ids (an episode's context after its first turn) is taken as it is."""
    return [list(p) if isinstance(p, list) else _encode_one(tokenizer, p, system) for p in prompts]


def _encode_one(tokenizer, prompt: str, system: str) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        turns = [{"role": "system", "content": system}] if system else []
        return list(tokenizer.apply_chat_template(turns + [{"role": "user", "content": prompt}], tokenize=True,
                                                  add_generation_prompt=True, return_dict=False))
    return tokenizer(f"{system}\n\n{prompt}" if system else prompt).input_ids


def checkpoint_state(model) -> dict:
    """A transformers model's weights under checkpoint names, LoRA folded in (peft's `base_layer` names mapped
    back, its lora_A/lora_B dropped), each storage once: tied embeddings under their first name, the input
    embedding, which is the one vLLM and transformers load a tied head from."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    state, seen = {}, set()
    for name, tensor in base.state_dict().items():
        if ".lora_" in name or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name.replace(".base_layer.", ".")] = tensor.detach().contiguous()
    return state


def make_engine(kind: str, **kwargs) -> Engine:
    """`hf` (transformers, CPU or GPU) or `vllm` (GPU; needs the `vllm` extra)."""
    if kind == "hf":
        from actors.hf_engine import HFEngine

        return HFEngine(**kwargs)
    if kind == "vllm":
        from actors.vllm_engine import VLLMEngine

        return VLLMEngine(**kwargs)
    raise ValueError(f"unknown engine {kind!r}: expected 'hf' or 'vllm'")
