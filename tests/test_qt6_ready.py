"""QGIS 4 (Qt6) readiness, checked statically on every Python file of the plugin (issue 26, item 1): PyQt6 has no
short-form enums (``Qt.UserRole`` must be ``Qt.ItemDataRole.UserRole``), so any enum value reached through its
class instead of its enum type fails here; QGIS enums too (their 3.22 scoped names or, through
algorithms/compat.qgis_enum, the new ``Qgis.*`` names); ``exec_()`` is gone in PyQt6. The metadata admits QGIS 4."""
import ast
import importlib
import os

from conftest import ROOT

SKIP = {".venv", "build", "tests", "bench", ".git", "__pycache__", "scripts", ".qgis-settings"}


def _plugin_files():
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(base, name)


def _imported(tree):
    """Names imported from qgis.PyQt.*, qgis.core and qgis.gui, with their objects."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("qgis.PyQt", "qgis.core",
                                                                                          "qgis.gui")):
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name, None)
    return names


def short_form_enums(path: str) -> list[str]:
    """``file:line Class.Member`` for every enum value reached through a class rather than its enum type."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = _imported(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and names.get(node.value.id):
            value = getattr(names[node.value.id], node.attr, None)
            kind = type(value)
            if isinstance(value, int) and kind not in (int, bool) and kind.__name__ != node.value.id:
                found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.value.id}.{node.attr} "
                             f"(use {node.value.id}.{kind.__name__}.{node.attr})")
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} exec_() (use exec())")
    return found


def test_no_qt5_only_construct_in_the_plugin():
    files = list(_plugin_files())
    assert len(files) > 20
    problems = [p for path in files for p in short_form_enums(path)]
    assert problems == []


def test_the_check_finds_short_forms(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from qgis.PyQt.QtCore import Qt\nfrom qgis.core import QgsTask\n"
                      "a = Qt.UserRole\nb = Qt.ItemDataRole.UserRole\nc = QgsTask.CanCancel\nd = QgsTask.Flag.CanCancel\n")
    found = short_form_enums(str(sample))
    assert [f.split()[1] for f in found] == ["Qt.UserRole", "QgsTask.CanCancel"]


def test_metadata_admits_qgis_4():
    text = open(os.path.join(ROOT, "metadata.txt"), encoding="utf-8").read()
    assert "qgisMinimumVersion=3.22" in text and "qgisMaximumVersion=4.99" in text
