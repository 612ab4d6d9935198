#!/usr/bin/env bash
# Issue 15's GPU measurements on the lent H100, after ../shared/gpu's bundle is unpacked (README there) and with
# .gpu-extra/ carried (bench/gpu_extra.sh builds it). One part per call, each writing JSON into $OUT:
#   bash bench/gpu_throughput.sh learner   # bench/learner.py: MFU of the packed/fp32/Liger learner, 64 × 8 × 512
#   bash bench/gpu_throughput.sh overlap   # rlvr train, 0.5B shape: async_steps 0 vs 1 (step seconds, GPU idle);
#                                          # the async run starts from a 2-step SFT, so vLLM's merge path runs too
#   bash bench/gpu_throughput.sh trl       # bench/vs_trl.py --gpu: TRL GRPOTrainer (vLLM colocated) vs rlvr train
#   bash bench/gpu_throughput.sh multiturn # bench/multiturn_rollout.py --engine vllm: 4-turn vs 1-turn episodes, same tokens
#   bash bench/gpu_throughput.sh tree      # bench/learner.py, 0.5B shape: flat vs tree packing, GSM8K- and verifier-shaped;
#                                          # then bench/vs_trl.py --gpu --workload gsm8k: TRL vs rlvr flat vs rlvr tree
#   bash bench/gpu_throughput.sh score     # bench/engine_score.py --vllm: the teacher's screening pass, vLLM vs transformers
set -uo pipefail
export MLFLOW_ALLOW_FILE_STORE=true PYTHONPATH=/tmp/site:$PWD:/tmp/site-extra VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 \
  MLFLOW_TRACKING_URI=file:///tmp/mlruns TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}
[ -d /tmp/site-extra/mlflow ] || pip install -q --no-index --no-deps --target /tmp/site-extra .gpu-extra/*.whl 2>&1 | tail -2
python3 -c "import torch, liger_kernel, trl, vllm, ray; print('torch', torch.__version__, 'trl', trl.__version__, 'vllm', vllm.__version__, 'ray', ray.__version__)"
STEPS=${STEPS:-6}
case "${1:-}" in
  learner) python3 bench/learner.py --out "$OUT" --name learner-after.json --settings "${SETTINGS:-ckpt:32,nockpt:32,nockpt:32:noliger,nockpt:64}" 2>&1 | grep -v Warn ;;
  overlap)
    python3 bench/vs_trl.py --gpu --only rlvr --steps "$STEPS" --out "$OUT" --name overlap-sync.json --set async_steps=0 2>&1 | grep -E "step|Error|error|rlvr|{" | tail -25
    python3 bench/vs_trl.py --gpu --only rlvr --steps "$STEPS" --out "$OUT" --name overlap-async.json --set async_steps=1 \
      --set sft.enabled=true --set sft.steps=2 --set sft.problems=64 --set sft.batch_size=32 2>&1 | grep -E "step|sft|merged|held-out|Error|error|rlvr|{" | tail -30 ;;
  trl) python3 bench/vs_trl.py --gpu --steps "$STEPS" --out "$OUT" "${@:2}" 2>&1 | grep -vi "warn" | tail -40 ;;
  multiturn) python3 bench/multiturn_rollout.py --engine vllm --out "$OUT" "${@:2}" 2>&1 | grep -E "^\{|Error|error" | tail -12 ;;
  tree) for w in gsm8k verifier; do python3 bench/learner.py --workload "$w" --packing flat,tree --settings nockpt:8 \
      --out "$OUT" --name "learner-tree-$w.json" 2>&1 | grep -E "^\{|Error|error" | tail -4; done
    python3 bench/vs_trl.py --gpu --workload gsm8k --prompts 64 --max-tokens 300 --packing flat,tree --steps "$STEPS" \
      --set model.gradient_checkpointing=false \
      --out "$OUT" --name vs_trl-gpu-gsm8k.json 2>&1 | grep -E "rlvr|TRL|Error|error" | tail -12 ;;
  score) python3 bench/engine_score.py --vllm --out "$OUT" 2>&1 | grep -E "^\{|Error|error" | tail -6 ;;
  *) echo "usage: bash bench/gpu_throughput.sh learner|overlap|trl|multiturn|tree|score"; exit 2 ;;
esac
