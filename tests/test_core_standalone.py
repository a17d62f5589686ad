"""core/ must run where QGIS is not installed (a GPU machine, a command line, a distributed worker)."""
import subprocess
import sys

from conftest import PLUGIN_DIR

SCRIPT = """
import sys, importlib, pkgutil
sys.modules['qgis'] = None  # any 'import qgis' now fails
import stf_fusion.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, 'stf_fusion.core.')]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_core_module_imports_without_qgis():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env={"PYTHONPATH": PLUGIN_DIR, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 25
