"""``python -m stf_fusion <algorithm> --NAME=value ...``: the algorithms without QGIS (see core/cli.py)."""
if __name__ == "__main__":  # not when a worker process re-imports the main module
    from .core.cli import main

    raise SystemExit(main())
