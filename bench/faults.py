"""Faults injected into short runs of the embedded default's loop: what the user saw, what was lost, how long
recovery took, and whether anything was left running.

    python bench/faults.py [--out bench/results]

Every run uses the tiny model architecture (random weights: fault handling does not depend on what the model
knows), one stage of 4 GRPO steps (4 problems × 2 completions), checkpoints every 2 steps, a 6 s watchdog
deadline before a phase has a history, and faults injected through `cluster.services.FaultInjector`. A calm run
is the reference: "nothing lost" means the faulted run's rollout log (every completion and reward) and
held-out evaluations equal the calm run's. Recovery time is from the line reporting the fault to the next
step line (for a stopped run: to the end of the `--resume` run's first step). Writes `faults.json` and the table
into `faults.md` between its `generated` markers (the commentary around them is kept).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.config import load_config  # noqa: E402
from cluster.loop import train  # noqa: E402
from cluster.services import FaultInjector, JobFailed  # noqa: E402
from cluster.modelzoo import build_model  # noqa: E402
from cluster.rollout_log import read_records  # noqa: E402

FAULTS = [  # (name, the fault, what it is)
    ("rollout worker wedged", FaultInjector(hang_in="rollout", hang_seconds=40), "a rollout worker's generate sleeps 40 s"),
    ("evaluation chunk wedged", FaultInjector(hang_in="evaluation", hang_seconds=40),
     "a worker wedges on a held-out chunk"),
    ("weight push wedged", FaultInjector(hang_in="push", hang_seconds=40), "a worker's load_adapter sleeps 40 s"),
    ("learner killed", FaultInjector(kill_learner_at=3), "ray.kill of the learner actor at step 3"),
    ("learner wedged", FaultInjector(hang_in="learning", hang_seconds=60), "the learner's step sleeps 60 s"),
    ("verifier misjudges", FaultInjector(misjudge=True), "every verifier actor flips its verdicts"),
    ("exception in rollout", FaultInjector(fail_in="rollout"), "an exception raised in the rollout phase"),
]


def overrides(work: pathlib.Path, model: pathlib.Path, run: str) -> list[str]:
    return [f"model.name={model}", f"run_dir={work / run}", f"tracking_uri=sqlite:///{work / 'mlflow.db'}",
            "model.lora_rank=4", "model.lora_alpha=8", "rollout.workers=2", "rollout.cpus_per_worker=0.5",
            "rollout.max_tokens=12", "verifier.size=1", "batch_size=4", "group_size=2", "eval_problems=3",
            "eval_samples=2", "checkpoint_every=2", "curriculum.mode=fixed", "curriculum.resample_budget=0",
            "sft.enabled=false", "learner.micro_batch_size=8", "watchdog.first_seconds=6",
            "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]"]


def records(run_dir: pathlib.Path) -> list[tuple]:
    return [(r["step"], r["problem_id"], r["text"], r["reward"]["total"]) for r in read_records(run_dir / "rollouts.msgpack")]


def scores(evals: list) -> list[dict]:
    return [row.stages for row in evals]


def alive_actors() -> int:
    """The job's actors (all named: learner, rollout-i, verifier-i) still alive a moment after `train` returned
    or failed, in the in-process cluster."""
    import ray

    time.sleep(3)
    return len(ray.util.list_named_actors(all_namespaces=True))


def run_fault(work: pathlib.Path, model: pathlib.Path, name: str, faults: FaultInjector, calm: dict) -> dict:
    run = name.replace(" ", "_")
    lines: list[tuple[float, str]] = []

    def echo(line: str) -> None:
        lines.append((time.perf_counter(), line))

    failed = None
    try:
        out = train(load_config("tiny", overrides=overrides(work, model, run)), echo=echo, faults=faults)
    except JobFailed as exc:
        failed, out = exc, None
    left = alive_actors()
    marks = ("rollout stalled", "weight push stalled", "the learner died", "reward-health canary")
    report = next(((t, line) for t, line in lines if line.startswith(marks)), None)
    saw = str(failed).splitlines()[0] if failed else (report[1].splitlines()[0] if report else "(nothing)")
    if failed:
        resumed_lines: list[tuple[float, str]] = []
        start = time.perf_counter()
        out = train(load_config("tiny", overrides=overrides(work, model, run)), resume=str(work / run),
                    echo=lambda line: resumed_lines.append((time.perf_counter(), line)))
        first_step = next((t for t, line in resumed_lines if "] step " in line), start)
        recovery = f"stopped; `--resume` reached its first step in {first_step - start:.1f} s"
    else:
        after = next((t for t, line in lines if report and t > report[0] and "] step " in line), None)
        recovery = f"{after - report[0]:.1f} s to the next step" if report and after else "(no step after the report)"
    same = records(work / run) == records(pathlib.Path(calm["run_dir"])) and scores(out["evals"]) == scores(calm["evals"])
    lost = ("nothing: rollout log and held-out evaluations equal the calm run's" if same and out["finished"]
            else "DIFFERS from the calm run")
    return {"fault": name, "saw": saw[:220], "lost": lost, "recovery": recovery, "actors_left_after": left,
            "stopped": failed is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="faults-"))
    model = build_model(work / "tiny-qwen2", "tiny")
    calm = train(load_config("tiny", overrides=overrides(work, model, "calm")), echo=lambda _: None)
    rows = []
    for name, faults, what in FAULTS:
        row = {**run_fault(work, model, name, faults, calm), "injected": what}
        print(json.dumps(row), flush=True)
        rows.append(row)
    when, machine = time.strftime("%Y-%m-%d"), f"{platform.machine()}, {os.cpu_count()} cores"
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps({"date": when, "machine": machine, "faults": rows}, indent=1))
    table = ["| fault injected | what the user saw | what was lost | recovery | actors left after |",
             "|---|---|---|---|---|"]
    for r in rows:
        saw = r["saw"].replace("|", "\\|")
        table.append(f"| {r['fault']} ({r['injected']}) | `{saw}` | {r['lost']} | {r['recovery']} | {r['actors_left_after']} |")
    text = f"`python bench/faults.py`, {machine}, {when}:\n\n" + "\n".join(table) + "\n"
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_default", ROOT / "bench" / "tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_results_md(out / "faults.md", text, "Faults: what each looks like")
    print(text)


if __name__ == "__main__":
    main()
