"""A race with TRL, side by side, in one run: the same model, prompts, G, completion length, LoRA rank, optimizer
(AdamW, same LR, β = 0) and SymPy reward through TRL's `GRPOTrainer` and through `rlvr train`; seconds per
step and completions/s for each, and their ratio. Steps after the first (warm-up) count.

    python bench/vs_trl.py                      # CPU: the cached tiny model, 32 prompts × 8 × ≤ 40 tokens
    python bench/vs_trl.py --gpu                # GPU: random 0.5B shape, 64 × 8 × 512, TRL with vLLM colocated
    python bench/vs_trl.py --workload gsm8k --packing flat,tree --name vs_trl-gsm8k.json
                                                # CPU: random `small` shape, 8 word problems behind a long
                                                # instruction (prompts ~200 tokens) × 8 × ≤ 300 tokens

TRL gets our reward in-process (`verifier_pool.reward.score`, the same 8 signals and SymPy verdict); `rlvr train`
scores through its verifier pool. The learner side of a step is ours `learn_seconds`; TRL's is its step less the
time in `_generate_and_score_completions`. On CPU, TRL's best packing is `GRPOTrainer`'s padded batches: its
prefix-trie rows (`trl/experimental/async_grpo/packing.py`) belong to the async trainer, which needs a vLLM server.
Writes bench/results/vs_trl[-gpu].json.
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


INSTRUCTION = ("Read the word problem, find each number and what it counts, and write one step per line: what "
               "is known, what is asked, and the value each step gives. End with the final answer as a number on "
               "its own line.\n\n")
WORKLOADS = {"tiny": dict(topic="mental_math", prompt="{question}"),
             "gsm8k": dict(topic="word_problems", prompt=INSTRUCTION + "{question}", prompts=8, max_tokens=300,
                           shape="small")}


def problems_for(n: int, topic: str, seed: int = 0):
    from synthesis.generators import generate_problems

    return generate_problems(n, 1, topics={topic: 1}, seed=seed, split="train")


def run_trl(model: str, args, problems) -> dict:
    """TRL's GRPOTrainer: one optimizer step per `prompts` problems × G completions (generated once per step)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from learner.policy import DEFAULT_TARGETS
    from verifier_pool.reward import score

    template = WORKLOADS[args.workload]["prompt"]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": template.format(question=p.question)}],
                                  "question": p.question, "answer": p.answer} for p in problems])

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
        gradient_checkpointing=args.gpu and "model.gradient_checkpointing=false" not in args.set,  # as ours
        temperature=1.0, seed=0, disable_tqdm=True,
        **({"vllm_importance_sampling_correction": True} if args.gpu else {}),
    )
    lora = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, target_modules=list(DEFAULT_TARGETS),
                      task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=sympy_reward, args=config, train_dataset=dataset,
                          peft_config=lora, callbacks=[Clock()])
    generating: list[float] = []
    generate_and_score = trainer._generate_and_score_completions

    def timed_generate_and_score(*a, **kw):
        begin = time.perf_counter()
        out = generate_and_score(*a, **kw)
        generating.append(time.perf_counter() - begin)
        return out

    trainer._generate_and_score_completions = timed_generate_and_score
    start = time.perf_counter()
    trainer.train()
    out = _summary("trl", [start] + stamps, args)
    if len(generating) == len(out["step_seconds"]):
        learn = [s - g for s, g in zip(out["step_seconds"], generating)]
        out["phases_median"] = {"generate_and_score_seconds": statistics.median(generating[1:] or generating),
                                "learn_seconds": statistics.median(learn[1:] or learn)}
    return out


def run_ours(model: str, args, problems_n: int, packing: str) -> dict:
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
        f"stages=[{{name: race, difficulty: 1, topics: {{{WORKLOADS[args.workload]['topic']}: 1}}, epochs: 1, "
        f"problems: {problems_n}}}]", f"learner.packing={packing}",
    ] + (["model.dtype=bfloat16", "rollout.workers=1", "rollout.gpus_per_worker=0.45", "learner.gpus=0.45",
          "rollout.gpu_memory_utilization=0.3", "learner.micro_batch_size=32", "rollout.max_num_seqs=512"]
         if args.gpu else []) + args.set
    cfg = load_config("qwen2.5-0.5b" if args.gpu else "tiny", overrides=overrides)
    cfg.prompt = WORKLOADS[args.workload]["prompt"]
    result = train(cfg, echo=lambda line: print(line, flush=True) if "step" in line else None)
    client = mlflow.MlflowClient(tracking)
    per_step = {key: [m.value for m in sorted(client.get_metric_history(result["run_id"], key), key=lambda m: m.step)]
                for key in ("step_seconds", "rollout_seconds", "score_seconds", "learn_seconds", "gpu_idle_share",
                            "learner/computed_share")}
    out = _summary(f"rlvr-{packing}", None, args, per_step["step_seconds"])
    out["packing"] = packing
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
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    parser.add_argument("--packing", default="flat", help="comma-separated learner.packing values, one rlvr run each")
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    args.prompts = args.prompts or workload.get("prompts", 64 if args.gpu else 32)
    args.max_tokens = args.max_tokens or workload.get("max_tokens", 512 if args.gpu else 40)
    model = race_model(args, workload)
    problems = problems_for(args.prompts * args.steps, workload["topic"])
    results = {"device": _device(), "model": model, "workload": args.workload, "prompts": args.prompts,
               "group": args.group, "max_tokens": args.max_tokens, "lora_rank": args.lora_rank, "lr": args.lr,
               "prompt_tokens_mean": prompt_tokens_mean(model, workload["prompt"], problems),
               "date": time.strftime("%Y-%m-%d")}
    if args.only != "rlvr":
        results["trl"] = run_trl(model, args, problems)
        print(json.dumps(results["trl"]), flush=True)
    if args.only != "trl":
        for packing in args.packing.split(","):
            results[f"rlvr-{packing}"] = run_ours(model, args, len(problems), packing)
            print(json.dumps(results[f"rlvr-{packing}"]), flush=True)
    if "trl" in results:
        trl = results["trl"]
        for key in [k for k in results if k.startswith("rlvr-")]:
            ours = results[key]
            ours["speedup_vs_trl"] = trl["median_step_seconds"] / ours["median_step_seconds"]
            if "phases_median" in trl:
                ours["learner_speedup_vs_trl"] = (trl["phases_median"]["learn_seconds"]
                                                  / ours["phases_median"]["learn_seconds"])
            print(f"{key} {ours['median_step_seconds']:.2f} s/step vs TRL {trl['median_step_seconds']:.2f} s/step: "
                  f"{ours['speedup_vs_trl']:.2f}x (learner {ours.get('learner_speedup_vs_trl', float('nan')):.2f}x)",
                  flush=True)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / (args.name or f"vs_trl{'-gpu' if args.gpu else ''}.json")).write_text(json.dumps(results, indent=2))


def race_model(args, workload: dict) -> str:
    from cluster.modelzoo import build_model, tiny_model_path

    if args.gpu:
        return str(build_model(pathlib.Path("/tmp/rlvr-bench-models/qwen2.5-0.5b"), "qwen2.5-0.5b"))
    if "shape" in workload:
        return str(build_model(pathlib.Path("/tmp/rlvr-bench-models") / workload["shape"], workload["shape"]))
    return str(tiny_model_path())


def prompt_tokens_mean(model: str, template: str, problems) -> float:
    """Prompt tokens per problem as both sides tokenize them (the chat template around the filled prompt)."""
    from transformers import AutoTokenizer

    from actors.engine import encode_prompts

    prompts = encode_prompts(AutoTokenizer.from_pretrained(model), [template.format(question=p.question) for p in problems])
    return sum(map(len, prompts)) / len(prompts)


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores)"


if __name__ == "__main__":
    main()
