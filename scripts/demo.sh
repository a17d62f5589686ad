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

for method in starfm estarfm fsdaf fitfc; do
    echo "== stf:fuse_$method: every date without a fine image"
    "$QP" --json run "stf:fuse_$method" -- "${fine[@]}" "${coarse[@]}" OUTPUT_FOLDER="$OUT/predictions" \
        > "$OUT/fuse_$method.json"
    "$ROOT/.venv/bin/python" - "$OUT/fuse_$method.json" <<'PY'
import json, sys
print("  " + json.load(open(sys.argv[1]))["log"]["info"][-1])
PY
done

echo "== stf:fuse_additive: nearest fine image + coarse change (the untrained start of the deep methods)"
"$QP" --json run stf:fuse_additive -- "${fine[@]}" "${coarse[@]}" OUTPUT_FOLDER="$OUT/predictions" \
    > "$OUT/fuse_additive.json"

echo "== stf:fuse_auto (defaults): the best prediction without expertise, with a per-pixel error estimate"
"$QP" --json run stf:fuse_auto -- "${fine[@]}" "${coarse[@]}" OUTPUT_FOLDER="$OUT/predictions" \
    > "$OUT/fuse_auto.json"
"$ROOT/.venv/bin/python" - "$OUT/fuse_auto.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"  {len(r['OUTPUT_FILES'])} dates, {r['CHOSEN']}; error estimates in predictions/uncertainty/")
PY

# Deep methods with their DEFAULT settings (early stopping on held-out pairs), and with EPOCHS=0: the untrained
# model each one starts from, predicted into $OUT/untrained for the comparison below.
train() {  # train(method)
    local method=$1
    echo "== stf:train_$method (default settings) -> $OUT/models/$method.stfmodel"
    "$QP" --json run "stf:train_$method" -- "${fine[@]}" "${coarse[@]}" \
        MODEL="$OUT/models/$method.stfmodel" > "$OUT/train_$method.json"
    "$ROOT/.venv/bin/python" - "$OUT/train_$method.json" <<'PY'
import json, sys
for line in json.load(open(sys.argv[1]))["log"]["info"]:
    if "kept epoch" in line or "held-out RMSE" in line:
        print("  " + line)
PY
    "$QP" --json run "stf:train_$method" -- "${fine[@]}" "${coarse[@]}" EPOCHS=0 \
        MODEL="$OUT/models/${method}_untrained.stfmodel" > "$OUT/train_${method}_untrained.json"
    echo "== stf:predict with $method.stfmodel and ${method}_untrained.stfmodel"
    "$QP" --json run stf:predict -- MODEL="$OUT/models/$method.stfmodel" "${fine[@]}" "${coarse[@]}" \
        OUTPUT_FOLDER="$OUT/predictions" > "$OUT/predict_$method.json"
    "$QP" --json run stf:predict -- MODEL="$OUT/models/${method}_untrained.stfmodel" "${fine[@]}" \
        "${coarse[@]}" OUTPUT_FOLDER="$OUT/untrained" > "$OUT/predict_${method}_untrained.json"
}
for method in stfdcnn dcnn stf3dcnn dcstfn; do train $method; done

echo "== stf:train_stfsr (sparse representation, STFDCNN's baseline; no epochs) and stf:predict"
"$QP" --json run stf:train_stfsr -- "${fine[@]}" "${coarse[@]}" MODEL="$OUT/models/stfsr.stfmodel" \
    > "$OUT/train_stfsr.json"
"$QP" --json run stf:predict -- MODEL="$OUT/models/stfsr.stfmodel" "${fine[@]}" "${coarse[@]}" \
    OUTPUT_FOLDER="$OUT/predictions" > "$OUT/predict_stfsr.json"

echo "== Deep methods against their baselines (mean RMSE over every predicted date, reflectance)"
"$ROOT/.venv/bin/python" - "$OUT" "$SAMPLE" "$PLUGIN_DIR" <<'PY'
import glob, os, sys
sys.path.insert(0, sys.argv[3])
import numpy as np
from stf_fusion.core.metrics import rmse
from stf_fusion.core.raster import read_block

out, sample = sys.argv[1:3]

def mean_rmse(pattern):
    values = []
    for path in sorted(glob.glob(pattern)):
        date = os.path.basename(path).rsplit("_", 1)[1][:-4]
        truth, ok = read_block(os.path.join(sample, "truth", f"truth_{date}.tif"), scale=1e-4)
        pred, ok2 = read_block(path, scale=1e-4)
        values.append(float(np.mean(rmse(pred, truth, ok & ok2))))
    return float(np.mean(values)), len(values)

# every method in predictions/ (file names <method>_<date>.tif), each read once
methods = sorted({os.path.basename(p).rsplit("_", 1)[0] for p in glob.glob(f"{out}/predictions/*.tif")})
scores = {m: mean_rmse(f"{out}/predictions/{m}_*.tif") for m in methods}
naive, n = scores["naive"]
additive = scores["additive"][0]
print(f"  {n} dates; naive {naive:.4f}, additive {additive:.4f}")
def verdict(value, baselines):
    return ", ".join(f"{'beats' if value < v else 'does NOT beat'} {name} ({100 * (value / v - 1):+.1f} %)"
                     for name, v in baselines)

for method in ("stfdcnn", "dcnn", "stf3dcnn", "dcstfn"):
    trained = scores[method][0]
    untrained, _ = mean_rmse(f"{out}/untrained/{method}_*.tif")
    print(f"  {method}: {trained:.4f} (untrained {untrained:.4f}): "
          + verdict(trained, (("naive", naive), ("additive", additive), ("its untrained start", untrained))))
stfsr, stfdcnn = scores["stfsr"][0], scores["stfdcnn"][0]
print(f"  stfsr: {stfsr:.4f}: " + verdict(stfsr, (("naive", naive), ("additive", additive)))
      + f"; STFDCNN {'beats' if stfdcnn < stfsr else 'does NOT beat'} it, as in its paper")

print("== stf:fuse_auto against every single method (mean RMSE over every predicted date, reflectance)")
auto = scores.pop("auto")[0]
best = min(scores, key=lambda m: scores[m][0])
value = scores[best][0]
print(f"  auto {auto:.4f}; best single method {best} {value:.4f} ({100 * (auto / value - 1):+.1f} %), "
      f"of {len(scores)}: " + ", ".join(f"{m} {v:.4f}" for m, (v, _) in sorted(scores.items())))
PY

echo "== stf:evaluate: every method against the truth, naive as the MAEC baseline"
preds=()
for f in "$OUT"/predictions/*.tif; do preds+=("PREDICTIONS=$f"); done
refs=()
for f in "$SAMPLE"/truth/truth_*.tif; do refs+=("REFERENCES=$f"); done
base=()
for f in "$OUT"/predictions/naive_*.tif; do base+=("BASELINE=$f"); done
"$QP" --json run stf:evaluate -- "${preds[@]}" "${refs[@]}" "${base[@]}" \
    OUTPUT_CSV="$OUT/evaluation.csv" OUTPUT_HTML="$OUT/evaluation.html" > "$OUT/evaluate.json"
"$ROOT/.venv/bin/python" - "$OUT/evaluate.json" <<'PY'
import json, sys
for line in json.load(open(sys.argv[1]))["log"]["info"]:
    if not line.startswith("Conventions"):
        print("  " + line)
PY
echo "== Done: outputs in $OUT; open $OUT/evaluation.html"
