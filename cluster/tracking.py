"""Tracking: MLflow (params, per-step metrics, artifacts) and the same key metrics as Ray dashboard gauges."""
from __future__ import annotations

import json
import os
import pathlib
import tempfile


def flatten(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested config → {"learner.lr": "1e-05", ...} (MLflow params are flat strings)."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}.{i}."))
        else:
            out[name] = str(value)[:500]
    return out


def default_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else a sqlite store under ./mlruns."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = pathlib.Path("mlruns").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


class Tracker:
    """One MLflow run (new, or resumed by id) plus Ray gauges for the dashboard."""

    DASHBOARD_KEYS = ("reward/total", "accuracy", "zero_spread_groups", "kl", "rollout_tokens_per_s", "stage_index")

    def __init__(self, uri: str | None, experiment: str, run_id: str | None = None, run_name: str | None = None) -> None:
        import mlflow

        self.mlflow = mlflow
        self.uri = uri or default_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        artifacts = pathlib.Path("mlruns/artifacts").resolve()
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri() if self.uri.startswith("sqlite") else None)
        mlflow.set_experiment(experiment)
        self.run = mlflow.start_run(run_id=run_id, run_name=run_name)
        self.run_id = self.run.info.run_id
        self._logged: set[tuple[str, int]] = set()
        self._gauges = self._ray_gauges()

    def _ray_gauges(self) -> dict:
        try:
            import ray
            from ray.util.metrics import Gauge

            if not ray.is_initialized():
                return {}
            return {k: Gauge("rlvr_" + k.replace("/", "_"), f"Training: {k}") for k in self.DASHBOARD_KEYS}
        except Exception:  # noqa: BLE001 - the dashboard is an aid, tracking goes on without it
            return {}

    def log_params(self, params: dict) -> None:
        flat = flatten(params)
        items = list(flat.items())
        for i in range(0, len(items), 100):
            self.mlflow.log_params(dict(items[i : i + 100]))

    def skip_logged(self) -> None:
        """A resumed run replays the steps after its checkpoint, some of which the run already logged: from now
        on a (metric, step) this run holds is not logged again, so MLflow has each step once."""
        client = self.mlflow.MlflowClient(self.uri)
        self._logged = {(key, m.step) for key in client.get_run(self.run_id).data.metrics
                        for m in client.get_metric_history(self.run_id, key)}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        clean = {k: v for k, v in clean.items() if (k, step) not in self._logged}
        if clean:
            self.mlflow.log_metrics(clean, step=step)
        for key, gauge in self._gauges.items():
            if key in metrics:
                gauge.set(float(metrics[key]))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = pathlib.Path(path)
        if path.is_dir():
            self.mlflow.log_artifacts(str(path), artifact_path)
        else:
            self.mlflow.log_artifact(str(path), artifact_path)

    def log_json(self, data, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = pathlib.Path(tmp) / name
            target.write_text(json.dumps(data, indent=2, default=str))
            self.mlflow.log_artifact(str(target))

    def close(self) -> None:
        self.mlflow.end_run()

    def suspend(self, reason: str) -> None:
        """End this process's hold on the run (KILLED, with the reason as a tag) so it can be resumed by id."""
        try:
            self.mlflow.set_tag("restarted", reason[:5000])
        finally:
            self.mlflow.end_run(status="KILLED")

    def fail(self, error: str) -> None:
        """End the run as FAILED with the error as a tag."""
        try:
            self.mlflow.set_tag("error", error[:5000])
        finally:
            self.mlflow.end_run(status="FAILED")
