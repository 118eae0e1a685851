#!/usr/bin/env bash
# The main job, end to end on the default data (ml-100k), on CPU:
#   set up -> build the ml-100k Turtle -> ingest it -> encode node features
#   (pre-training CLIP on the catalog's posters when no CLIP checkpoint is given; neither CLIP
#   pre-training nor CLIP encoding when the training config uses no image feature: use_image and
#   use_clip_text both false, and no image / clip_text item-item graph) -> train the model -> test metrics -> top-10 for one user, explained.
# Data: --data-dir / MMKGREC_DATA / ../shared/data/ml-100k beside the checkout / ./data/ml-100k.
# Environment knobs: OUT (work folder, default runs/ml-100k), THREADS (torch threads, default 1),
# CONFIG (the training config, default configs/ml100k.toml),
# CLIP_MODEL + CLIP_PRETRAINED (an open_clip checkpoint to use instead of catalog pre-training).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-runs/ml-100k}
THREADS=${THREADS:-1}
CONFIG=${CONFIG:-configs/ml100k.toml}
export OMP_NUM_THREADS=$THREADS
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
mkdir -p "$OUT"

echo "== 1/6 build the ml-100k multimodal KG as Turtle"
"$PY" -m kg.datasets.movielens ${DATA_DIR:+--data-dir "$DATA_DIR"} --out "$OUT/ml-100k.ttl"

echo "== 2/6 ingest it through the RDF path"
"$PY" -m kg ingest "$OUT/ml-100k.ttl" --out "$OUT/kg"

echo "== 3/6 node features (text LM; CLIP)"
# the effective config (file + TrainConfig defaults): does the model read a CLIP feature?
USES_CLIP=$("$PY" -c 'import sys
from training.config import ConfigError, parse_config
try:
    cfg = parse_config(["--config", sys.argv[1]])
except ConfigError as e:
    sys.exit(f"error: {e}")
graphs = {g.strip() for g in cfg.item_graphs.split(",")}
print(int(cfg.use_image or cfg.use_clip_text or bool(graphs & {"image", "clip_text"})))' "$CONFIG")
if [ "$USES_CLIP" = 0 ] && [ -z "${CLIP_PRETRAINED:-}" ]; then
  echo "   $CONFIG uses no image feature (use_image, use_clip_text false): no CLIP pre-training or encoding"
  "$PY" -m encoders encode --kg "$OUT/kg" --threads "$THREADS" --no-clip
elif [ -n "${CLIP_PRETRAINED:-}" ]; then
  "$PY" -m encoders encode --kg "$OUT/kg" --threads "$THREADS" \
      --clip-model "${CLIP_MODEL:?set CLIP_MODEL with CLIP_PRETRAINED}" --clip-pretrained "$CLIP_PRETRAINED"
else
  [ -f "$OUT/kg/clip/catalog_clip.pt" ] || "$PY" -m encoders pretrain-clip --kg "$OUT/kg" --config small --threads "$THREADS"
  "$PY" -m encoders encode --kg "$OUT/kg" --threads "$THREADS"
fi

echo "== 4/6 train (early stopping on validation NDCG@20)"
"$PY" train.py --config "$CONFIG" --kg "$OUT/kg" --out "$OUT/train" --threads "$THREADS"

echo "== 5/6 test metrics of the best-validation checkpoint"
"$PY" evaluate.py --checkpoint "$OUT/train/best.pt" --kg "$OUT/kg" --out-dir "$OUT/eval"

echo "== 6/6 top-10 for user 196, explained"
"$PY" explain.py --checkpoint "$OUT/train/best.pt" --kg "$OUT/kg" --user 196 --top 10
