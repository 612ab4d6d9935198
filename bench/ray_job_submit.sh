#!/usr/bin/env bash
# `rlvr train` submitted as a Ray job to a head started on this machine: what a user does on a GPU box.
#   bash bench/ray_job_submit.sh [extra --set overrides...]
# Starts `ray start --head` (dashboard on 127.0.0.1:8265), submits a short tiny-model run with
# `ray job submit --working-dir .`, waits for it, prints the job's status, and stops the head.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rlvr-ray-job}
# Ray 2.60 turns token auth on for the head; the CLI sends the token (~/.ray/auth_token) only in token mode.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
ray get-auth-token --generate >/dev/null
rm -rf "$OUT" && mkdir -p "$OUT"
ray start --head --num-cpus "${NUM_CPUS:-4}" --dashboard-host 127.0.0.1 --dashboard-port 8265 --disable-usage-stats
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
for _ in $(seq 60); do curl -sf http://127.0.0.1:8265/api/version >/dev/null && break; sleep 1; done
ray job submit --address http://127.0.0.1:8265 --working-dir . --submission-id "rlvr-$(date +%s)" -- \
  rlvr train --set run_dir="$OUT/run" --set tracking_uri="sqlite:///$OUT/mlflow.db" \
  --set sft.steps=5 --set eval_problems=8 --set batch_size=8 --set group_size=4 \
  --set 'stages=[{name: easy, difficulty: 1, topics: {mental_math: 1}, epochs: 1, problems: 16}, {name: medium, difficulty: 2, topics: {mental_math: 1}, epochs: 1, problems: 16}]' \
  "$@" | tee "$OUT/job.log"
ray job list --address http://127.0.0.1:8265 | tail -n 3
python - "$OUT" <<'PY'
import json, pathlib, sys
state = json.loads((pathlib.Path(sys.argv[1]) / "run/state.json").read_text())
print(json.dumps({"steps": state["step"], "stage": state["stage"], "evals": state["evals"]}, indent=1))
assert state["stage"] == 2 and state["step"] == 4, state
PY
