"""Shared fixtures: one local Ray cluster per test session, and the tiny model built once."""
from __future__ import annotations

import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_jsonl(relative: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / relative).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def local_cluster():
    """A real local Ray cluster (head with 4 CPUs) shared by the session; tests may add and remove nodes."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "include_dashboard": False})
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def ray_cluster(local_cluster):
    """The `ray` module, connected to the session's cluster."""
    import ray

    return ray


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random Qwen2 model + BPE tokenizer, built locally once per session."""
    from cluster.modelzoo import build_model

    return str(build_model(tmp_path_factory.mktemp("models") / "tiny-qwen2", "tiny"))
