"""Dependencies installed from inside QGIS without breaking it (issue 26, item 3): pip --target into a private
folder per Python version, appended after QGIS's own packages, with numpy & co. never shadowed; tested against a
throwaway folder with locally built wheels (no network)."""
import os
import sys
import zipfile

import numpy
import pytest

from stf_fusion.core.errors import StfError
from stf_fusion.core.installer import activate, install, pip_command, private_site


def _wheel(folder, name, modules):
    """A minimal pure-Python wheel holding ``modules`` (top-level package names)."""
    path = os.path.join(folder, f"{name}-0.1-py3-none-any.whl")
    info = f"{name}-0.1.dist-info"
    files = {f"{m}/__init__.py": f"WHERE = __file__\n" for m in modules}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in list(files) + [f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for f, text in files.items():
            zf.writestr(f, text)
    return path


def test_private_site_is_per_python_version(tmp_path):
    site = private_site(str(tmp_path))
    assert site == os.path.join(str(tmp_path), f"python{sys.version_info.major}.{sys.version_info.minor}")
    command = pip_command(["torch"], site, "python3")
    assert command[:6] == ["python3", "-m", "pip", "install", "--target", site]


def test_install_into_a_throwaway_folder_never_shadows_numpy(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(str(wheels), "stf_demo_pkg", ["stf_demo_pkg", "numpy"])  # brings a 'numpy' along, as a dependency might
    target = private_site(str(tmp_path / "deps"))
    before = list(sys.path)
    try:
        removed = install(["stf_demo_pkg"], target, sys.executable, extra=["--no-index", "--find-links", str(wheels)])
        assert removed == ["numpy"]  # QGIS's own numpy stays the one imported
        assert os.path.isdir(os.path.join(target, "stf_demo_pkg"))
        assert sys.path[-1] == target  # after every folder QGIS has
        import stf_demo_pkg

        assert stf_demo_pkg.WHERE.startswith(target)
        assert not numpy.__file__.startswith(target)
        assert activate(target) and sys.path.count(target) == 1
    finally:
        sys.path[:] = before
        sys.modules.pop("stf_demo_pkg", None)


def test_a_failed_install_says_how_to_do_it_by_hand(tmp_path):
    with pytest.raises(StfError, match="(?s)failed.*To install by hand.*--target"):
        install(["stf-no-such-package"], str(tmp_path / "d"), sys.executable,
                extra=["--no-index", "--find-links", str(tmp_path)])
