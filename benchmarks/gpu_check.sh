#!/usr/bin/env bash
# GPU smoke benchmark: train the full model on ml-100k on CUDA with configs/ml100k.toml, then print the
# mean epoch time and the test metrics of the best-validation checkpoint; then one epoch each of our LightGCN,
# PyG's and the full model side by side (benchmarks/speed.py, ml-100k, into benchmarks/work/speed_gpu.md;
# SPEED=0 skips it). Meant to finish in < 5 minutes.
#
#   benchmarks/gpu_check.sh [KG_DIR] [extra train.py flags...]
#   DEVICE=cpu benchmarks/gpu_check.sh ...   # the same check on another device (default cuda)
#
# KG_DIR defaults to benchmarks/work/ml-kg; it is built from the ml-100k data when missing
# (python -m kg.datasets.movielens + python -m kg ingest), which needs the data folder (see kg/data_dir.py).
set -euo pipefail
cd "$(dirname "$0")/.."
KG="${1:-benchmarks/work/ml-kg}"
shift || true
OUT="benchmarks/work/runs/gpu_check"
if [ ! -f "$KG/schema.json" ]; then
    mkdir -p benchmarks/work
    python -m kg.datasets.movielens --out benchmarks/work/ml.ttl
    python -m kg ingest benchmarks/work/ml.ttl --out "$KG"
fi
DEVICE="${DEVICE:-cuda}"
if [ "$DEVICE" = cuda ]; then
    python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: CUDA is not available')"
fi
rm -rf "$OUT"
start=$(date +%s)
python train.py --config configs/ml100k.toml --kg "$KG" --out "$OUT" --device "$DEVICE" --progress false \
    --tensorboard false --test_resamples 0 "$@"
end=$(date +%s)
python - "$OUT/metrics.json" "$((end - start))" "$DEVICE" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
secs = m["epoch_seconds"]
print(f"device: {sys.argv[3]}  epochs: {len(secs)}  mean epoch time: {sum(secs) / len(secs):.2f}s  "
      f"best epoch: {m['best_epoch']}  wall: {sys.argv[2]}s")
print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in sorted(m["test"].items())
                             if k.split("@")[0] in ("recall", "ndcg", "hit")))
PY
if [ "${SPEED:-1}" != 0 ]; then
    python -m benchmarks.speed --datasets ml100k --variants lightgcn,lightgcn_pyg,id_only,all --kg "$KG" \
        --device "$DEVICE" --json benchmarks/work/speed_gpu.json | tail -n 8
fi
