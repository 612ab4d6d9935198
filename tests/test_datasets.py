"""Datasets by name (halo-forge's command shape): the registry, the shipped sample files, a clear line when the hub
cannot be reached, and the short forms `rlvr train --dataset/--algo/--cycles` standing for their `--set` spellings."""
from __future__ import annotations

import argparse

import pytest

from synthesis.datasets import KNOWN_DATASETS, DatasetUnavailable, resolve_problems


def test_every_known_dataset_ships_a_sample_that_loads(capsys):
    from cluster.cli import main
    from synthesis.sft_data import load_sft_rows

    assert main(["datasets"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("gsm8k", "math", "math500", "metamath", "aime", "ours"))
    for d in KNOWN_DATASETS.values():
        if d.kind == "metamath":
            rows, skipped = load_sft_rows(str(d.sample_path()))
            assert len(rows) == 5 and skipped == 0 and rows[0].kind == "metamath"
        elif d.sample:
            problems = resolve_problems(str(d.sample_path()))
            assert problems and all(p.question and p.answer for p in problems)
    assert len(resolve_problems("ours", limit=12)) == 12


def test_a_name_without_the_hub_says_which_local_file_to_use(monkeypatch):
    import synthesis.datasets as datasets

    monkeypatch.setattr(datasets, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(DatasetUnavailable, match="gsm8k_sample.jsonl") as caught:
        resolve_problems("gsm8k", limit=10)
    assert "\n" not in str(caught.value) and "openai/gsm8k" in str(caught.value)


def test_train_short_forms_are_the_set_overrides_they_stand_for():
    from cluster.cli import train_short_forms
    from cluster.config import load_config

    args = argparse.Namespace(dataset="synthesis/data/gsm8k_sample.jsonl", algo="raft", cycles=4, init_adapter=None)
    overrides = train_short_forms(args)
    cfg = load_config("tiny", overrides=overrides)
    assert cfg.algo == "raft" and cfg.raft.cycles == 4 and cfg.curriculum.mode == "fixed"
    assert [s.data for s in cfg.stages] == ["synthesis/data/gsm8k_sample.jsonl"] and cfg.stages[0].name == "gsm8k_sample"
    assert train_short_forms(argparse.Namespace(dataset=None, algo=None, cycles=None, init_adapter=None)) == []
