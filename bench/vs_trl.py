"""A race with TRL, side by side, in one run: the same model, prompts, G, completion length, LoRA rank, optimizer
(AdamW, same LR, β = 0) and SymPy reward through TRL's `GRPOTrainer` and through `rlvr train`; seconds per
step and completions/s for each, and their ratio. Steps after the first (warm-up) count.

    python bench/vs_trl.py                      # CPU: the cached tiny model, 32 prompts × 8 × ≤ 40 tokens
    python bench/vs_trl.py --gpu                # GPU: random 0.5B shape, 64 × 8 × 512, TRL with vLLM colocated

TRL gets our reward in-process (`verifier_pool.reward.score`, the same 8 signals and SymPy verdict); `rlvr train`
scores through its verifier pool. Writes bench/results/vs_trl[-gpu].json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != ROOT / "bench"]


def problems_for(n: int, seed: int = 0):
    from synthesis.generators import generate_problems

    return generate_problems(n, 1, topics={"mental_math": 1}, seed=seed, split="train")


def run_trl(model: str, args, problems) -> dict:
    """TRL's GRPOTrainer: one optimizer step per `prompts` problems × G completions (generated once per step)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from learner.policy import DEFAULT_TARGETS
    from verifier_pool.reward import score

    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p.question}], "question": p.question,
                                  "answer": p.answer} for p in problems])

    def sympy_reward(prompts, completions, question, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [score(t, q, a).total for t, q, a in zip(texts, question, answer)]

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    micro = min(args.prompts * args.group, args.trl_micro)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-"), num_generations=args.group, max_completion_length=args.max_tokens,
        per_device_train_batch_size=micro, gradient_accumulation_steps=args.prompts * args.group // micro,
        learning_rate=args.lr, beta=0.0, max_steps=args.steps, logging_steps=1, save_strategy="no", report_to=[],
        use_vllm=args.gpu, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3, bf16=args.gpu, use_cpu=not args.gpu,
        gradient_checkpointing=args.gpu, temperature=1.0, seed=0, disable_tqdm=True,
        **({"vllm_importance_sampling_correction": True} if args.gpu else {}),
    )
    lora = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, target_modules=list(DEFAULT_TARGETS),
                      task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=sympy_reward, args=config, train_dataset=dataset,
                          peft_config=lora, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    return _summary("trl", [start] + stamps, args)


def run_ours(model: str, args, problems_n: int) -> dict:
    """`rlvr train` on one stage of the same generated problems, no SFT, evaluation kept out of the timing."""
    import mlflow

    from cluster.config import load_config
    from cluster.loop import train

    work = pathlib.Path(tempfile.mkdtemp(prefix="rlvr-race-"))
    tracking = f"file://{work / 'mlruns'}" if args.gpu else f"sqlite:///{work / 'mlflow.db'}"  # mlflow-skinny there
    overrides = [
        f"model.name={model}", f"run_dir={work / 'run'}", f"tracking_uri={tracking}",
        f"model.lora_rank={args.lora_rank}", f"model.lora_alpha={2 * args.lora_rank}", f"batch_size={args.prompts}",
        f"group_size={args.group}", f"rollout.max_tokens={args.max_tokens}", f"learner.lr={args.lr}", "learner.beta=0.0",
        "sft.enabled=false", "eval_problems=8", "eval_samples=0", "checkpoint_every=1000", f"max_steps={args.steps}",
        "curriculum.mode=fixed", "curriculum.resample_budget=0",  # the same prompts and groups as TRL, no resampling
        f"stages=[{{name: race, difficulty: 1, topics: {{mental_math: 1}}, epochs: 1, problems: {problems_n}}}]",
    ] + (["model.dtype=bfloat16", "rollout.workers=1", "rollout.gpus_per_worker=0.45", "learner.gpus=0.45",
          "rollout.gpu_memory_utilization=0.3", "learner.micro_batch_size=32", "rollout.max_num_seqs=512"]
         if args.gpu else []) + args.set
    cfg = load_config("qwen2.5-0.5b" if args.gpu else "tiny", overrides=overrides)
    result = train(cfg, echo=lambda line: print(line, flush=True) if "step" in line else None)
    client = mlflow.MlflowClient(tracking)
    per_step = {key: [m.value for m in sorted(client.get_metric_history(result["run_id"], key), key=lambda m: m.step)]
                for key in ("step_seconds", "rollout_seconds", "score_seconds", "learn_seconds", "gpu_idle_share")}
    out = _summary("rlvr", None, args, per_step["step_seconds"])
    out["phases_median"] = {k: statistics.median(v[1:] or v) for k, v in per_step.items() if v}
    out["async_steps"] = cfg.async_steps
    return out


def _summary(name: str, stamps: list[float] | None, args, seconds: list[float] | None = None) -> dict:
    if seconds is None:
        seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    timed = seconds[1:] or seconds
    per_step = statistics.median(timed)
    return {"name": name, "steps": len(seconds), "step_seconds": seconds, "median_step_seconds": per_step,
            "completions_per_s": args.prompts * args.group / per_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--trl-micro", type=int, default=256, help="TRL's per-device batch (completions)")
    parser.add_argument("--only", choices=("trl", "rlvr"))
    parser.add_argument("--set", action="append", default=[], help="extra `rlvr train --set` overrides")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    parser.add_argument("--name", help="output file name (default vs_trl.json, vs_trl-gpu.json on --gpu)")
    args = parser.parse_args()
    args.prompts = args.prompts or (64 if args.gpu else 32)
    args.max_tokens = args.max_tokens or (512 if args.gpu else 40)
    if args.gpu:
        from cluster.modelzoo import build_model

        model = str(build_model(pathlib.Path("/tmp/rlvr-bench-models/qwen2.5-0.5b"), "qwen2.5-0.5b"))
    else:
        from cluster.modelzoo import tiny_model_path

        model = str(tiny_model_path())
    problems = problems_for(args.prompts * args.steps)
    results = {"device": _device(), "model": model, "prompts": args.prompts, "group": args.group,
               "max_tokens": args.max_tokens, "lora_rank": args.lora_rank, "lr": args.lr, "date": time.strftime("%Y-%m-%d")}
    if args.only != "rlvr":
        results["trl"] = run_trl(model, args, problems)
        print(json.dumps(results["trl"]), flush=True)
    if args.only != "trl":
        results["rlvr"] = run_ours(model, args, len(problems))
        print(json.dumps(results["rlvr"]), flush=True)
    if "trl" in results and "rlvr" in results:
        results["speedup_vs_trl"] = results["trl"]["median_step_seconds"] / results["rlvr"]["median_step_seconds"]
        print(f"rlvr {results['rlvr']['median_step_seconds']:.2f} s/step vs TRL {results['trl']['median_step_seconds']:.2f}"
              f" s/step: {results['speedup_vs_trl']:.2f}x", flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / (args.name or f"vs_trl{'-gpu' if args.gpu else ''}.json")).write_text(json.dumps(results, indent=2))


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores)"


if __name__ == "__main__":
    main()
