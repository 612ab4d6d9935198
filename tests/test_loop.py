"""End to end on the session's Ray cluster with the tiny model: SFT, two short stages, checkpoints,
MLflow, the rollout log, and a resumed run that continues at the same step with the same data."""
import functools
import pathlib

import pytest

from cluster.config import load_config
from cluster.loop import train
from cluster.services import FaultInjector, JobFailed
from cluster.rollout_log import read_records, rescore
from verifier_pool.reward import RewardWeights

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(tmp_path, model_dir, run: str, *extra: str):
    return load_config("tiny", overrides=tiny_overrides(tmp_path, model_dir, run, *extra))


def tiny_overrides(tmp_path, model_dir, run: str, *extra: str) -> list[str]:
    return [
        f"model.name={model_dir}", f"run_dir={tmp_path / run}", f"tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "model.lora_rank=4", "model.lora_alpha=8", "rollout.workers=2", "rollout.cpus_per_worker=0.5",
        "rollout.max_tokens=12", "verifier.size=1", "batch_size=4", "group_size=2", "eval_problems=3", "eval_samples=2",
        "checkpoint_every=1", "curriculum.mode=fixed", "curriculum.resample_budget=0", "sft.steps=2",
        "sft.batch_size=4", "sft.problems=8", "learner.micro_batch_size=8",
        "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 8},"
        " {name: two, difficulty: 2, topics: {number_theory: 1}, epochs: 1, problems: 8}]", *extra]


def step_problems(log_path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in read_records(log_path):
        out.setdefault(r["step"], []).append(r["problem_id"])
    return out


@pytest.mark.ray
def test_two_stages_advance_push_adapters_track_and_resume(ray_cluster, tiny_model_dir, tmp_path):
    import mlflow

    lines: list[str] = []
    full = train(tiny_config(tmp_path, tiny_model_dir, "full"), echo=lines.append)
    assert full["finished"] and full["steps"] == 4 and full["stage"] == 2
    assert [row.checkpoint for row in full["evals"]] == ["sft", "one", "two"]
    assert [row.stages["two"].sampled is not None for row in full["evals"]] == [True, False, True]
    assert full["evals"][0].stages["two"].sampled.k == 2
    # sft (2 steps) + the merge of the SFT adapter into the base + 4 GRPO steps; every worker holds the
    # learner's last adapter version.
    assert full["learner_version"] == 7 and full["worker_versions"] == [7, 7]
    assert any("merged into the base weights" in line for line in lines)
    assert (tmp_path / "full/checkpoint/merged/0/adapter_config.json").exists()
    assert '"answer_policy": "strict"' in (tmp_path / "full/stages/two/rlvr_eval.json").read_text()
    assert any(line.startswith("gain/sft") for text in lines for line in text.splitlines())
    for row in full["evals"]:
        one = row.stages["one"]
        assert len(one.per_problem) == 3 and one.accuracy == sum(one.per_problem) / 3
        assert one.ci[0] <= one.accuracy <= one.ci[1]
    assert any("[two e1/1 b2/2] step 4" in line for line in lines)
    assert (tmp_path / "full/stages/one/adapter").is_dir() and (tmp_path / "full/stages/two/adapter").is_dir()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = client.get_metric_history(full["run_id"], "accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4]
    for key in ("reward/correctness", "reward/format", "kl", "clip_fraction", "loss", "rollout_seconds",
                "score_seconds", "learn_seconds", "push_seconds", "rollout_tokens_per_s", "zero_spread_groups"):
        assert client.get_metric_history(full["run_id"], key), key
    run = client.get_run(full["run_id"])
    assert run.data.params["group_size"] == "2" and run.data.params["stages.1.name"] == "two"
    artifacts = {a.path for a in client.list_artifacts(full["run_id"])}
    assert {"adapters", "config.yaml", "heldout_accuracy.json", "samples_one.json"} <= artifacts

    log = tmp_path / "full/rollouts.msgpack"
    records = list(read_records(log))
    assert len(records) == 4 * 4 * 2 and {r["stage"] for r in records} == {"one", "two"}
    pairs = rescore(log, RewardWeights())
    assert all(abs(old - new) < 1e-9 for old, new in pairs[:6])
    shifted = rescore(log, RewardWeights(correctness=0.0, consistency=0.0, reasoning_depth=0.0,
                                         numerical_grounding=0.0, format=1.0, parsability=0.0, length=0.0,
                                         repetition=0.0))
    assert all(new == r["reward"]["format"] for (_, new), r in zip(shifted, records))

    stopped = train(tiny_config(tmp_path, tiny_model_dir, "resumed", "max_steps=3"), echo=lines.append)
    assert not stopped["finished"] and stopped["steps"] == 3 and stopped["stage"] == 1
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "resumed"), resume=str(tmp_path / "resumed"),
                    echo=lines.append)
    assert resumed["finished"] and resumed["steps"] == 4 and resumed["run_id"] == stopped["run_id"]
    assert resumed["learner_step"] == full["learner_step"]
    assert any("resumed" in line and "stage 1 step 3 " in line for line in lines)  # the driver's step, not the learner's
    assert step_problems(tmp_path / "resumed/rollouts.msgpack") == step_problems(log)
    history = client.get_metric_history(resumed["run_id"], "accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(tmp_path, tiny_model_dir, "full"), echo=lines.append)


@pytest.mark.ray
def test_rlvr_eval_prints_accuracy_pass_and_majority(ray_cluster, tiny_model_dir, tmp_path, capsys):
    from cluster.cli import main

    assert main(["eval", "--model", tiny_model_dir, "--data", "synthesis/data/gsm8k_sample.jsonl", "--k", "3",
                 "--max-tokens", "8", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    rows = dict(line.split() for line in out.splitlines()[2:] if line.strip())
    assert set(rows) == {"accuracy", "accuracy_ci95", "pass@3", "maj@3", "problems", "policy"} and rows["problems"] == "4"
    assert 0.0 <= float(rows["accuracy"]) <= float(rows["pass@3"]) <= 1.0 and rows["policy"] == "lenient"
    assert main(["eval", "--model", tiny_model_dir, "--data", "synthesis/data/gsm8k_sample.jsonl", "--k", "3",
                 "--max-tokens", "8", "--limit", "4", "--agent", "majority"]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0] == "majority of 3 on 4 problems" and [r.split()[0] for r in report[2:4]] == ["1", "maj@3"]
    assert main(["benchmark", "--dataset", "synthesis/data/math500_sample.jsonl", "--limit", "2", "--model",
                 tiny_model_dir, "--k", "1", "--max-tokens", "8"]) == 0
    rows = dict(line.split() for line in capsys.readouterr().out.splitlines()[2:] if line.strip())
    assert rows["problems"] == "2" and rows["policy"] == "lenient"


def step_versions(log_path) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for r in read_records(log_path):
        out.setdefault(r["step"], set()).add(r["policy_version"])
    return out


@pytest.mark.ray
def test_async_overlap_keeps_data_order_and_samples_one_version_behind(ray_cluster, tiny_model_dir, tmp_path):
    """`async_steps: 1`: step n+1 is sampled (under the adapter of step n-1) while the learner trains step n.
    The steps see the same problems as without overlap, each step's completions come from exactly one adapter
    version, one behind the learner's, and the learner gets truncated importance weights for them."""
    import mlflow

    one_stage = ("stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    sync = train(tiny_config(tmp_path, tiny_model_dir, "sync", "sft.enabled=false", one_stage), echo=lambda _: None)
    lines: list[str] = []
    overlap = train(tiny_config(tmp_path, tiny_model_dir, "async", "sft.enabled=false", one_stage, "async_steps=1",
                                "checkpoint_every=10"), echo=lines.append)  # a checkpoint step is a sync point
    assert overlap["steps"] == sync["steps"] == 4 and overlap["finished"]
    assert step_problems(tmp_path / "async/rollouts.msgpack") == step_problems(tmp_path / "sync/rollouts.msgpack")
    assert step_versions(tmp_path / "sync/rollouts.msgpack") == {1: {0}, 2: {1}, 3: {2}, 4: {3}}
    # step 1 has nothing to overlap with; step 2 was sampled during step 1's learning, under version 0, ...
    assert step_versions(tmp_path / "async/rollouts.msgpack") == {1: {0}, 2: {0}, 3: {1}, 4: {2}}
    assert overlap["learner_version"] == 4 and overlap["worker_versions"] == [4, 4]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    staleness = [m.value for m in sorted(client.get_metric_history(overlap["run_id"], "staleness"), key=lambda m: m.step)]
    assert staleness == [0.0, 1.0, 1.0, 1.0]
    for key in ("mismatch_kl", "tis_clipped", "gpu_idle_share", "step_seconds"):
        assert client.get_metric_history(overlap["run_id"], key), key
    assert any("staleness 1.0" in line for line in lines)


def step_records(log_path) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in read_records(log_path):
        out.setdefault(r["step"], []).append((r["problem_id"], r["difficulty"], r["trained"], r["text"]))
    return out


@pytest.mark.ray
def test_adaptive_curriculum_resamples_plots_and_resumes_to_the_same_decisions(ray_cluster, tiny_model_dir, tmp_path):
    """`curriculum.mode: adaptive` with dynamic sampling: problems come from the controller at each topic's
    difficulty, groups without correctness spread are replaced up to the budget (never more than a batch is
    trained), difficulty and pass rate are logged per step, a plot is drawn at each stage end, and a run
    stopped at a step and resumed samples the same problems, completions and difficulties as one that never
    stopped."""
    import mlflow

    adaptive = ("curriculum.mode=adaptive", "curriculum.resample_budget=4", "curriculum.step_size=0.5",
                "stages=[{name: one, difficulty: 2, topics: {mental_math: 1}, epochs: 2, problems: 8}]",
                "sft.enabled=false")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *adaptive), echo=lambda _: None)
    assert full["finished"] and full["steps"] == 4
    records = step_records(tmp_path / "full/rollouts.msgpack")
    for step, rows in records.items():
        groups = {(pid, d, trained) for pid, d, trained, _ in rows}
        assert sum(trained for _, _, trained in groups) == 4  # the batch, whatever was resampled
        assert 4 <= len(groups) <= 8 and all(0.0 <= d <= 0.5 for _, d, _ in groups)
    assert (tmp_path / "full/curriculum_one.png").stat().st_size > 1000
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("curriculum/mental_math/difficulty", "curriculum/mental_math/pass_rate", "resample/extra_problems",
                "resample/shortfall", "sampled/zero_spread_groups"):
        assert len(client.get_metric_history(full["run_id"], key)) == 4, key

    stopped = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *adaptive, "max_steps=2"), echo=lambda _: None)
    assert not stopped["finished"] and stopped["steps"] == 2
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *adaptive), resume=str(tmp_path / "resumed"),
                    echo=lambda _: None)
    assert resumed["finished"] and resumed["steps"] == 4
    assert step_records(tmp_path / "resumed/rollouts.msgpack") == records


@pytest.mark.ray
def test_teacher_mode_trains_on_taught_children_logs_its_strategies_and_resumes_exactly(ray_cluster, tiny_model_dir,
                                                                                         tmp_path):
    """`curriculum.mode: teacher`: from the second step half of each batch are children the teacher rewrote in
    symbolic space from problems far from the target; strategy rewards go to MLflow; a resumed run makes the same
    choices (same problems and completions) as one that never stopped."""
    import mlflow

    teacher = ("curriculum.mode=teacher", "teacher.share=0.5", "teacher.screen=1", "sft.enabled=false",
               "stages=[{name: one, difficulty: 2, topics: {mental_math: 1, word_problems: 1}, epochs: 2, problems: 8}]")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *teacher), echo=lambda _: None)
    assert full["finished"] and full["steps"] == 4
    records = step_records(tmp_path / "full/rollouts.msgpack")
    taught = {step: {pid for pid, *_ in rows if "-t-" in pid} for step, rows in records.items()}
    assert not taught[1] and all(len(taught[step]) == 2 for step in (2, 3, 4)), taught
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(client.get_metric_history(full["run_id"], "teacher/parents")) == 4
    assert any(k.startswith("teacher/hard/") for k in client.get_run(full["run_id"]).data.metrics)

    stopped = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *teacher, "max_steps=2"), echo=lambda _: None)
    assert not stopped["finished"] and stopped["steps"] == 2
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *teacher), resume=str(tmp_path / "resumed"),
                    echo=lambda _: None)
    assert resumed["finished"] and step_records(tmp_path / "resumed/rollouts.msgpack") == records


@pytest.mark.ray
def test_a_screening_teacher_samples_the_candidates_the_policy_predicts_at_the_target_and_resumes_exactly(
        ray_cluster, tiny_model_dir, tmp_path):
    """`teacher.screen: 3`: each step's groups (and the dynamic-sampling replacements) are picked from three times as
    many candidates by the pass rate the rollout workers' policy predicts, logged with every screened group; a
    resumed run predicts, picks and samples exactly as one that never stopped."""
    import mlflow

    screen = ("curriculum.mode=teacher", "teacher.screen=3", "sft.enabled=false",
              "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *screen), echo=lambda _: None)
    assert full["finished"] and full["steps"] == 4
    rows = list(read_records(tmp_path / "full/rollouts.msgpack"))
    predicted = [r["predicted_pass_rate"] for r in rows if r["predicted_pass_rate"] is not None]
    assert len(predicted) > len(rows) / 2 and all(0 <= p <= 1 for p in predicted)
    assert all("-t-" in r["problem_id"] for r in rows if r["predicted_pass_rate"] is None)  # a child with no solution
    drawing = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(full["run_id"], "draw_seconds")
    assert len(drawing) == 4 and all(m.value > 0 for m in drawing)  # drawing and screening, timed apart from rollout
    stopped = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *screen, "max_steps=2"), echo=lambda _: None)
    assert not stopped["finished"]
    train(tiny_config(tmp_path, tiny_model_dir, "resumed", *screen), resume=str(tmp_path / "resumed"),
          echo=lambda _: None)
    again = list(read_records(tmp_path / "resumed/rollouts.msgpack"))
    assert [(r["problem_id"], r["predicted_pass_rate"], r["text"]) for r in again] == \
        [(r["problem_id"], r["predicted_pass_rate"], r["text"]) for r in rows]


@pytest.mark.ray
def test_an_llm_teacher_writes_children_improves_its_prompts_and_a_resumed_run_replays_it(ray_cluster, tiny_model_dir,
                                                                                          tmp_path, monkeypatch):
    """`teacher.model: grok-4` against the fake xAI server: children come from the model's symbolic rewrites, the
    lowest-scoring prompt is put on trial, prompt versions go to MLflow, and a run stopped and resumed replays the
    cached replies into the same problems and completions."""
    pytest.importorskip("xai_sdk")
    from concurrent import futures

    import grpc
    import mlflow
    from xai_sdk.proto import chat_pb2_grpc

    from tests.test_llm_teacher import KEY, FakeTeacher

    servicer, server = FakeTeacher(), grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    chat_pb2_grpc.add_ChatServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("XAI_API_KEY", KEY)
    llm = ("curriculum.mode=teacher", "teacher.model=grok-4", f"teacher.api_host=127.0.0.1:{port}",
           "teacher.insecure=true", "teacher.strategies=[change_constant, add_step]", "teacher.prompt_every=1",
           "teacher.trial_children=1", "teacher.share=0.75", "teacher.screen=1", "sft.enabled=false",
           "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    try:
        full = train(tiny_config(tmp_path, tiny_model_dir, "full", *llm), echo=lambda _: None)
        records = step_records(tmp_path / "full/rollouts.msgpack")
        taught = {step: sum("-llm-" in pid for pid in {pid for pid, *_ in rows}) for step, rows in records.items()}
        assert full["finished"] and taught[1] == 0 and sum(taught.values()) >= 4, taught
        client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        metrics = client.get_run(full["run_id"]).data.metrics
        assert "teacher/add_step/prompt_version" in metrics and metrics["teacher/prompt_trials"] + \
            metrics["teacher/prompts_retired"] >= 1
        train(tiny_config(tmp_path, tiny_model_dir, "resumed", *llm, "max_steps=2"), echo=lambda _: None)
        resumed = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *llm), resume=str(tmp_path / "resumed"),
                        echo=lambda _: None)
    finally:
        server.stop(0)
    assert resumed["finished"] and step_records(tmp_path / "resumed/rollouts.msgpack") == records


@pytest.mark.ray
def test_rlvr_sft_writes_an_adapter_that_train_starts_from_and_eval_reads(ray_cluster, tiny_model_dir, tmp_path):
    """halo-forge's shape: `rlvr sft --dataset FILE --max-samples N --output DIR` is the warm start alone (no GRPO
    step); `rlvr train --init-adapter DIR` folds it in and trains from it; `rlvr eval --adapter DIR` reads it."""
    import json

    from cluster.cli import main

    common = [f"model.name={tiny_model_dir}", f"tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "model.lora_rank=4",
              "model.lora_alpha=8", "rollout.workers=1", "rollout.max_tokens=8", "verifier.size=1", "batch_size=4",
              "group_size=2", "eval_problems=3", "eval_samples=0", "sft.batch_size=2",
              "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 8}]"]
    sets = [x for c in common for x in ("--set", c)]
    out = tmp_path / "sft-adapter"
    assert main(["sft", "--dataset", "synthesis/data/metamath_sample.jsonl", "--max-samples", "4", "--output",
                 str(out), "--set", "sft.steps=3", *sets]) == 0
    assert (out / "adapter_config.json").exists() and json.loads((out / "rlvr_eval.json").read_text())["prompt"]
    state = json.loads((out / "run" / "state.json").read_text())
    assert state["step"] == 0 and state["sft_done"] and [row["checkpoint"] for row in state["evals"]] == ["sft"]
    assert main(["train", "--init-adapter", str(out), *sets, "--set", f"run_dir={tmp_path / 'grpo'}"]) == 0
    grpo = json.loads((tmp_path / "grpo" / "state.json").read_text())
    assert grpo["step"] == 2 and grpo["evals"][0]["checkpoint"] == "sft"
    assert len(list((tmp_path / "grpo" / "checkpoint" / "merged").iterdir())) == 1
    assert main(["eval", "--model", tiny_model_dir, "--adapter", str(out), "--data",
                 "synthesis/data/gsm8k_sample.jsonl", "--k", "1", "--max-tokens", "8", "--limit", "2"]) == 0


@pytest.mark.ray
def test_rlvr_sft_full_writes_a_model_that_train_and_eval_load(ray_cluster, tiny_model_dir, tmp_path):
    """SLM-Math's SFT: `rlvr sft --mode full` trains every weight on the learner, the rollout workers restart on
    the written model directory for the SFT evaluation, and the directory is a model `rlvr train` and `rlvr eval`
    load by name."""
    import json

    import torch
    from safetensors.torch import load_file

    from cluster.cli import main

    common = [f"tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "model.lora_rank=4", "model.lora_alpha=8",
              "rollout.workers=1", "rollout.max_tokens=8", "verifier.size=1", "batch_size=4", "group_size=2",
              "eval_problems=3", "eval_samples=0", "sft.batch_size=2",
              "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 8}]"]
    sets = [x for c in common for x in ("--set", c)]
    out = tmp_path / "sft-model"
    assert main(["sft", "--mode", "full", "--dataset", "synthesis/data/metamath_sample.jsonl", "--max-samples", "4",
                 "--output", str(out), "--set", "sft.steps=3", "--set", f"model.name={tiny_model_dir}", *sets]) == 0
    before, after = load_file(f"{tiny_model_dir}/model.safetensors"), load_file(out / "model.safetensors")
    assert set(after) <= set(before) and any(not torch.equal(before[k], after[k]) for k in after)
    settings = json.loads((out / "run" / "checkpoint" / "rlvr_eval.json").read_text())
    assert settings["model"] == str((out / "run" / "sft-model").resolve())
    state = json.loads((out / "run" / "state.json").read_text())
    assert state["sft_done"] and [row["checkpoint"] for row in state["evals"]] == ["sft"]
    assert main(["train", "--set", f"model.name={out}", *sets, "--set", f"run_dir={tmp_path / 'grpo'}"]) == 0
    assert json.loads((tmp_path / "grpo" / "state.json").read_text())["step"] == 2
    assert main(["eval", "--model", str(out), "--data", "synthesis/data/gsm8k_sample.jsonl", "--k", "1",
                 "--max-tokens", "8", "--limit", "2"]) == 0


@pytest.mark.ray
def test_a_run_with_full_sft_resumes_to_the_same_steps_on_the_sft_model(ray_cluster, tiny_model_dir, tmp_path):
    """`sft.mode: full` inside `rlvr train`: the run writes `<run_dir>/sft-model`, its workers sample from it, and a
    run stopped after the warm start and two GRPO steps resumes on that model (not the base one) to the same
    problems and completions as the run that never stopped."""
    import json

    full_sft = ("sft.enabled=true", "sft.mode=full", "sft.steps=3")
    whole = train(tiny_config(tmp_path, tiny_model_dir, "whole", *full_sft), echo=lambda _: None)
    assert whole["finished"] and (tmp_path / "whole" / "sft-model" / "config.json").exists()
    records = step_records(tmp_path / "whole/rollouts.msgpack")
    stopped = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *full_sft, "max_steps=2"), echo=lambda _: None)
    assert not stopped["finished"] and stopped["steps"] == 2
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "resumed", *full_sft), resume=str(tmp_path / "resumed"),
                    echo=lambda _: None)
    assert resumed["finished"] and step_records(tmp_path / "resumed/rollouts.msgpack") == records
    settings = json.loads((tmp_path / "resumed" / "checkpoint" / "rlvr_eval.json").read_text())
    assert settings["model"] == str((tmp_path / "resumed" / "sft-model").resolve())


@pytest.mark.ray
@pytest.mark.parametrize("phase", ["rollout", "learning"])
def test_a_failing_job_ends_failed_leaves_nothing_running_and_says_where(ray_cluster, tiny_model_dir, tmp_path,
                                                                         monkeypatch, capsys, phase):
    """An exception in any phase: the MLflow run ends FAILED with the error as a tag, every actor the job
    started is gone, and `rlvr train` exits 1 with one line naming the phase and the run to resume."""
    import mlflow
    import ray

    from cluster.cli import main

    def alive() -> tuple:
        """Named actors and the CPUs actors hold (the learner is unnamed, but holds a CPU)."""
        names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True))
        return names, ray.cluster_resources().get("CPU", 0) - ray.available_resources().get("CPU", 0)

    import time

    deadline = time.time() + 30  # actors killed by earlier tests take a moment to give their CPUs back
    while alive()[1] > 0 and time.time() < deadline:
        time.sleep(0.5)
    before = alive()
    import cluster.loop

    monkeypatch.setattr(cluster.loop, "train", functools.partial(cluster.loop.train, faults=FaultInjector(fail_in=phase)))
    cfg = tiny_config(tmp_path, tiny_model_dir, "failed", "sft.enabled=false")
    args = ["train"] + [a for key in ("model.name", "run_dir", "tracking_uri") for a in ("--set", f"{key}={getattr_path(cfg, key)}")]
    args += ["--set", "sft.enabled=false", "--set", "model.lora_rank=4", "--set", "rollout.max_tokens=8",
             "--set", "batch_size=4", "--set", "group_size=2", "--set", "eval_problems=3", "--set", "verifier.size=1",
             "--set", "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 8}]"]
    assert main(args) == 1
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rlvr train:")]
    assert len(said) == 1 and f"failed in {phase}" in said[0] and f"--resume {tmp_path / 'failed'}" in said[0]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("sympy-rlvr").experiment_id])[0]
    assert run.info.status == "FAILED" and f"fault injected in {phase}" in run.data.tags["error"]
    deadline = time.time() + 30
    while alive() != before and time.time() < deadline:
        time.sleep(0.5)
    assert alive() == before


def getattr_path(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.ray
@pytest.mark.parametrize("kill_at", [1, 3])
def test_kill_9_of_the_driver_at_a_step_then_resume_equals_the_uninterrupted_run(
        ray_cluster, local_cluster, tiny_model_dir, tmp_path, kill_at):
    """`kill -9` of the `rlvr train` process at a random step, then `--resume`: every step appears once in the
    rollout log and in MLflow, with the same completions and metrics as a run that was never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    one_stage = ("sft.enabled=false", "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *one_stage), echo=lambda _: None)
    cmd = [sys.executable, "-m", "cluster.cli", "train"]
    for assignment in tiny_overrides(tmp_path, tiny_model_dir, "killed", *one_stage):
        cmd += ["--set", assignment]
    env = dict(os.environ, RAY_ADDRESS=local_cluster.address, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = tmp_path / "killed/rollouts.msgpack", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and any(r["step"] >= kill_at for r in read_records(log)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before step {kill_at}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "killed", *one_stage), resume=str(tmp_path / "killed"),
                    echo=lambda _: None)
    assert resumed["finished"] and resumed["steps"] == full["steps"] == 4
    ours, theirs = step_records(log), step_records(tmp_path / "full/rollouts.msgpack")
    assert {s: len(r) for s, r in ours.items()} == {s: len(r) for s, r in theirs.items()}, kill_at
    for s in ours:
        assert [r[:3] for r in ours[s]] == [r[:3] for r in theirs[s]], (s, kill_at)
    assert ours == theirs, f"killed at step {kill_at}"
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("accuracy", "reward/total", "loss", "zero_spread_groups"):
        ours = sorted((m.step, m.value) for m in client.get_metric_history(resumed["run_id"], key))
        theirs = sorted((m.step, m.value) for m in client.get_metric_history(full["run_id"], key))
        assert [s for s, _ in ours] == [1, 2, 3, 4], (key, kill_at, ours)
        assert [v for _, v in ours] == pytest.approx([v for _, v in theirs], abs=1e-6), (key, kill_at)


@pytest.mark.ray
@pytest.mark.parametrize("window", ["checkpoint renamed, state.json not yet written", "before the first checkpoint"])
def test_a_kill_in_either_window_around_a_checkpoint_resumes_into_the_same_mlflow_run(
        ray_cluster, tiny_model_dir, tmp_path, window):
    """The two moments a random `kill -9` rarely hits, made exact: the checkpoint directory is in place but
    state.json still holds the step before (the run id must come from the checkpoint), and no checkpoint
    yet (the resume replays from step 0, dropping the logged steps' rollout records and MLflow repeats)."""
    import mlflow

    from cluster.schedule import RunState

    one_stage = ("sft.enabled=false", "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *one_stage), echo=lambda _: None)
    stopped = train(tiny_config(tmp_path, tiny_model_dir, "killed", *one_stage, "max_steps=2"), echo=lambda _: None)
    run_dir = tmp_path / "killed"
    if window.startswith("checkpoint renamed"):
        (run_dir / "state.json").unlink()
    else:
        RunState(run_id=stopped["run_id"]).save(run_dir / "state.json")
        for path in sorted((run_dir / "checkpoint").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (run_dir / "checkpoint").rmdir()
    lines: list[str] = []
    resumed = train(tiny_config(tmp_path, tiny_model_dir, "killed", *one_stage), resume=str(run_dir), echo=lines.append)
    assert resumed["run_id"] == stopped["run_id"] and resumed["finished"] and resumed["steps"] == 4
    replayed = 0 if window.startswith("checkpoint renamed") else 2
    assert any(line.startswith(f"resumed {run_dir} at stage 0 step {2 - replayed} ") for line in lines)
    assert step_records(run_dir / "rollouts.msgpack") == step_records(tmp_path / "full/rollouts.msgpack")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("accuracy", "loss"):
        ours = sorted((m.step, m.value) for m in client.get_metric_history(resumed["run_id"], key))
        theirs = sorted((m.step, m.value) for m in client.get_metric_history(full["run_id"], key))
        assert [s for s, _ in ours] == [1, 2, 3, 4] and [v for _, v in ours] == pytest.approx([v for _, v in theirs])


@pytest.mark.ray
def test_a_verifier_that_misjudges_its_canaries_stops_the_run(ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    """`canary_fail: stop`: the canaries run in every verifier actor at the start; a wrong verdict stops the run
    (FAILED, in phase `canary`) before a single step learns from it; `warn` logs it and goes on."""
    one_stage = ("sft.enabled=false", "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]")
    lines: list[str] = []
    with pytest.raises(JobFailed, match="failed in canary: .*right: wrong \\(expected correct\\)"):
        train(tiny_config(tmp_path, tiny_model_dir, "stop", *one_stage), echo=lines.append,
              faults=FaultInjector(misjudge=True))
    assert not (tmp_path / "stop/rollouts.msgpack").exists()
    warned = train(tiny_config(tmp_path, tiny_model_dir, "warn", *one_stage, "canary_fail=warn"), echo=lines.append,
                   faults=FaultInjector(misjudge=True))
    assert warned["finished"] and any(line.startswith("reward-health canary failed") for line in lines)


@pytest.mark.ray
def test_a_wedged_learner_stops_the_run_with_its_stack(ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    """Stall detection, learning: a learner silent past its deadline stops the run with a report naming it
    and showing where it is stuck."""
    one_stage = ("sft.enabled=false", "watchdog.first_seconds=4",
                 "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]")
    with pytest.raises(JobFailed, match="failed in learning: PhaseStalled: the learner gave no answer in 4s") as err:
        train(tiny_config(tmp_path, tiny_model_dir, "wedged", *one_stage), echo=lambda _: None,
              faults=FaultInjector(hang_in="learning", hang_seconds=60))
    assert "in step" in str(err.value) and "time.sleep" in str(err.value)


@pytest.mark.ray
@pytest.mark.parametrize("phase, report", [("rollout", "rollout stalled: rollout-"),
                                           ("evaluation", "rollout stalled: rollout-"),
                                           ("push", "weight push stalled: rollout-")])
def test_a_wedged_rollout_worker_is_reported_replaced_and_the_step_goes_on(ray_cluster, tiny_model_dir, tmp_path,
                                                                        monkeypatch, phase, report):
    """Stall detection in the phases a rollout worker holds (sampling, held-out evaluation, weight push): the
    wedged worker is named with its stack; a chunk of prompts is sampled again by the other worker (same seed, so
    the same completions as a run without the stall); a new worker takes its place with the current weights."""
    one_stage = ("sft.enabled=false", "watchdog.first_seconds=6",
                 "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 4}]")
    calm = train(tiny_config(tmp_path, tiny_model_dir, "calm", *one_stage), echo=lambda _: None)
    lines: list[str] = []
    wedged = train(tiny_config(tmp_path, tiny_model_dir, "wedged", *one_stage), echo=lines.append,
                   faults=FaultInjector(hang_in=phase, hang_seconds=40))
    assert wedged["finished"] and wedged["steps"] == calm["steps"] == 2
    assert any(line.startswith(report) and "stacks:" in line for line in lines)
    assert [row.stages for row in wedged["evals"]] == [row.stages for row in calm["evals"]]
    assert any(line.startswith("replaced 1 rollout worker(s): rollout-2") for line in lines)
    assert step_records(tmp_path / "wedged/rollouts.msgpack") == step_records(tmp_path / "calm/rollouts.msgpack")
    assert wedged["worker_versions"] == [wedged["learner_version"]] * 2


@pytest.mark.ray
def test_raft_fine_tunes_on_verified_completions_through_the_same_loop(ray_cluster, tiny_model_dir, tmp_path):
    """`algo: raft`: the same stages, rollout log, checkpoints and tracking; each step fine-tunes on at most
    `raft.per_problem` correct completions per problem (none kept: no update), for `raft.cycles` passes."""
    import mlflow

    raft = ("algo=raft", "raft.cycles=2", "raft.per_problem=1", "sft.enabled=false", "verifier.answer_policy=lenient",
            "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]")
    out = train(tiny_config(tmp_path, tiny_model_dir, "raft", *raft), echo=lambda _: None)
    assert out["finished"] and out["steps"] == 2
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kept = [m.value for m in sorted(client.get_metric_history(out["run_id"], "raft/kept"), key=lambda m: m.step)]
    records = read_records(tmp_path / "raft/rollouts.msgpack")
    correct: dict[int, set] = {}
    for r in records:
        if r["reward"]["verdict"] == "correct":
            correct.setdefault(r["step"], set()).add(r["problem_id"])
    assert kept == [float(len(correct.get(step, ()))) for step in (1, 2)]
    assert out["learner_version"] == sum(k > 0 for k in kept)


@pytest.mark.ray
def test_a_raft_step_fine_tunes_on_the_kept_completions_only(ray_cluster, tiny_model_dir, tmp_path):
    """The RAFT learn phase on hand-judged groups: one supervised step on the kept (correct) completions, a new
    adapter version; a step where nothing is correct leaves the learner alone."""
    import dataclasses

    import ray

    from actors.records import Episode, GroupBatch, Turn
    from cluster.learn import learn
    from cluster.records import ScoredStep
    from cluster.services import Services
    from cluster.watchdog import BusyClock
    from learner.learner import LearnerConfig, create_learner
    from learner.policy import PolicyConfig
    from synthesis.problem import Problem
    from verifier_pool.reward import error_breakdown

    cfg = tiny_config(tmp_path, tiny_model_dir, "unit", "algo=raft", "raft.per_problem=1")
    learner = create_learner(LearnerConfig(), PolicyConfig(name=tiny_model_dir, lora_rank=4, lora_alpha=8),
                             name="learner-raft-unit")
    ray.get(learner.ready.remote())
    svc = Services(learner=learner)

    def group(problem: Problem, verdicts: list[str]) -> GroupBatch:
        episodes = [Episode(problem.id, "answer", problem.question, [1, 2, 3],
                            [Turn("model", f"{problem.answer} done", [5, 6, 7])], done=True,
                            reward=dataclasses.replace(error_breakdown(v), total=1.0 if v == "correct" else 0.0))
                    for v in verdicts]
        return GroupBatch(problem, episodes)

    problems = [Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(2)]
    hits = ScoredStep([group(problems[0], ["correct", "correct"]), group(problems[1], ["wrong", "correct"])], [True] * 2)
    learned = learn(cfg, svc, hits, BusyClock(), None)
    assert learned.raft_kept == 2 and learned.raft_kept_groups == 1.0
    assert learned.stats.version == 1 and learned.weights is not None and learned.stats.loss > 0
    misses = ScoredStep([group(p, ["wrong", "wrong"]) for p in problems], [True] * 2)
    learned = learn(cfg, svc, misses, BusyClock(), None)
    assert learned.raft_kept == 0 and learned.weights is None and learned.stats is None
    assert ray.get(learner.ready.remote())["version"] == 1
    ray.kill(learner)


@pytest.mark.ray
def test_a_killed_learner_is_restarted_from_the_checkpoint_and_an_async_run_repeats_its_data(
        ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    """The learner actor killed mid-step (async run, checkpoint every 2 steps, a checkpoint step is a sync
    point): the job restarts from the checkpoint of step 2 and finishes with the same rollout log and metrics as
    a run never interrupted, each step once. With `learner.restarts=0`, or before any checkpoint, the run stops
    with the resume command."""
    import time

    import mlflow

    one_stage = ("sft.enabled=false", "async_steps=1", "checkpoint_every=2",
                 "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 2, problems: 8}]")
    full = train(tiny_config(tmp_path, tiny_model_dir, "full", *one_stage), echo=lambda _: None)
    assert step_versions(tmp_path / "full/rollouts.msgpack") == {1: {0}, 2: {0}, 3: {2}, 4: {2}}
    lines: list[tuple[float, str]] = []
    out = train(tiny_config(tmp_path, tiny_model_dir, "killed", *one_stage),
                echo=lambda line: lines.append((time.perf_counter(), line)), faults=FaultInjector(kill_learner_at=4))
    died = next(i for i, (_, line) in enumerate(lines) if line.startswith("the learner died in learning"))
    assert "restart 1/1 from the last checkpoint" in lines[died][1]
    recovered = next(t for t, line in lines[died:] if line.startswith("[one") and " step 3 " in line)
    print(f"learner killed at step 4: recovered to a new step 3 in {recovered - lines[died][0]:.1f}s")
    assert out["finished"] and out["steps"] == full["steps"] == 4
    assert step_records(tmp_path / "killed/rollouts.msgpack") == step_records(tmp_path / "full/rollouts.msgpack")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(out["run_id"]).info.status == "FINISHED"
    for key in ("accuracy", "loss", "staleness"):
        ours = sorted((m.step, m.value) for m in client.get_metric_history(out["run_id"], key))
        theirs = sorted((m.step, m.value) for m in client.get_metric_history(full["run_id"], key))
        assert [s for s, _ in ours] == [1, 2, 3, 4] and [v for _, v in ours] == pytest.approx([v for _, v in theirs])

    with pytest.raises(JobFailed, match="(?s)failed in learning: .*rlvr train --resume .*no_restart"):
        train(tiny_config(tmp_path, tiny_model_dir, "no_restart", *one_stage, "learner.restarts=0"), echo=lambda _: None,
              faults=FaultInjector(kill_learner_at=3))


@pytest.mark.ray
def test_code_feedback_episodes_train_through_the_same_loop(ray_cluster, tiny_model_dir, tmp_path):
    """`rollout.env: code-feedback`: every episode is a program turn, the runner's feedback (masked), and an answer
    turn; the rollout log keeps the transcript, MLflow counts what the programs did, the learner trains."""
    import mlflow

    code = ("rollout.env=code-feedback", "rollout.max_turns=2", "rollout.max_tokens=8", "sft.enabled=false",
            "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]")
    lines: list[str] = []
    out = train(tiny_config(tmp_path, tiny_model_dir, "code", *code), echo=lines.append)
    assert out["finished"] and out["steps"] == 1 and out["learner_version"] == 1
    records = list(read_records(tmp_path / "code/rollouts.msgpack"))
    assert len(records) == 8 and {r["env"] for r in records} == {"code-feedback"}
    assert all("Give the final answer." in r["text"] for r in records)  # the observation between the two turns
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    counts = {k: v for k, v in client.get_run(out["run_id"]).data.metrics.items() if k.startswith("programs/")}
    assert sum(counts.values()) == 8 and any(" programs " in line for line in lines)


@pytest.mark.ray
def test_solver_verifier_trains_both_roles_through_the_same_loop(ray_cluster, tiny_model_dir, tmp_path):
    """`rollout.env: solver-verifier`: each trained solver group gives the verifier its answers to judge; the
    verifier groups are logged (role verifier) and learned beside the solver groups, approval rates are logged."""
    import mlflow

    both = ("rollout.env=solver-verifier", "sft.enabled=false",
            "stages=[{name: one, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 4}]")
    lines: list[str] = []
    out = train(tiny_config(tmp_path, tiny_model_dir, "sv", *both), echo=lines.append)
    assert out["finished"] and out["steps"] == 1
    records = list(read_records(tmp_path / "sv/rollouts.msgpack"))
    solver = [r for r in records if r["role"] == "solver"]
    verifier = [r for r in records if r["role"] == "verifier"]
    groups = {}
    for r in solver:
        groups.setdefault(r["problem_id"], []).append(r["reward"]["verdict"] == "correct")
    with_right = sum(any(v) for v in groups.values())
    with_wrong = sum(not all(v) for v in groups.values())
    judged = 2 * min(with_right, with_wrong)  # as many right as wrong answers judged (none when one class is absent)
    assert len(solver) == 8 and len(verifier) == 2 * judged  # G = 2 replies per judged answer
    assert all(r["question"].endswith("then say CORRECT or WRONG.") for r in verifier)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics = client.get_run(out["run_id"]).data.metrics
    def approval(gold: str) -> float:
        replies = [r["reward"]["extracted"] == "CORRECT" for r in verifier if r["gold"] == gold]
        return sum(replies) / max(len(replies), 1)

    assert metrics["verifier/groups"] == judged
    assert metrics["verifier/approve_right"] == pytest.approx(approval("CORRECT"))
    assert metrics["verifier/approve_wrong"] == pytest.approx(approval("WRONG"))
    assert any("verifier approves right" in line for line in lines)
