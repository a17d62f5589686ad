"""Build the installable plugin zip: one top folder named after the plugin id, runtime files only."""
from __future__ import annotations

import os
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "stf_plugin", "algorithms", "core", "resources"]


def main(plugin_id: str, target: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in INCLUDE:
            path = os.path.join(ROOT, entry)
            files = [path] if os.path.isfile(path) else [
                os.path.join(folder, name) for folder, dirs, names in os.walk(path)
                for name in names if "__pycache__" not in folder and not name.endswith((".pyc", ".aux.xml"))
            ]
            for file in sorted(files):
                archive.write(file, os.path.join(plugin_id, os.path.relpath(file, ROOT)))
                count += 1
    print(f"{target}: {count} files under {plugin_id}/")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
