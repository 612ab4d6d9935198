"""Closed-loop (adaptive) vs open-loop (fixed) curriculum on the embedded default, same minutes, several seeds.

    python bench/curriculum.py [--seeds 0 1 2] [--minutes 2.4] [--out bench/results]
    python bench/curriculum.py --arms adaptive raft --name raft     # GRPO vs RAFT, same curriculum and minutes
    python bench/curriculum.py --arms adaptive reward --name advantage   # the seed's reward-normalised advantage

Each (arm, seed) runs `rlvr train --preset tiny --set seed=S` in its own process with the same GRPO wall budget
(`grpo_minutes`, split evenly over the stages; evaluation not counted), so the arms buy the same minutes of
sampling and learning:

- fixed: the preset's stages over their own generated problems (`curriculum.mode=fixed`);
- adaptive: difficulty steered per topic to a 0.5 pass rate, promotion, siblings of half-solved problems and
  dynamic sampling (`curriculum.mode=adaptive`, `curriculum.resample_budget=BATCH`, as in the preset);
- raft: the adaptive arm with `algo=raft` (fine-tuning on verified completions instead of GRPO updates);
- reward: the adaptive arm with `learner.advantage=reward` (seed 000's `(r − mean r)/(std r + ε)` on the weighted
  8-signal total instead of the correctness-led `grpo` estimator).

Reported per run: the share of trained groups whose correctness had no spread (and of all sampled groups),
the held-out greedy gain over SFT (mean over stages, paired 95 % bootstrap interval), steps and minutes.
Writes `NAME.json`, a plot `NAME.png` of the adaptive arm's difficulty over steps, and the table into `NAME.md`
(NAME: `--name`, default `curriculum`) between its `generated` markers, keeping the commentary around them. The
tiny model is built and pretrained once into a fresh cache directory shared by all runs.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.config import load_config  # noqa: E402
from cluster.report import gains_over  # noqa: E402


def _tiny_default():
    """bench/tiny_default.py as a module (bench/ is not a package, and its synthesis.py would shadow ours)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_default", ROOT / "bench" / "tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_seed = _tiny_default().run_seed



def arms(resample_budget: int, minutes: float) -> dict[str, tuple[str, ...]]:
    budget = (f"grpo_minutes={minutes}",)
    adaptive = budget + ("curriculum.mode=adaptive", f"curriculum.resample_budget={resample_budget}")
    return {"fixed": budget + ("curriculum.mode=fixed", "curriculum.resample_budget=0"), "adaptive": adaptive,
            "raft": adaptive + ("algo=raft",), "reward": adaptive + ("learner.advantage=reward",)}


def row(arm: str, result: dict, stages: list[str]) -> dict:
    gains = gains_over(result["evals"], stages)
    return {"arm": arm, "seed": result["seed"], "minutes": round(result["minutes"], 2),
            "steps": result["history"][-1]["step"] if result["history"] else None,
            "zero_spread_trained": round(result["zero_spread_share"], 3),
            "zero_spread_sampled": round(result["sampled_zero_spread_share"], 3),
            "gain_mean": gains["mean"] if gains else None,
            "final": {s: result["evals"][-1].stages[s].accuracy for s in stages},
            "sft": {s: result["evals"][0].stages[s].accuracy for s in stages}}


def markdown(rows: list[dict], minutes: float, machine: str, date: str, name: str, arm_names: list[str],
             resample_budget: int | None = None, overrides: list[str] = ()) -> str:
    lines = ["| arm | seed | GRPO steps | minutes (whole run) | zero-spread groups trained / sampled | "
             "mean held-out gain over SFT [95% CI] |", "|---|---|---|---|---|---|"]
    for r in rows:
        g = r["gain_mean"]
        lines.append(f"| {r['arm']} | {r['seed']} | {r['steps']} | {r['minutes']:.1f} | "
                     f"{r['zero_spread_trained']:.2f} / {r['zero_spread_sampled']:.2f} | "
                     f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] |")
    command = f"python bench/curriculum.py --minutes {minutes} --arms {' '.join(arm_names)} --name {name}"
    command += f" --resample-budget {resample_budget}" if resample_budget is not None else ""
    command += "".join(f" --set {o}" for o in overrides)
    lines += ["", f"Produced by `{command}` on {machine}, {date}, from an empty cache: the tiny preset, {minutes} "
              "training minutes per run for every arm (evaluation not counted; the first run's minutes include "
              "building and pretraining the tiny model), 300 held-out problems per stage, greedy; intervals are "
              "paired 95 % percentile bootstrap intervals."]
    return "\n".join(lines)


def plot(results: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for r in results:
        steps = [h["step"] for h in r["history"]]
        for axis, key in ((top, "difficulty"), (bottom, "pass_rate")):
            axis.plot(steps, [h.get(f"curriculum/mental_math/{key}") for h in r["history"]], label=f"seed {r['seed']}")
    top.set_ylabel("difficulty d (mental_math)")
    bottom.set_ylabel("pass rate (smoothed)")
    bottom.set_xlabel("GRPO step")
    top.set_title("adaptive curriculum on the tiny default: difficulty over steps")
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=2.4, help="GRPO minutes per run, both arms")
    parser.add_argument("--arms", nargs="+", default=["fixed", "adaptive"], choices=["fixed", "adaptive", "raft", "reward"])
    parser.add_argument("--name", default="curriculum", help="output files NAME.{json,md,png}")
    parser.add_argument("--resample-budget", type=int, default=None,
                        help="the adaptive and raft arms' curriculum.resample_budget (default: one batch, the preset's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset override every arm runs with (the command in NAME.md records it)")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    cfg = load_config("tiny", overrides=args.overrides)
    stages = [s.name for s in cfg.stages]
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"{args.name}-"))
    cache = work / "cache"
    results: dict[str, list[dict]] = {}
    rows = []
    budget = cfg.batch_size if args.resample_budget is None else args.resample_budget
    for seed in args.seeds:
        for arm in args.arms:
            result = run_seed(seed, work, cache, tuple(args.overrides) + arms(budget, args.minutes)[arm], name=arm)
            results.setdefault(arm, []).append(result)
            rows.append(row(arm, result, stages))
            print(json.dumps(rows[-1]))
    machine = _tiny_default().machine_line()
    date = time.strftime("%Y-%m-%d")
    table = markdown(rows, args.minutes, machine, date, args.name, args.arms, args.resample_budget, args.overrides)
    out = pathlib.Path(args.out)
    (out / f"{args.name}.json").write_text(json.dumps({"machine": machine, "date": date, "minutes": args.minutes,
                                                     "rows": rows, "history": {a: [r["history"] for r in rs]
                                                                               for a, rs in results.items()}}, indent=1))
    _tiny_default().write_results_md(out / f"{args.name}.md", table, f"bench/curriculum.py: {' vs '.join(args.arms)}")
    if "adaptive" in results:
        plot(results["adaptive"], out / f"{args.name}.png")
    print(table)


if __name__ == "__main__":
    main()
