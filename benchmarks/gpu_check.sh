#!/usr/bin/env bash
# One prepared run for a lent GPU machine (issue #12): the gpu-marked tests and the NCF training
# speed on CUDA, on ml-1m. The machine has Python with torch (CUDA), numba, numpy, scipy, typer,
# rich, pytest and hypothesis, and no network (no hatchling to install dotrec: it runs from src/).
# The data does not travel from ../shared: copy it into the ignored folder .data first, here:
#   echo /.data/ >> .git/info/exclude; mkdir -p .data && cp -r ../shared/data/ml-1m .data/
# then call the device tool's run with carry [".data"] and the command
#   bash benchmarks/gpu_check.sh
# Logs and JSON land in $OUT (the device tool brings them back).
set -uo pipefail
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
export DOTREC_DATA_DIR="$PWD/.data" PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/device.txt"
python3 -m pytest -q -m gpu -rs tests/models/test_ncf_train.py -p no:cacheprovider 2>&1 \
  | tee "$OUT/gpu_tests.log"
timeout 420 python3 benchmarks/ncf.py --sections speed --device cuda --speed-factors 16,64 \
  --json "$OUT/ncf_speed_cuda.json" 2>&1 | tee "$OUT/ncf_speed_cuda.log"
