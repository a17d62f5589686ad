#!/usr/bin/env bash
# Idempotent set-up on Debian 12: QGIS 3.22 + GDAL from Debian, a venv with the pinned pip requirements.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PACKAGES="qgis python3-qgis qgis-providers python3-venv python3-matplotlib"
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "Installing Debian packages: $PACKAGES"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
# Debian's interpreter: the qgis bindings are built for it.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -c "import numpy, scipy, torch; from osgeo import gdal_array; import qgis.core; \
print('set-up ok: numpy', numpy.__version__, '| torch', torch.__version__, '| GDAL', gdal_array.gdal.__version__)"
