"""The transformers rollout engine: `generate` with left padding, logprobs from the raw logits, and LoRA
adapters applied with peft. The CPU default, and the fallback where vLLM is not installed.

`sync` says how a pushed adapter reaches the weights that decode: `adapter` runs the LoRA matmuls beside the
base ones on every token; `merged` folds the adapter into the base weights once per push (W = W₀ + s·BA, from a
kept copy of W₀, so pushes never accumulate rounding) and decodes with the plain model — on the tiny CPU model a
push plus a step's decoding is 1.17× faster so (`bench/rollout_sync.py`)."""
from __future__ import annotations

import inspect
import itertools
import threading
import time
from typing import Any

import torch

from actors.engine import encode_prompts
from actors.records import Completion, SamplingConfig


class HFEngine:
    """A transformers causal LM (optionally wrapped in a peft LoRA adapter) serving `generate` calls."""

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto", max_batch_size: int = 64,
                 seed: int = 0, sync: str = "adapter", system_prompt: str = "") -> None:
        if sync not in ("adapter", "merged"):
            raise ValueError(f"sync: expected adapter or merged, got {sync!r}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        torch_dtype = (torch.bfloat16 if self.device.type == "cuda" else torch.float32) if dtype == "auto" else getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        forward = inspect.signature(self.model.forward).parameters
        self._cache_argument = "cache" if "cache" in forward else "past_key_values"  # transformers 5 renamed it
        self.max_batch_size = max_batch_size
        self.system_prompt = system_prompt
        self.sync = sync
        self._base: dict[str, torch.Tensor] | None = None  # merged sync: W₀ of every LoRA-wrapped layer
        self.adapter_version = 0
        self._pending: Any = None
        self._lock = threading.Lock()
        torch.manual_seed(seed)
        self.tokens_generated = 0
        self.seconds_generating = 0.0

    # ------------------------------------------------------------ adapters

    def load_adapter(self, weights: Any) -> None:
        """Stage adapter `weights` (an `AdapterWeights`: version, peft config, tensors); the next `generate`
        call applies it, a running one is not disturbed."""
        self._pending = weights

    def _apply_pending(self, fold: bool | None = None) -> None:
        """Load the staged adapter; with merged sync (or `fold`) also fold it into the weights, from W₀."""
        fold = self.sync == "merged" if fold is None else fold
        weights, self._pending = self._pending, None
        if weights is None or weights.version == self.adapter_version:
            return
        from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict

        if not isinstance(self.model, PeftModel):
            config = LoraConfig(**{k: v for k, v in weights.config.items() if k in LoraConfig.__dataclass_fields__})
            config.inference_mode = True
            self.model = get_peft_model(self.model, config).eval()
        if self.sync == "merged":
            self._unmerge_exactly()
        set_peft_model_state_dict(self.model, {k: torch.tensor(v).to(self.device) for k, v in weights.tensors.items()})
        if fold:
            self.model.merge_adapter()
        self.adapter_version = weights.version

    def _lora_layers(self):
        from peft.tuners.lora import LoraLayer

        return [(name, module) for name, module in self.model.named_modules() if isinstance(module, LoraLayer)]

    def _unmerge_exactly(self) -> None:
        """Undo the last merge by restoring W₀ (kept on the first merge), not by subtracting s·BA again."""
        layers = self._lora_layers()
        if self._base is None:
            self._base = {name: module.get_base_layer().weight.detach().clone() for name, module in layers}
            return
        with torch.no_grad():
            for name, module in layers:
                module.get_base_layer().weight.copy_(self._base[name])
                module.merged_adapters.clear()

    def merge_adapter(self, weights: Any) -> None:
        """Fold `weights` into the base weights (the learner did the same: see `LearnerCore.merge_adapter`);
        later adapters apply on top. Waits for a running `generate`."""
        from peft import PeftModel

        with self._lock:
            self._pending = weights
            self.adapter_version = -1
            self._apply_pending(fold=False)  # loaded on W₀, not folded: merge_and_unload folds it once
            self.model = self.model.merge_and_unload() if isinstance(self.model, PeftModel) else self.model
            self._base = None
            self.model.eval()
            self.adapter_version = weights.version

    # ------------------------------------------------------------ sampling

    def generate(self, prompts: list[str], n: int, sampling: SamplingConfig,
                 problem_ids: list[str] | None = None) -> list[list[Completion]]:
        """`n` completions per prompt, in prompt order."""
        problem_ids = problem_ids or [str(i) for i in range(len(prompts))]
        with self._lock:
            self._apply_pending()
            version = self.adapter_version
            prompt_ids = encode_prompts(self.tokenizer, prompts, self.system_prompt)
            flat = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(n)]
            results: list[list[Completion]] = [[] for _ in prompts]
            start = time.perf_counter()
            for chunk_start in range(0, len(flat), self.max_batch_size):
                chunk = flat[chunk_start : chunk_start + self.max_batch_size]
                for (i, ids), completion in zip(chunk, self._generate_batch([ids for _, ids in chunk], sampling)):
                    completion.problem_id, completion.policy_version, completion.prompt_token_ids = problem_ids[i], version, ids
                    results[i].append(completion)
            self.seconds_generating += time.perf_counter() - start
        return results

    @torch.no_grad()
    def _generate_batch(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[Completion]:
        tok = self.tokenizer
        input_ids, attention = padded(prompt_ids, tok.pad_token_id, left=True)
        width = input_ids.shape[1]
        greedy = sampling.temperature <= 0
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        prefilled = self._shared_prefill(input_ids, attention, prompt_ids) if width > 1 else {}
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        out = self.model.generate(
            input_ids=input_ids, attention_mask=attention, **prefilled,
            do_sample=not greedy, temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p, top_k=None, max_new_tokens=sampling.max_tokens,
            eos_token_id=None if sampling.ignore_eos else tok.eos_token_id, pad_token_id=tok.pad_token_id,
            stop_strings=list(sampling.stop) or None, tokenizer=tok if sampling.stop else None,
            output_logits=sampling.logprobs, return_dict_in_generate=True,
        )
        new = out.sequences[:, width:].cpu()
        logprobs = None
        if sampling.logprobs:
            logits = torch.stack(out.logits, dim=1).float()
            logprobs = torch.log_softmax(logits, dim=-1).gather(2, new.to(logits.device)[:, :, None]).squeeze(2).cpu()
        completions = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            length, reason = len(ids), "length"
            if not sampling.ignore_eos and tok.eos_token_id in ids:
                length, reason = ids.index(tok.eos_token_id) + 1, "stop"
            else:
                while length and ids[length - 1] == tok.pad_token_id and tok.pad_token_id != tok.eos_token_id:
                    length -= 1
            ids = ids[:length]
            text = tok.decode(ids, skip_special_tokens=True)
            for stop in sampling.stop:
                if stop in text:
                    text, reason = text[: text.index(stop)], "stop"
            if len(ids) < sampling.max_tokens:
                reason = "stop"
            self.tokens_generated += len(ids)
            completions.append(Completion("", text, ids, logprobs[row, :length].tolist() if logprobs is not None else None,
                                          reason, 0))
        return completions

    def _shared_prefill(self, input_ids: torch.Tensor, attention: torch.Tensor, prompt_ids: list[list[int]]) -> dict:
        """A group's G copies of one prompt share its keys and values: every distinct prompt (all its tokens but the
        last) runs through the model once, its cache is repeated for its copies, and `generate` starts from that
        cache, decoding from the last prompt token on. Positions follow the left padding as `generate` sets them.
        Returns `generate`'s cache argument, or nothing when no prompt repeats."""
        from transformers import DynamicCache

        starts = [i == 0 or ids != prompt_ids[i - 1] for i, ids in enumerate(prompt_ids)]
        if all(starts):
            return {}
        firsts = [i for i, start in enumerate(starts) if start]
        owner = torch.tensor(list(itertools.accumulate(starts)), device=input_ids.device) - 1
        head, mask = input_ids[firsts, :-1], attention[firsts, :-1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        self.model(input_ids=head, attention_mask=mask, position_ids=positions, use_cache=True,
                   **{self._cache_argument: cache})
        cache.batch_select_indices(owner)
        return {self._cache_argument: cache}

    def score(self, prompts: list[str], targets: list[str]) -> list[float]:
        """The log-probability of each target text as the continuation of its prompt under the current policy
        (teacher forcing: summed over the target's tokens, no EOS), one forward pass per batch."""
        with self._lock:
            self._apply_pending()
            prompt_ids = encode_prompts(self.tokenizer, prompts, self.system_prompt)
            target_ids = [self.tokenizer(t, add_special_tokens=False).input_ids for t in targets]
            out: list[float] = []
            for lo in range(0, len(prompts), self.max_batch_size):
                out += self._score_batch(prompt_ids[lo : lo + self.max_batch_size],
                                         target_ids[lo : lo + self.max_batch_size])
        return out

    @torch.no_grad()
    def _score_batch(self, prompt_ids: list[list[int]], target_ids: list[list[int]]) -> list[float]:
        input_ids, attention = padded([p + t for p, t in zip(prompt_ids, target_ids)], self.tokenizer.pad_token_id,
                                      left=False)
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        logits = self.model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits.float()
        token_logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, input_ids[:, 1:, None]).squeeze(2).cpu()
        return [float(token_logp[i, len(p) - 1 : len(p) + len(t) - 1].sum()) for i, (p, t) in
                enumerate(zip(prompt_ids, target_ids))]

    def close(self) -> None:
        """Nothing outside this process to delete."""

    def stats(self) -> dict[str, float]:
        return {"tokens_generated": self.tokens_generated, "seconds_generating": self.seconds_generating,
                "tokens_per_s": self.tokens_generated / max(self.seconds_generating, 1e-9),
                "adapter_version": self.adapter_version}


def padded(rows: list[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one tensor with its attention mask: padded on the left for generation (every row's next token
    comes at the last column), on the right for teacher forcing (every row's positions start at 0)."""
    width = max(1, max(map(len, rows)))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for r, ids in enumerate(rows):
        span = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[r, span] = torch.tensor(ids, dtype=torch.long)
        attention[r, span] = 1
    return input_ids, attention
