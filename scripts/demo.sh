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
echo "== Done: outputs in $OUT"
