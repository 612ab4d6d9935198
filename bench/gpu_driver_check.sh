#!/usr/bin/env bash
# On the lent GPU machine, after the bundle is unpacked (see ../shared/gpu/README.md): install the pure-Python
# extras carried in .gpu-extra/ (mlflow-skinny, latex2sympy2_extended), build a random-weight model of
# Qwen2.5-0.5B's shape, and run the real driver (`rlvr train --preset qwen2.5-0.5b`: vLLM rollout + learner on
# fractional GPU shares, verifier pool on the CPUs) for two short stages. Logs and state land in $OUT.
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD:/tmp/site-extra VLLM_USE_FLASHINFER_SAMPLER=0 MLFLOW_TRACKING_URI=file:///tmp/mlruns
OUT=${OUT:-/tmp/out}
[ -d /tmp/site-extra/mlflow ] || pip install -q --no-index --find-links .gpu-extra --target /tmp/site-extra \
  mlflow-skinny latex2sympy2_extended >/dev/null 2>&1
python3 -c "from cluster.modelzoo import build_model; build_model('/tmp/q05', 'qwen2.5-0.5b')" >/dev/null 2>&1
DEFAULT_STAGES='stages=[{name: easy, difficulty: 1, epochs: 1, problems: 64}, {name: medium, difficulty: 2, epochs: 1, problems: 64}]'
STAGES=${STAGES:-$DEFAULT_STAGES}
python3 -m cluster.cli train --preset qwen2.5-0.5b --set model.name=/tmp/q05 --set run_dir="$OUT/run" \
  --set rollout.workers=1 --set rollout.gpus_per_worker=0.5 --set rollout.max_tokens=256 --set learner.gpus=0.5 \
  --set batch_size=32 --set eval_problems=32 --set "$STAGES" \
  "$@" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/train.log" | grep -E "held-out|step|after|---|start|sft|easy|medium|Error|error" | tail -40
