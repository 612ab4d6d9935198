"""`AdapterWeights`: the LoRA tensors of one policy version, on the CPU, as they cross to rollout workers."""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass

import numpy as np


@dataclass
class AdapterWeights:
    """Version N of the adapter: peft's adapter_config as a dict and its state dict as float32 numpy arrays
    (zero-copy through Ray's object store)."""

    version: int
    config: dict
    tensors: dict[str, np.ndarray]

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def save(self, directory: str | os.PathLike) -> pathlib.Path:
        """Write `adapter_model.safetensors` + `adapter_config.json`: the layout `PeftModel.from_pretrained`
        and vLLM's `LoRARequest` read."""
        from safetensors.numpy import save_file

        path = pathlib.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.tensors.items()}, str(path / "adapter_model.safetensors"))
        (path / "adapter_config.json").write_text(json.dumps(self.config, indent=2))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, version: int = 0) -> "AdapterWeights":
        """From an adapter directory, or a checkpoint directory holding one under `adapter/`."""
        from safetensors.numpy import load_file

        path = pathlib.Path(directory)
        if not (path / "adapter_config.json").exists() and (path / "adapter").is_dir():
            path = path / "adapter"
        return cls(version, json.loads((path / "adapter_config.json").read_text()),
                   load_file(str(path / "adapter_model.safetensors")))

    def torch_state_dict(self) -> dict:
        import torch

        return {k: torch.from_numpy(np.asarray(v)) for k, v in self.tensors.items()}


def export_adapter(model, version: int) -> AdapterWeights:
    """The current LoRA weights of a peft model as an `AdapterWeights` (keys as peft saves them)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model)
    config = model.peft_config["default"].to_dict()
    config["target_modules"] = sorted(config["target_modules"]) if config.get("target_modules") else None
    config = json.loads(json.dumps(config, default=str))
    return AdapterWeights(version, config, {k: v.detach().float().cpu().numpy() for k, v in state.items()})


def load_adapter_weights(model, weights: AdapterWeights) -> None:
    """Copy an `AdapterWeights` into a peft model's LoRA parameters in place."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, weights.torch_state_dict())
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
    if missing:
        raise ValueError(f"adapter keys the model does not have: {missing[:3]}")
