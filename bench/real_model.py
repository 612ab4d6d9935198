"""Learning on a real pretrained model: SmolLM2-135M-Instruct before and after GRPO, on problems never trained on.

    python bench/real_model.py --seeds 0 1 2 [--grpo-minutes 25] [--out bench/results]
    python bench/real_model.py --seeds 0 --set sft.enabled=true --name real_model-sft   # SFT on, for comparison

Per seed: `rlvr train --preset smollm2-135m --set seed=S` in its own process (GRPO for `--grpo-minutes`, its
rollout log kept in the work folder), then, in this process on one engine (vLLM's CPU build when installed, else
transformers), the base model and then the run's final adapter answer the same held-out problems (the `heldout`
side of the question space, which no training data is drawn from): mental_math at levels 1 and 2
(`--eval-problems` each) and word problems (level 1) beside. Greedy accuracy with 95 % bootstrap intervals, the
paired gain per problem, mean response length, the share of unparsable / not_final / hedged finals, and pass@k
(k samples at temperature 1 on the first `--pass-problems` of each set). It writes NAME.json and the table into
NAME.md between its generated markers, with 50 credited completions after training for a reader to check.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from actors.records import SamplingConfig  # noqa: E402
from bench.tiny_default import machine_line, write_results_md  # noqa: E402
from cluster.config import TrainConfig, load_config  # noqa: E402
from cluster.evaluate import bootstrap_interval, paired_gain, pass_at_k  # noqa: E402
from synthesis.generators import generate_problems  # noqa: E402
from synthesis.problem import Problem  # noqa: E402

PRESET = "smollm2-135m"
SETS = {"mental_math d1": ("mental_math", 1), "mental_math d2": ("mental_math", 2), "word_problems d1": ("word_problems", 1)}
TARGET_SETS = ("mental_math d1", "mental_math d2")
LOOKED_AT = ("unparsable", "not_final", "hedged")


@dataclasses.dataclass
class Judged:
    """One completion as the verifier judged it."""

    text: str
    tokens: int
    verdict: str
    extracted: str | None


def heldout_sets(seed: int, per_level: int, word: int) -> dict[str, list[Problem]]:
    """The evaluation problems: from the held-out side only, drawn with a seed no run uses for training."""
    sizes = {"mental_math d1": per_level, "mental_math d2": per_level, "word_problems d1": word}
    return {name: generate_problems(sizes[name], level, topics={topic: 1.0}, seed=70_000 + seed, split="heldout")
            for name, (topic, level) in SETS.items() if sizes[name] > 0}


def judge(engine, cfg: TrainConfig, problems: list[Problem], k: int, temperature: float) -> list[list[Judged]]:
    """k completions per problem, scored by the verifier under the run's answer policy."""
    from verifier_pool.reward import score
    from verifier_pool.verdict import Verdict

    sampling = SamplingConfig(temperature=temperature, max_tokens=cfg.rollout.max_tokens, logprobs=False, seed=cfg.seed)
    rows = engine.generate([cfg.prompt.format(question=p.question) for p in problems], k, sampling)
    out = []
    for problem, row in zip(problems, rows):
        judged = []
        for c in row:
            reward = score(c.text, problem.question, problem.answer, policy=cfg.verifier.answer_policy, form=problem.form)
            judged.append(Judged(c.text, len(c.token_ids), Verdict(reward.verdict).value, reward.extracted))
        out.append(judged)
    return out


def set_figures(greedy: list[list[Judged]], sampled: list[list[Judged]]) -> dict:
    """Accuracy [95 % CI], per-problem correctness, mean response tokens, verdict shares, pass@k."""
    correct = [float(row[0].verdict == "correct") for row in greedy]
    low, high = bootstrap_interval(correct)
    verdicts = [row[0].verdict for row in greedy]
    k = len(sampled[0]) if sampled else 0
    passes = [pass_at_k(k, sum(j.verdict == "correct" for j in row), k) for row in sampled]
    return {"problems": len(greedy), "accuracy": sum(correct) / len(correct), "ci": [low, high], "per_problem": correct,
            "mean_tokens": sum(row[0].tokens for row in greedy) / len(greedy),
            "shares": {v: verdicts.count(v) / len(verdicts) for v in LOOKED_AT},
            "pass@k": sum(passes) / len(passes) if passes else None, "k": k, "pass_problems": len(sampled)}


def evaluate_phase(engine, cfg: TrainConfig, sets: dict[str, list[Problem]], k: int, pass_problems: int) -> tuple[dict, dict]:
    """Every set greedy, then k samples on its first `pass_problems`; the figures and the greedy completions."""
    figures, completions = {}, {}
    for name, problems in sets.items():
        greedy = judge(engine, cfg, problems, 1, 0.0)
        sampled = judge(engine, cfg, problems[:pass_problems], k, 1.0) if k > 1 and pass_problems else []
        figures[name], completions[name] = set_figures(greedy, sampled), greedy
        print(f"  {name}: {figures[name]['accuracy']:.3f} ({len(problems)} problems)", flush=True)
    return figures, completions


def train_seed(seed: int, work: pathlib.Path, minutes: float, overrides: list[str], name: str) -> tuple[pathlib.Path, float]:
    """`rlvr train --preset smollm2-135m` for one seed in its own process; its run directory and minutes."""
    run_dir = work / f"{name}-seed{seed}"
    cmd = [sys.executable, "-m", "cluster.cli", "train", "--preset", PRESET, "--set", f"seed={seed}",
           "--set", f"run_dir={run_dir}", "--set", f"tracking_uri=sqlite:///{work / 'mlflow.db'}",
           "--set", f"grpo_minutes={minutes}", "--set", "eval_problems=16"]
    for assignment in overrides:
        cmd += ["--set", assignment]
    start = time.perf_counter()
    with (work / f"{name}-seed{seed}.log").open("w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, RAY_DEDUP_LOGS="0"), stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"seed {seed}: rlvr train exited {proc.returncode}; see {work / f'{name}-seed{seed}.log'}")
    return run_dir, (time.perf_counter() - start) / 60


def run_seed(seed: int, args: argparse.Namespace, work: pathlib.Path) -> dict:
    """Train one seed, then evaluate the base model and the trained adapter on the same held-out problems."""
    from actors.engine import make_engine
    from cluster.services import resolve_model
    from learner.adapter import AdapterWeights

    cfg = load_config(PRESET, overrides=[f"seed={seed}", *args.overrides])
    run_dir, train_minutes = train_seed(seed, work, args.grpo_minutes, args.overrides, args.name)
    state = json.loads((run_dir / "state.json").read_text())
    start = time.perf_counter()
    sets = heldout_sets(seed, args.eval_problems, args.word_problems)
    engine = make_engine(cfg.rollout.engine, model=resolve_model(cfg.model.name), system_prompt=cfg.system_prompt,
                         **({"max_lora_rank": cfg.model.lora_rank} if cfg.rollout.engine == "vllm" else {}))
    print(f"seed {seed}: before", flush=True)
    before, _ = evaluate_phase(engine, cfg, sets, args.pass_k, args.pass_problems)
    engine.load_adapter(AdapterWeights.load(run_dir / "checkpoint" / "adapter", version=1))
    print(f"seed {seed}: after {state.get('step')} steps", flush=True)
    after, completions = evaluate_phase(engine, cfg, sets, args.pass_k, args.pass_problems)
    engine.close()
    gains = {name: paired_gain(after[name]["per_problem"], before[name]["per_problem"]) for name in sets}
    gains["mental_math mean"] = paired_gain([x for n in TARGET_SETS for x in after[n]["per_problem"]],
                                            [x for n in TARGET_SETS for x in before[n]["per_problem"]])
    credited = [{"set": n, "question": p.question, "gold": p.answer, "completion": row[0].text}
                for n in TARGET_SETS for p, row in zip(sets[n], completions[n]) if row[0].verdict == "correct"]
    return {"seed": seed, "steps": state.get("step"), "train_minutes": train_minutes,
            "eval_minutes": (time.perf_counter() - start) / 60, "engine": cfg.rollout.engine,
            "before": before, "after": after, "gains": gains, "credited_after": credited[:: max(1, len(credited) // 50)][:50],
            "rollout_log": str(run_dir / "rollouts.msgpack")}


def markdown(results: list[dict], command: str, machine: str) -> str:
    names = list(results[0]["before"]) if results else []
    head = "| seed | steps | minutes (train + eval) | " + " | ".join(f"{n}: before → after [95% CI], gain" for n in names) \
        + " | mental_math mean gain [95% CI] |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        cells = []
        for n in names:
            b, a, g = r["before"][n], r["after"][n], r["gains"][n]
            cells.append(f"{b['accuracy']:.3f} → {a['accuracy']:.3f} [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}], "
                         f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]")
        g = r["gains"]["mental_math mean"]
        lines.append(f"| {r['seed']} | {r['steps']} | {r['train_minutes']:.1f} + {r['eval_minutes']:.1f} | "
                     + " | ".join(cells) + f" | {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] |")
    lines += ["", "| seed | set | mean tokens before → after | unparsable / not_final / hedged before → after | pass@k before → after |",
              "|---|---|---|---|---|"]
    for r in results:
        for n in names:
            b, a = r["before"][n], r["after"][n]
            shares = " / ".join(f"{b['shares'][v]:.2f}→{a['shares'][v]:.2f}" for v in LOOKED_AT)
            passes = f"{b['pass@k']:.3f} → {a['pass@k']:.3f} (k={a['k']}, {a['pass_problems']} problems)" if a["k"] else "—"
            lines.append(f"| {r['seed']} | {n} | {b['mean_tokens']:.0f} → {a['mean_tokens']:.0f} | {shares} | {passes} |")
    n = results[0]["before"]["mental_math d1"]["problems"] if results else 0
    lines += ["", f"Produced by `{command}` on {machine}, {time.strftime('%Y-%m-%d')}. Greedy accuracy on {n} held-out "
              "problems per mental_math level (facts on the held-out side of the question space: never in the run's "
              "training data), scored strictly by the verifier; 95 % percentile bootstrap intervals; the gain is paired "
              "per problem. Engine: " + ", ".join(sorted({r["engine"] for r in results})) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--grpo-minutes", type=float, default=25.0, help="GRPO minutes per seed (both stages)")
    parser.add_argument("--eval-problems", type=int, default=300, help="held-out problems per mental_math level")
    parser.add_argument("--word-problems", type=int, default=100)
    parser.add_argument("--pass-k", type=int, default=4)
    parser.add_argument("--pass-problems", type=int, default=50, help="problems per set sampled k times for pass@k")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="real_model")
    parser.add_argument("--work", default=None, help="where the runs go (default: a new folder under /tmp)")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    work = pathlib.Path(args.work or f"/tmp/rlvr-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    work.mkdir(parents=True, exist_ok=True)
    out = pathlib.Path(args.out)
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, args, work))
        (out / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    command = "python bench/real_model.py " + " ".join(sys.argv[1:])
    write_results_md(out / f"{args.name}.md", markdown(results, command, machine_line()),
                     title="SmolLM2-135M-Instruct before and after GRPO")


if __name__ == "__main__":
    main()
