#!/usr/bin/env bash
# The main job on the bundled sample, through qgis_process (what a user scripts). Each method issue extends it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
QP="$ROOT/scripts/qgis_process"
SAMPLE="$ROOT/resources/sample"
OUT="$ROOT/build/demo"
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== Algorithms of the stf provider"
"$QP" list 2>/dev/null | grep -E '^\s+stf:' | sed 's/^\s*/  /'

echo "== stf:make_sample_series -> $OUT/sample (the default series, as bundled in resources/sample)"
"$QP" --json run stf:make_sample_series -- OUTPUT_FOLDER="$OUT/sample" > "$OUT/make_sample_series.json"
"$ROOT/.venv/bin/python" - "$OUT/make_sample_series.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"  {len(r['FINE'])} fine pairs, {len(r['COARSE'])} coarse dates, {len(r['TRUTH'])} truth images")
PY

echo "== stf:resample_coarse: the bundled coarse images onto the fine grid (bicubic)"
args=()
for f in "$SAMPLE"/coarse/coarse_*.tif; do args+=("COARSE=$f"); done
"$QP" --json run stf:resample_coarse -- "${args[@]}" REFERENCE="$SAMPLE/fine/fine_2021-04-01.tif" \
    METHOD=bicubic OUTPUT_FOLDER="$OUT/coarse_on_fine_grid" > "$OUT/resample_coarse.json"
"$ROOT/.venv/bin/python" - "$OUT/resample_coarse.json" <<'PY'
import json, sys
from osgeo import gdal
files = json.load(open(sys.argv[1]))["results"]["OUTPUT_FILES"]
ds = gdal.Open(files[0])
print(f"  {len(files)} files, {ds.RasterXSize} x {ds.RasterYSize} x {ds.RasterCount} at {ds.GetGeoTransform()[1]:g} m")
PY
echo "== stf:fuse_naive: the nearest-fine-image benchmark for every date without a fine image"
fine=()
for f in "$SAMPLE"/fine/fine_*.tif; do fine+=("FINE=$f"); done
coarse=()
for f in "$OUT"/coarse_on_fine_grid/coarse_*.tif; do coarse+=("COARSE=$f"); done
"$QP" --json run stf:fuse_naive -- "${fine[@]}" "${coarse[@]}" OUTPUT_FOLDER="$OUT/predictions" \
    > "$OUT/fuse_naive.json"

for method in starfm estarfm fsdaf; do
    echo "== stf:fuse_$method: every date without a fine image"
    "$QP" --json run "stf:fuse_$method" -- "${fine[@]}" "${coarse[@]}" OUTPUT_FOLDER="$OUT/predictions" \
        > "$OUT/fuse_$method.json"
    "$ROOT/.venv/bin/python" - "$OUT/fuse_$method.json" <<'PY'
import json, sys
print("  " + json.load(open(sys.argv[1]))["log"]["info"][-1])
PY
done

# Deep methods with a small, fast training budget (real use trains longer: see each algorithm's help)
train() {  # train(method, extra args...)
    local method=$1; shift
    echo "== stf:train_$method (small budget) -> $OUT/models/$method.stfmodel"
    "$QP" --json run "stf:train_$method" -- "${fine[@]}" "${coarse[@]}" "$@" \
        MODEL="$OUT/models/$method.stfmodel" > "$OUT/train_$method.json"
    echo "== stf:predict with $method.stfmodel"
    "$QP" --json run stf:predict -- MODEL="$OUT/models/$method.stfmodel" "${fine[@]}" "${coarse[@]}" \
        OUTPUT_FOLDER="$OUT/predictions" > "$OUT/predict_$method.json"
}
train stfdcnn EPOCHS=2 STRIDE=32 OPTIMIZER=adam
train dcnn EPOCHS=3 MAX_PATCHES=30000
train stf3dcnn EPOCHS=5 MAX_SAMPLES=48

echo "== stf:evaluate: every method against the truth, naive as the MAEC baseline"
preds=()
for f in "$OUT"/predictions/*.tif; do preds+=("PREDICTIONS=$f"); done
refs=()
for f in "$SAMPLE"/truth/truth_*.tif; do refs+=("REFERENCES=$f"); done
base=()
for f in "$OUT"/predictions/naive_*.tif; do base+=("BASELINE=$f"); done
"$QP" --json run stf:evaluate -- "${preds[@]}" "${refs[@]}" "${base[@]}" RATIO=0.0625 \
    OUTPUT_CSV="$OUT/evaluation.csv" OUTPUT_HTML="$OUT/evaluation.html" > "$OUT/evaluate.json"
"$ROOT/.venv/bin/python" - "$OUT/evaluate.json" <<'PY'
import json, sys
for line in json.load(open(sys.argv[1]))["log"]["info"]:
    if not line.startswith("Conventions"):
        print("  " + line)
PY
echo "== Done: outputs in $OUT; open $OUT/evaluation.html"
