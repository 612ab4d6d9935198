"""Learner throughput: one GRPO step at G=8 × 64 prompts × 512 completion tokens on a random-weight model
of Qwen2.5-0.5B's exact shape: tokens/s, peak memory and MFU, for a few memory/speed settings (gradient
checkpointing, packed micro-batch size, Liger kernels on/off). The step packs sequences without padding,
runs the LM head fused with the log-softmax, and accumulates gradients in fp32.

    python bench/learner.py --out results/             # on the GPU machine
    python bench/learner.py --shape tiny --prompts 4   # a CPU smoke run
    python bench/learner.py --shape small --workload gsm8k --packing flat,tree --settings nockpt:8 \
        --name learner-tree-gsm8k.json                 # flat vs tree packing on CPU (also --workload verifier)

Workloads: `gsm8k` — 8 prompts of 200 tokens × G = 8 completions of 300 (a third of the tokens are prompt copies);
`verifier` — 8 verifier groups: a 400-token prefix (problem, solution, check prompt) × 8 verdicts of 40 tokens.

MFU counts 6·N per token for the policy forward+backward plus 2·N for the reference forward
(N = all parameters), against the GPU's dense bf16 peak.
"""
from __future__ import annotations

import argparse
import gc
import json
import pathlib
import random
import sys
import time

sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
import torch  # noqa: E402 - this file is named like the `learner` package it benchmarks

from cluster.modelzoo import build_model  # noqa: E402
from learner.learner import LearnerConfig, LearnerCore, TrainBatch  # noqa: E402
from learner.policy import PolicyConfig  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


WORKLOADS = {"gsm8k": dict(prompts=8, group=8, prompt_len=200, completion_len=300),
             "verifier": dict(prompts=8, group=8, prompt_len=400, completion_len=40)}


def make_batch(prompts: int, group: int, prompt_len: int, completion_len: int, vocab: int, seed: int = 0,
               exact: bool = False) -> TrainBatch:
    rng = random.Random(seed)
    prompt_ids, completion_ids, rewards = [], [], []
    for _ in range(prompts):
        length = prompt_len if exact else rng.randint(prompt_len // 2, prompt_len)
        prompt = [rng.randrange(10, vocab) for _ in range(length)]
        for _ in range(group):
            prompt_ids.append(prompt)
            completion_ids.append([rng.randrange(10, vocab) for _ in range(completion_len)])
            rewards.append(float(rng.random() < 0.5))
    return TrainBatch(prompt_ids, completion_ids, rewards, group)


def run(model_dir: str, setting: dict, batch: TrainBatch, n_params: int, profile: bool = False) -> dict:
    cfg = LearnerConfig(micro_batch_size=setting["micro"], beta=0.04, lr=1e-5, liger=setting["liger"],
                        packing=setting.get("packing", "flat"))
    learner = LearnerCore(cfg, PolicyConfig(name=model_dir, lora_rank=16, lora_alpha=32,
                                            gradient_checkpointing=setting["checkpointing"]))
    warm = TrainBatch(batch.prompt_ids[: 2 * setting["micro"]], batch.completion_ids[: 2 * setting["micro"]],
                      batch.rewards[: 2 * setting["micro"]], batch.group_size)
    learner.step(warm)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timings = []
    for _ in range(setting.get("repeats", 2)):  # the first full step also grows the allocator: report the last
        start = time.perf_counter()
        stats = learner.step(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    seconds = timings[-1]
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        small = TrainBatch(batch.prompt_ids[:64], batch.completion_ids[:64], batch.rewards[:64], batch.group_size)
        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            learner.step(small)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25), flush=True)
    tokens = sum(len(p) + len(c) for p, c in zip(batch.prompt_ids, batch.completion_ids))
    flops = 8 * n_params * tokens
    peak = peak_flops()
    result = {
        **setting, "seconds": seconds, "all_step_seconds": timings, "tokens": tokens, "tokens_per_s": tokens / seconds,
        "completion_tokens_per_s": stats.tokens / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "achieved_tflops": flops / seconds / 1e12, "mfu": flops / seconds / peak if peak else None,
        "loss": stats.loss, "kl": stats.kl, "logical_tokens": stats.logical_tokens,
        "computed_tokens": stats.computed_tokens,
    }
    del learner
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="qwen2.5-0.5b")
    parser.add_argument("--model-dir", default="/tmp/rlvr-bench-models")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--completion-len", type=int, default=512)
    parser.add_argument("--settings", default="ckpt:32,nockpt:32,nockpt:32:noliger,nockpt:64",
                        help="comma-separated checkpointing:micro_batch[:noliger]; a micro-batch packs micro × "
                             "the longest sequence's tokens")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="a named shape (overrides the four above)")
    parser.add_argument("--packing", default="flat", help="comma-separated learner.packing values to run each setting")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--name", default="learner.json")
    parser.add_argument("--profile", action="store_true", help="print the top CUDA kernels of one step per setting")
    args = parser.parse_args()
    model_dir = str(build_model(pathlib.Path(args.model_dir) / args.shape, args.shape))
    config = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        n_params = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).num_parameters()
    for key, value in WORKLOADS.get(args.workload, {}).items():
        setattr(args, key, value)
    batch = make_batch(args.prompts, args.group, args.prompt_len, args.completion_len, config["vocab_size"],
                       exact=args.workload is not None)
    results = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "shape": args.shape,
               "parameters": n_params, "sequences": len(batch.prompt_ids), "runs": []}
    for item, packing in [(i, p) for i in args.settings.split(",") for p in args.packing.split(",")]:
        mode, micro, *rest = item.split(":")
        setting = {"checkpointing": mode == "ckpt", "micro": int(micro), "liger": "false" if "noliger" in rest else "auto",
                   "packing": packing, "workload": args.workload}
        try:
            results["runs"].append(run(model_dir, setting, batch, n_params, args.profile))
        except torch.OutOfMemoryError as exc:
            results["runs"].append({**setting, "error": f"OOM: {str(exc)[:200]}"})
            gc.collect()
            torch.cuda.empty_cache()
        print(json.dumps(results["runs"][-1]), flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / args.name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
