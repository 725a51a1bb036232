#!/usr/bin/env bash
# Every check that needs a GPU, in one go (a lent GPU machine's time is short):
# the CUDA tests, then the fast-path and device-grid benchmarks on the GPU.
#   bash benchmarks/gpu_checks.sh [OUT_DIR]     (logs go to OUT_DIR, default $OUT or ./gpu-logs)
# The machine needs torch and jax with CUDA, and imle_solvers' own dependencies
# (numpy, scipy, networkx, joblib, pyyaml, jsonschema, array-api-compat, click, tqdm).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-logs}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || exit 1
python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_torch_layer.py tests/test_native_path.py \
    tests/test_grid_bellman_ford.py 2>&1 | tee "$out/cuda-tests.log"
(cd benchmarks && python3 bench_fast_path.py --device cuda) 2>&1 | tee "$out/bench-fast-path-cuda.log"
(cd benchmarks && python3 bench_grid_device.py --device cuda) 2>&1 | tee "$out/bench-grid-device-cuda.log"
