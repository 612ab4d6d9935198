#!/usr/bin/env bash
# Downloads the pure-Python packages the GPU machine lacks beyond ../shared/gpu's bundle (MLflow, the LaTeX
# parser, TRL and its `datasets`, Liger kernels, pebble) as Python 3.12 wheels into .gpu-extra/ (ignored by
# git). On the device: `pip install -q --no-index --no-deps --target /tmp/site-extra .gpu-extra/*.whl`.
set -euo pipefail
out=${1:-.gpu-extra}
mkdir -p "$out"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$out" mlflow-skinny==3.17.2 databricks-sdk gitpython gitdb smmap sqlparse importlib_metadata google-auth \
  pyasn1 pyasn1-modules rsa latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 pebble==5.2.3 \
  trl==1.16.0 liger-kernel==0.8.5 datasets==4.8.5 multiprocess==0.70.19 lazy-importer==0.1.0
ls "$out"; du -sh "$out"
