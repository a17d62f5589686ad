"""Run the benchmark cases: ``python -m bench.run [--case NAME ...] [--workdir DIR]``.

The timed steps run on the CPU; ``STF_BENCH_DEVICE=cuda`` runs them on the GPU instead (results named
``<case>.cuda.json``, one row each in the table beside the CPU's).

Each case's timed step runs in a fresh process, so its peak resident memory (ru_maxrss) is its own. Results go to
``bench/results/<case>.json`` and the table ``bench/results/README.md``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
sys.path.insert(0, os.path.join(ROOT, "build", "plugins"))


def _child(step: str, name: str, workdir: str, report: str) -> None:
    from bench.cases import CASES

    selected = CASES[name]
    if step == "prepare":
        selected.prepare(workdir)
        return
    start = time.perf_counter()
    extra = selected.run(workdir) or {}
    seconds = time.perf_counter() - start
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        extra["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)  # the CPU's peak is ru_maxrss
    with open(report, "w", encoding="utf-8") as fh:
        json.dump({"seconds": seconds, **extra}, fh)


def _spawn(step: str, name: str, workdir: str, report: str) -> int:
    """Run one step in a child process; return its peak RSS in KiB."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", "--child", step, "--case", name,
                             "--workdir", workdir, "--report", report], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark case {name} failed in its {step} step")
    return usage.ru_maxrss


def _machine(device: str) -> dict:
    """The machine and the device the timed steps ran on (``device``: bench.cases.DEVICE): the CPU unless a GPU
    was asked for, even on a machine that has one."""
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "device": "CPU"}
    try:
        import torch

        info["torch"] = torch.__version__
        if device != "cpu" and torch.cuda.is_available():
            info["device"] = f"CUDA: {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return info


def _result_name(case: str, device: str) -> str:
    """``<case>.json`` for the CPU (the default), ``<case>.<device>.json`` when STF_BENCH_DEVICE names another
    device (``device``: bench.cases.DEVICE), so a GPU machine's figures stand beside the CPU's instead of replacing
    them."""
    return f"{case}.json" if device == "cpu" else f"{case}.{device.replace(':', '')}.json"


def write_table() -> str:
    """Rebuild bench/results/README.md from every results JSON."""
    rows = []
    for name in sorted(os.listdir(RESULTS)):
        if name.endswith(".json"):
            with open(os.path.join(RESULTS, name), encoding="utf-8") as fh:
                data = json.load(fh)
            if "case" in data:  # not paper_tables.json (make paper-tables), which has its own markdown
                rows.append(data)
    lines = ["# Benchmark results", "", "Written by `make bench` (bench/run.py); one JSON per case beside this file.",
             "", "| case | seconds | Mpixel/s | peak RSS (MiB) | device | CPUs | date | what | other figures |",
             "|---|---:|---:|---:|---|---:|---|---|---|"]
    for r in rows:
        mpx = f"{r['pixels'] / r['seconds'] / 1e6:.2f}" if r.get("pixels") else ""
        standard = {"case", "seconds", "pixels", "peak_rss_mib", "machine", "date", "description"}
        other = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in r.items() if k not in standard)
        lines.append(f"| {r['case']} | {r['seconds']:.2f} | {mpx} | {r['peak_rss_mib']:.0f} | "
                     f"{r['machine']['device']} | {r['machine']['cpu_count']} | {r['date']} | {r['description']} | "
                     f"{other} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", action="append", help="case name (repeatable); default: all")
    parser.add_argument("--workdir", help="folder for inputs (kept between runs); default: a temporary folder")
    parser.add_argument("--list", action="store_true", help="list the cases")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.case[0], args.workdir, args.report)
        return
    from bench.cases import CASES, DEVICE

    if args.list:
        for c in CASES.values():
            print(f"{c.name}: {c.description}")
        return
    names = args.case or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    os.makedirs(RESULTS, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stf-bench-") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        for name in names:
            print(f"[bench] {name}: preparing", flush=True)
            _spawn("prepare", name, workdir, os.devnull)
            report = os.path.join(tmp, f"{name}.report.json")
            peak_kib = _spawn("run", name, workdir, report)
            with open(report, encoding="utf-8") as fh:
                result = json.load(fh)
            result.update(case=name, description=CASES[name].description, peak_rss_mib=peak_kib / 1024,
                          date=_dt.date.today().isoformat(), machine=_machine(DEVICE))
            with open(os.path.join(RESULTS, _result_name(name, DEVICE)), "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2)
            print(f"[bench] {name}: {result['seconds']:.2f} s, peak {result['peak_rss_mib']:.0f} MiB", flush=True)
    print(write_table())


if __name__ == "__main__":
    main()
