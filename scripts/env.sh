# Environment for running QGIS headless with this plugin; sourced by the other scripts.
# Sets ROOT, VENV, PLUGIN_ID, PLUGIN_DIR and the variables qgis_process needs (see ../shared/ENV.md notes in the
# README): offscreen Qt, a throwaway profile, the plugin path and the venv's packages.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PLUGIN_ID=stf_fusion
PLUGIN_DIR="$ROOT/build/plugins"
export QT_QPA_PLATFORM=offscreen
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$ROOT/build/xdg-runtime}"
export QGIS_CUSTOM_CONFIG_PATH="${QGIS_CUSTOM_CONFIG_PATH:-$ROOT/build/qgis-profile}"
export QGIS_PLUGINPATH="$PLUGIN_DIR"
# QGIS 3.22 start-up prints "setapi() is deprecated" from its own code on every run
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning}"
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)"
export PYTHONPATH="$PLUGIN_DIR${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$XDG_RUNTIME_DIR" "$QGIS_CUSTOM_CONFIG_PATH" "$PLUGIN_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
# The plugin folder QGIS loads: a link named after the plugin id to the repository root.
[ -L "$PLUGIN_DIR/$PLUGIN_ID" ] || ln -sfn ../.. "$PLUGIN_DIR/$PLUGIN_ID"
