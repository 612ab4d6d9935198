#!/usr/bin/env bash
# The lower bounds in pyproject.toml, checked: a fresh virtual environment with transformers and peft at exactly
# their floor versions runs the whole test suite, and the vLLM floor's wheel is read (it needs a CUDA torch to
# import) for the SamplingParams/EngineArgs fields the rollout engine passes. Run once after moving a floor:
#   bash bench/dependency_floors.sh            # ~20 min on 2 cores, mostly the suite
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/floors-XXXXXX)
trap 'rm -rf "$work"' EXIT

floor() {  # the version after ">=" for package $1 in pyproject.toml (dependencies or an extra)
  python3 - "$1" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
print(next(re.search(r">=([\w.]+)", s).group(1) for s in specs if re.match(rf"{sys.argv[1]}\b", s)))
EOF
}
transformers=$(floor transformers); peft=$(floor peft); vllm=$(floor vllm)
echo "floors: transformers==$transformers peft==$peft vllm==$vllm"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q torch==2.13.0
"$work/venv/bin/pip" install -q -e ".[dev]" "transformers==$transformers" "peft==$peft"
"$work/venv/bin/pip" list 2>/dev/null | grep -iE "^(torch|transformers|peft|tokenizers) "
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests

"$work/venv/bin/pip" download -q --no-deps -d "$work/wheels" "vllm==$vllm"
wheel=$(ls "$work"/wheels/vllm-*.whl)
for needed in "vllm/sampling_params.py:flat_logprobs" "vllm/engine/arg_utils.py:async_scheduling"; do
  unzip -p "$wheel" "${needed%%:*}" | grep -q "${needed##*:}" \
    || { echo "vllm==$vllm lacks ${needed##*:} (${needed%%:*})"; exit 1; }
done
echo "vllm==$vllm has flat_logprobs and async_scheduling"
echo "dependency floors hold"
