"""Rollout throughput of the two engines.

On a GPU machine (`--gpu`): raw `vllm.LLM.generate` against our `RolloutWorker` (inside Ray) on the same
64 prompts × G=8 × 512 tokens (ignore_eos), without and with a LoRA adapter, and the latency of pushing 10
adapter versions while a generation runs. Random-weight model of Qwen2.5-0.5B's shape.

On the CPU (the default): the transformers engine and vLLM's CPU build, each with adapters merged into the weights
(`rollout.sync: merged`) and decoded as LoRA adapters (float32, the CPU default; vLLM merged also in bfloat16),
each in this process with every core, on the tiny default model and on SmolLM2-135M-Instruct: same chat-formatted prompts, G=8, a fixed
completion length (ignore_eos), sampler log-probs on, with the base weights and then with a LoRA adapter pushed
(as in training). This is what `rollout.engine: auto` is decided by.

    python bench/rollout.py            # CPU: both engines, both shapes -> bench/results/rollout-cpu.json
    python bench/rollout.py --gpu --out results/
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import sys
import time

sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import torch  # noqa: E402 - bench/learner.py would shadow the `learner` package otherwise

from actors.records import SamplingConfig  # noqa: E402
from cluster.modelzoo import build_model  # noqa: E402

ENGINE = dict(gpu_memory_utilization=0.3, max_lora_rank=16, max_loras=2, max_model_len=1024, max_num_seqs=512,
              enable_prefix_caching=True, async_scheduling=True, dtype="bfloat16", seed=0)


def make_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"Problem {i}: Tom has {rng.randint(2, 999)} apples and buys {rng.randint(2, 99)} more at "
            f"{rng.randint(1, 20)} dollars each. How much does he spend, and how many apples does he have?"
            for i in range(n)]


def random_adapter(model_dir: str, version: int, seed: int):
    """A non-zero LoRA adapter (rank 16, attention + MLP) for the model, as the learner exports it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from learner.adapter import export_adapter
    from learner.policy import DEFAULT_TARGETS

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=list(DEFAULT_TARGETS), init_lora_weights=False)
    return export_adapter(get_peft_model(base, config), version)


def count_tokens(rows) -> int:
    return sum(len(c.token_ids) for row in rows for c in row)


def bench_raw_vllm(model_dir: str, prompts: list[str], sampling: SamplingConfig, n: int, adapter_path: str) -> dict:
    """The floor: vllm.LLM.generate called directly, with the same engine and sampling settings."""
    import vllm
    from vllm.lora.request import LoRARequest

    from actors.engine import encode_prompts

    llm = vllm.LLM(model=model_dir, enable_lora=True, **ENGINE)
    params = vllm.SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_tokens, ignore_eos=True, detokenize=False,
                                 logprobs=0 if sampling.logprobs else None, flat_logprobs=True)
    inputs = [{"prompt_token_ids": ids} for ids in encode_prompts(llm.get_tokenizer(), prompts)]
    out = {}
    llm.generate(inputs[:8], params, use_tqdm=False)
    for name, lora in (("no_adapter", None), ("adapter", LoRARequest("bench", 1, adapter_path))):
        if lora is not None:
            llm.generate(inputs[:8], params, use_tqdm=False, lora_request=lora)
        start = time.perf_counter()
        results = llm.generate(inputs, params, use_tqdm=False, lora_request=lora)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.token_ids) for r in results for o in r.outputs)
        out[name] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}
    del llm
    return out


def bench_worker(model_dir: str, prompts: list[str], sampling: SamplingConfig, n: int, count: int = 1) -> dict:
    """`count` RolloutWorkers (vLLM engine) in Ray actors sharing the GPU, timed from the driver."""
    import ray

    from actors.worker import create_rollout_workers, generate_across, push_adapter

    env = {k: os.environ[k] for k in ("PYTHONPATH", "VLLM_USE_FLASHINFER_SAMPLER") if k in os.environ}
    ray.init(num_gpus=1, runtime_env={"env_vars": env}, include_dashboard=False)
    workers = []
    for i in range(count):  # one at a time: vLLM's memory profiling must not see the other engine starting
        workers += create_rollout_workers(1, engine="vllm", num_gpus=round(0.9 / count, 2), model=model_dir,
                                          run_name=f"bench{i}", name_prefix=f"rollout{i}", **ENGINE)
        ray.get(workers[-1].adapter_version.remote())
    worker = workers[0]
    out: dict = {"workers": count}
    generate_across(workers, prompts[:8], n, sampling)

    def timed(name: str) -> list:
        start = time.perf_counter()
        rows = generate_across(workers, prompts, n, sampling)
        seconds = time.perf_counter() - start
        out[name] = {"tokens": count_tokens(rows), "seconds": seconds, "tokens_per_s": count_tokens(rows) / seconds,
                     "versions": sorted({c.policy_version for row in rows for c in row})}
        return rows

    base_rows = timed("no_adapter")
    adapters = [random_adapter(model_dir, version, seed=version) for version in (1, 2)]
    push_adapter(workers, adapters[0])
    generate_across(workers, prompts[:8 * count], n, sampling)
    adapter_rows = timed("adapter")

    greedy = SamplingConfig(temperature=0.0, max_tokens=32, ignore_eos=True, logprobs=False)
    with_adapter = [c.token_ids for row in generate_across([worker], prompts[:4], 1, greedy) for c in row]
    push_adapter([worker], _zeroed(adapters[1], version=3))
    with_zero = [c.token_ids for row in generate_across([worker], prompts[:4], 1, greedy) for c in row]
    out["adapter_changes_outputs"] = with_adapter != with_zero

    running = worker.generate.remote(prompts, n, sampling)
    swaps = []
    for version in range(4, 14):
        weights = adapters[version % 2]
        weights.version = version
        start = time.perf_counter()
        push_adapter([worker], weights)
        swaps.append(time.perf_counter() - start)
    during = ray.get(running)
    first_after = time.perf_counter()
    after = generate_across([worker], prompts[:1], 1, greedy)
    out["swap"] = {
        "push_seconds": swaps, "push_mean_ms": 1000 * sum(swaps) / len(swaps), "push_max_ms": 1000 * max(swaps),
        "adapter_mb": adapters[0].nbytes() / 2**20,
        "versions_in_running_call": sorted({c.policy_version for row in during for c in row}),
        "version_after": after[0][0].policy_version,
        "first_call_after_swap_ms": 1000 * (time.perf_counter() - first_after),
        "running_call_tokens": count_tokens(during),
    }
    out["stats"] = ray.get(worker.stats.remote())
    out["sample_counts_ok"] = all(len(row) == n for row in base_rows + adapter_rows)
    ray.shutdown()
    return out


def bench_cpu_engine(kind: str, model_dir: str, prompts: list[str], n: int, max_tokens: int, **engine_kwargs) -> dict:
    """One engine on the CPU: load time, then tokens/s of two timed `generate` calls after a warm-up, first with
    the base weights (version 0), then with a random LoRA adapter pushed (version 1), as training decodes."""
    from actors.engine import make_engine

    sampling = SamplingConfig(temperature=1.0, max_tokens=max_tokens, ignore_eos=True, logprobs=True, seed=0)
    start = time.perf_counter()
    engine = make_engine(kind, model=model_dir, **engine_kwargs)
    out: dict = {"engine": kind, "load_seconds": round(time.perf_counter() - start, 1), **engine_kwargs}
    for label in ("base", "adapter"):
        if label == "adapter":
            engine.load_adapter(random_adapter(model_dir, 1, seed=1))
        engine.generate(prompts[:2], 2, dataclasses.replace(sampling, max_tokens=8))
        rates = []
        for _ in range(2):
            start = time.perf_counter()
            rows = engine.generate(prompts, n, sampling)
            rates.append(count_tokens(rows) / (time.perf_counter() - start))
        out[label] = {"tokens_per_s": [round(r, 1) for r in rates], "best_tokens_per_s": round(max(rates), 1),
                      "tokens_per_call": count_tokens(rows), "versions": sorted({c.policy_version for row in rows for c in row})}
    engine.close()
    return out


def bench_workload(kind: str, preset: str, n: int, problems: int, **engine_kwargs) -> dict:
    """Training-shaped decoding: a preset's chat prompts on generated problems of its first stage, its completion
    budget, stopping at EOS, an adapter pushed; tokens/s over one timed call after a warm-up."""
    from actors.engine import make_engine
    from cluster.config import load_config
    from cluster.services import resolve_model
    from synthesis.generators import generate_problems

    cfg = load_config(preset)
    stage = cfg.stages[0]
    model_dir = resolve_model(cfg.model.name)
    prompts = [cfg.prompt.format(question=p.question)
               for p in generate_problems(problems, stage.difficulty, topics=stage.topics or None, seed=5, split="train")]
    sampling = SamplingConfig(temperature=cfg.rollout.temperature, max_tokens=cfg.rollout.max_tokens, logprobs=True, seed=0)
    engine = make_engine(kind, model=model_dir, system_prompt=cfg.system_prompt, sync="merged", **engine_kwargs)
    engine.load_adapter(random_adapter(model_dir, 1, seed=1))
    engine.generate(prompts[:2], 2, dataclasses.replace(sampling, max_tokens=8))
    start = time.perf_counter()
    rows = engine.generate(prompts, n, sampling)
    seconds = time.perf_counter() - start
    engine.close()
    return {"engine": kind, "preset": preset, "prompts": problems, "max_tokens": cfg.rollout.max_tokens,
            "tokens": count_tokens(rows), "seconds": round(seconds, 1), "tokens_per_s": round(count_tokens(rows) / seconds, 1),
            "mean_completion_tokens": round(count_tokens(rows) / (problems * n), 1)}


WORKLOADS = {"tiny": 16, "smollm2-135m": 8}


CPU_SHAPES = {"tiny": dict(prompts=16, max_tokens=128), "smollm2-135m-instruct": dict(prompts=8, max_tokens=64)}


def bench_cpu(out_dir: pathlib.Path, n: int, dtypes: list[str], parts: list[str]) -> dict:
    """Both engines on both CPU shapes (see the module docstring); `parts` "race" (fixed lengths) and "workload"
    (training-shaped calls); a part not run keeps its figures from the last run's JSON."""
    import platform

    from cluster.services import resolve_model

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    path = out_dir / "rollout-cpu.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {}
    results.update({"device": platform.processor() or platform.machine(), "cpus": len(os.sched_getaffinity(0)),
                    "torch": torch.__version__, "n": n, "date": time.strftime("%Y-%m-%d")})
    if "workload" in parts:
        results["workload"] = []
        for preset, problems in WORKLOADS.items():
            for kind in ("hf", "vllm"):
                results["workload"].append(bench_workload(kind, preset, n, problems))
                print(json.dumps(results["workload"][-1]), flush=True)
        rate = {(r["preset"], r["engine"]): r["tokens_per_s"] for r in results["workload"]}
        results["vllm_faster_on_every_workload"] = all(rate[(p, "vllm")] > rate[(p, "hf")] for p in WORKLOADS)
    if "race" in parts:
        results["shapes"] = {}
    for shape, size in CPU_SHAPES.items() if "race" in parts else ():
        model_dir = resolve_model(shape)
        prompts = make_prompts(size["prompts"])
        rows = []
        for sync in ("merged", "adapter"):
            rows.append(bench_cpu_engine("hf", model_dir, prompts, n, size["max_tokens"], max_batch_size=256, sync=sync))
            print(json.dumps({shape: rows[-1]}), flush=True)
        for dtype, sync in [(dtypes[0], "adapter")] + [(dtype, "merged") for dtype in dtypes]:
            rows.append(bench_cpu_engine("vllm", model_dir, prompts, n, size["max_tokens"], dtype=dtype, sync=sync))
            print(json.dumps({shape: rows[-1]}), flush=True)
        results["shapes"][shape] = {**size, "runs": rows}
        (out_dir / "rollout-cpu.json").write_text(json.dumps(results, indent=2))

    def fp32(runs: list, engine: str, sync: str) -> float:
        return next(r["adapter"]["best_tokens_per_s"] for r in runs if (r["engine"], r["sync"], r.get("dtype", "float32"))
                    == (engine, sync, "float32"))

    if "race" in parts:
        results["vllm_merged_faster_than_hf_merged_on_every_shape"] = all(
            fp32(v["runs"], "vllm", "merged") > fp32(v["runs"], "hf", "merged") for v in results["shapes"].values())
    (out_dir / "rollout-cpu.json").write_text(json.dumps(results, indent=2))
    from bench.tiny_default import machine_line, write_results_md

    write_results_md(out_dir / "rollout-cpu.md", cpu_markdown(results, machine_line()),
                     title="Rollout throughput on the CPU: transformers against vLLM's CPU build")
    return results


def cpu_markdown(results: dict, machine: str) -> str:
    """The CPU race as a table: tokens/s (best of two calls) with the base weights and with an adapter pushed."""
    lines = ["| shape | engine | sync | dtype | load s | tokens/s, base | tokens/s, adapter pushed |",
             "|---|---|---|---|---|---|---|"]
    for shape, v in results["shapes"].items():
        for r in v["runs"]:
            lines.append(f"| {shape} | {r['engine']} | {r['sync']} | {r.get('dtype', 'float32')} | {r['load_seconds']} | "
                         f"{r['base']['best_tokens_per_s']:,.0f} | {r['adapter']['best_tokens_per_s']:,.0f} |")
    if results.get("workload"):
        lines += ["", "Training-shaped calls (a preset's prompts on its first stage's problems, its completion budget, "
                  f"stopping at EOS, G={results['n']}, adapter merged):", "",
                  "| preset | engine | prompts | max tokens | mean completion tokens | seconds | tokens/s |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['preset']} | {r['engine']} | {r['prompts']} | {r['max_tokens']} | {r['mean_completion_tokens']} | "
                  f"{r['seconds']} | {r['tokens_per_s']:,.0f} |" for r in results["workload"]]
        lines += ["", f"vLLM faster on every training-shaped call: {results['vllm_faster_on_every_workload']}."]
    sizes = "; ".join(f"{s}: {v['prompts']} prompts × G={results['n']} × {v['max_tokens']} tokens"
                      for s, v in results["shapes"].items())
    lines += ["", f"Produced by `python bench/rollout.py` on {machine}, {results['date']}; {sizes} (ignore_eos, sampler "
              "log-probs on, temperature 1), best of two timed calls after a warm-up, every core to the one engine. "
              "vLLM merged faster than transformers merged on every shape (float32): "
              f"{results['vllm_merged_faster_than_hf_merged_on_every_shape']}."]
    return "\n".join(lines)


def _zeroed(weights, version: int):
    from learner.adapter import AdapterWeights

    return AdapterWeights(version, weights.config, {k: v * 0 for k, v in weights.tensors.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="the GPU benchmark (vLLM raw vs RolloutWorker in Ray)")
    parser.add_argument("--parts", nargs="+", default=["race", "workload"], choices=("race", "workload"),
                        help="CPU: fixed-length races and/or training-shaped calls")
    parser.add_argument("--cpu-dtypes", nargs="+", default=["float32", "bfloat16"],
                        help="vLLM dtypes on the CPU (the first is the engine's CPU default)")
    parser.add_argument("--shape", default="qwen2.5-0.5b")
    parser.add_argument("--model-dir", default="/tmp/rlvr-bench-models")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--logprobs", action="store_true", help="return sampler logprobs (costs throughput)")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="RolloutWorkers sharing the one GPU")
    parser.add_argument("--gpu-memory", type=float, default=0.3, help="gpu_memory_utilization per engine")
    parser.add_argument("--max-num-seqs", type=int, default=512)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.gpu:
        bench_cpu(out_dir, args.n, args.cpu_dtypes, args.parts)
        return
    ENGINE.update(gpu_memory_utilization=args.gpu_memory, max_num_seqs=args.max_num_seqs)
    model_dir = str(build_model(pathlib.Path(args.model_dir) / args.shape, args.shape))
    prompts = make_prompts(args.prompts)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens, ignore_eos=True,
                              logprobs=args.logprobs)
    results: dict = {"device": torch.cuda.get_device_name(), "prompts": args.prompts, "n": args.n,
                     "max_tokens": args.max_tokens, "logprobs": args.logprobs, "engine": ENGINE}
    if not args.skip_raw:
        adapter_path = random_adapter(model_dir, 1, seed=1).save(pathlib.Path("/dev/shm/rlvr-raw-bench/v1"))
        results["raw_vllm"] = bench_raw_vllm(model_dir, prompts, sampling, args.n, str(adapter_path))
        print(json.dumps(results["raw_vllm"]), flush=True)
        (out_dir / "rollout.json").write_text(json.dumps(results, indent=2))
    results["worker"] = bench_worker(model_dir, prompts, sampling, args.n, args.workers)
    if "raw_vllm" in results:
        results["overhead"] = {k: 1 - results["worker"][k]["tokens_per_s"] / results["raw_vllm"][k]["tokens_per_s"]
                               for k in ("no_adapter", "adapter")}
    print(json.dumps({k: v for k, v in results.items() if k != "engine"}, indent=1), flush=True)
    (out_dir / f"rollout-w{args.workers}{'-logprobs' if args.logprobs else ''}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
