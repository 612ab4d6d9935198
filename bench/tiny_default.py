"""The embedded CPU default, end to end, for several seeds from an empty cache: does GRPO beat its SFT start?

    python bench/tiny_default.py [--seeds 0 1 2] [--out bench/results]
    python bench/tiny_default.py --set learner.advantage=reward --name tiny_default-reward   # the seed's formula

Each seed runs `rlvr train` (the `tiny` preset, `--set seed=S`) as its own process. The first run builds and
pretrains the tiny model into a fresh cache directory (`SYMPY_RLVR_CACHE`), later ones reuse it, as a user's
first and later runs would. Per seed it reports held-out greedy accuracy after SFT and after the last stage,
per stage with 95 % bootstrap intervals, the paired gain over SFT (mean over stages, with its interval),
pass@k and maj@k of the final checkpoint, the share of GRPO groups whose correctness had no spread, and the
minutes. It writes `NAME.json`, a plot `NAME.png` (held-out accuracy per checkpoint) and the table into `NAME.md`
between its `generated` markers (the commentary around them is kept); NAME is `tiny_default` unless `--name` says
otherwise, and `--set KEY=VALUE` overrides the preset in every seed's run.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.records import EvalRow  # noqa: E402
from cluster.report import gains_over  # noqa: E402
from cluster.rollout_log import read_records  # noqa: E402



GENERATED = ("<!-- generated:start -->", "<!-- generated:end -->")


def machine_line(gpu: str = "no GPU") -> str:
    """What a CPU figure depends on beyond the code: the architecture, cores, the vector ISA PyTorch dispatches to
    and the numeric libraries' versions. The tiny model's pretraining is sensitive enough to float summation order
    that two machines running the same code and seeds can end at different accuracies, so every table names them."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = []
    for package in ("torch", "transformers", "peft", "tokenizers"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return (f"{platform.machine()} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, {gpu}; "
            + ", ".join(versions))


def write_results_md(path: pathlib.Path, generated: str, title: str = "") -> None:
    """Put `generated` (the dated table a bench script measured) between the `<!-- generated:start -->` and
    `<!-- generated:end -->` markers of `bench/results/NAME.md`, keeping everything around them: the human "Read:"
    commentary survives a re-run. A file without the markers keeps its old text below the new block."""
    start, end = GENERATED
    block = start + "\n" + generated.strip("\n") + "\n" + end
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        path.write_text(head + block + rest.split(end, 1)[1])
    else:
        heading = f"# {title}\n\n" if title and not text.startswith("# ") else ""
        path.write_text(heading + block + "\n" + (f"\n{text}" if text else ""))


def run_seed(seed: int, work: pathlib.Path, cache: pathlib.Path, overrides: tuple[str, ...] = (), name: str = "seed") -> dict:
    """`rlvr train --preset tiny --set seed=SEED [--set OVERRIDE ...]` in its own process; its evals and groups."""
    run_dir = work / f"{name}{seed}"
    env = dict(os.environ, SYMPY_RLVR_CACHE=str(cache), RAY_DEDUP_LOGS="0")
    cmd = [sys.executable, "-m", "cluster.cli", "train", "--preset", "tiny", "--set", f"seed={seed}",
           "--set", f"run_dir={run_dir}", "--set", f"tracking_uri=sqlite:///{work / 'mlflow.db'}"]
    for assignment in overrides:
        cmd += ["--set", assignment]
    start = time.perf_counter()
    log = (work / f"{name}{seed}.log").open("w")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.perf_counter() - start) / 60
    if proc.returncode:
        raise SystemExit(f"{name} {seed}: rlvr train exited {proc.returncode}; see {work / f'{name}{seed}.log'}")
    state = json.loads((run_dir / "state.json").read_text())
    from cluster.config import load_config

    learner = load_config("tiny", overrides=[f"seed={seed}", *overrides]).learner
    return {"seed": seed, "minutes": minutes, "evals": [EvalRow.from_dict(row) for row in state["evals"]], "history": state.get("history", []),
            "shaping_driven_share": shaping_driven_share(run_dir / "rollouts.msgpack", learner),
            "zero_spread_share": zero_spread_share(run_dir / "rollouts.msgpack"),
            "sampled_zero_spread_share": zero_spread_share(run_dir / "rollouts.msgpack", trained_only=False)}


def zero_spread_share(log_path: pathlib.Path, trained_only: bool = True) -> float:
    """Share of GRPO groups (step, problem) whose completions were all right or all wrong: of the groups the
    learner trained on, or of every group sampled (dynamic sampling replaces some of those)."""
    groups: dict[tuple, list[bool]] = collections.defaultdict(list)
    for r in read_records(log_path):
        if r.get("trained", True) or not trained_only:
            groups[(r["step"], r["problem_id"])].append(r["reward"]["verdict"] == "correct")
    return sum(len(set(v)) == 1 for v in groups.values()) / max(len(groups), 1)


def shaping_driven_share(log_path: pathlib.Path, learner) -> float:
    """Share of the advantage mass (Σ|A| over trained completions, with the run's `learner.advantage`) that sits
    in groups whose correctness had no spread: the part of the update only the shaping signals drive."""
    import torch

    from learner.grpo import group_advantages, has_spread

    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in read_records(log_path):
        if r.get("trained", True) and r.get("role", "solver") == "solver":
            groups[(r["step"], r["problem_id"])].append(r["reward"])
    driven = total = 0.0
    for rewards in groups.values():
        correct = [float(x["verdict"] == "correct") for x in rewards]
        if learner.advantage == "reward":
            adv = group_advantages(torch.tensor([x["total"] for x in rewards]), len(rewards), estimator="reward")
        else:
            adv = group_advantages(torch.tensor(correct), len(rewards), estimator=learner.advantage,
                                   shaping=torch.tensor([x["shaping"] for x in rewards]),
                                   shaping_coef=learner.shaping_coef, std_floor=learner.std_floor)
        mass = float(adv.abs().sum())
        total += mass
        driven += 0.0 if has_spread(correct) else mass
    return driven / total if total else 0.0


def summarize(result: dict, stages: list[str]) -> dict:
    sft = {row.checkpoint: row for row in result["evals"]}["sft"].stages
    final = result["evals"][-1]
    gains = gains_over(result["evals"], stages)
    sampled = final.stages[stages[0]].sampled
    out = {"seed": result["seed"], "minutes": round(result["minutes"], 2),
           "zero_spread_share": round(result["zero_spread_share"], 3), "final_checkpoint": final.checkpoint,
           "shaping_driven_share": round(result["shaping_driven_share"], 3),
           "problems_per_stage": len(final.stages[stages[0]].per_problem), "gain_mean": gains["mean"] if gains else None,
           "k": sampled.k if sampled else None}
    for s in stages:
        e = final.stages[s]
        out[s] = {"sft": sft[s].accuracy, "sft_ci": sft[s].ci, "final": e.accuracy, "final_ci": e.ci,
                  "gain": gains[s] if gains else None,
                  "pass@k": e.sampled.pass_at_k if e.sampled else None, "maj@k": e.sampled.maj_at_k if e.sampled else None}
    return out


def markdown(summaries: list[dict], stages: list[str], machine: str, date: str, command: str) -> str:
    k = summaries[0]["k"] if summaries else None
    head = ("| seed | minutes | " + " | ".join(f"{s}: SFT → final [95% CI]" for s in stages)
            + " | mean gain over SFT [95% CI] |" + (f" pass@{k} / maj@{k} (final, per stage) |" if k else "")
            + " zero-spread groups | advantage mass in them |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        g = s["gain_mean"]
        cells = " | ".join(f"{s[st]['sft']:.3f} → {s[st]['final']:.3f} [{s[st]['final_ci'][0]:.3f}, {s[st]['final_ci'][1]:.3f}]"
                           for st in stages)
        passes = " / ".join(f"{s[st]['pass@k']:.2f}/{s[st]['maj@k']:.2f}" for st in stages) if k else ""
        lines.append(f"| {s['seed']} | {s['minutes']:.1f} | {cells} | {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] |"
                     + (f" {passes} |" if k else "") + f" {s['zero_spread_share']:.2f} | {s['shaping_driven_share']:.2f} |")
    n = summaries[0]["problems_per_stage"] if summaries else 0
    lines.append("")
    lines.append(f"Produced by `{command}` on {machine}, {date}, from an empty cache (the first "
                 f"seed's minutes include building and pretraining the tiny model). Greedy accuracy on {n} held-out "
                 "problems per stage (facts never seen in pretraining, SFT or GRPO); intervals are 95 % percentile "
                 "bootstrap intervals, the gain is paired per problem. The last column is the share of the "
                 "advantage mass (Σ|A| over trained completions) in groups without correctness spread: what only the "
                 "shaping signals drive.")
    return "\n".join(lines)


def plot(results: list[dict], stages: list[str], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        labels = [row.checkpoint for row in r["evals"]]
        means = [sum(row.stages[s].accuracy for s in stages) / len(stages) for row in r["evals"]]
        ax.plot(labels, means, marker="o", label=f"seed {r['seed']}")
    ax.set_ylabel("held-out greedy accuracy (mean over stages)")
    ax.set_xlabel("checkpoint")
    ax.set_title("tiny default: held-out accuracy per checkpoint")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="tiny_default", help="the output files' stem")
    args = parser.parse_args()
    command = " ".join(["python bench/tiny_default.py"] + [f"--set {o}" for o in args.overrides]
                       + ([f"--name {args.name}"] if args.name != "tiny_default" else []))
    out = pathlib.Path(args.out)
    work = pathlib.Path(tempfile.mkdtemp(prefix="tiny-default-"))
    cache = work / "cache"  # empty: the first run builds and pretrains the model
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, work, cache, tuple(args.overrides)))
        print(f"seed {seed}: {results[-1]['minutes']:.1f} min, evals {[row.checkpoint for row in results[-1]['evals']]}")
    from cluster.config import load_config

    stages = [s.name for s in load_config("tiny", overrides=args.overrides).stages]
    summaries = [summarize(r, stages) for r in results]
    machine = machine_line()
    date = time.strftime("%Y-%m-%d")
    table = markdown(summaries, stages, machine, date, command)
    (out / f"{args.name}.json").write_text(json.dumps({"machine": machine, "date": date, "command": command,
                                                       "seeds": summaries,
                                                       "evals": {r["seed"]: [row.to_dict() for row in r["evals"]] for r in results}}, indent=1))
    write_results_md(out / f"{args.name}.md", table, f"The embedded CPU default: GRPO over its SFT start ({command})")
    plot(results, stages, out / f"{args.name}.png")
    print(table)


if __name__ == "__main__":
    main()
