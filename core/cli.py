"""The command line that needs no QGIS: ``python -m stf_fusion <algorithm> --NAME=value ...``.

For cluster nodes and batch jobs, which have GDAL, torch (and dask) but no QGIS. The sub-commands are the
Processing algorithms of :mod:`.catalog`, with the same ids (``fuse_starfm``; ``fuse-starfm``, ``resample`` and
``make-sample`` also work), the same parameter names, defaults, ranges and help, and the same run: what the
command line writes is what ``qgis_process run stf:<id>`` writes.

* A raster list takes several paths after one option (``--FINE a.tif b.tif``) or the option repeated.
* Progress goes to the terminal (stderr), the outputs to stdout (``--json``: as one JSON object).
* Ctrl-C or SIGTERM cancels cleanly (nothing is left half-written); a second Ctrl-C stops at once.
* Exit status: 0 done; 1 the run was refused or stopped (bad input or parameter, missing package, full disk,
  cancel), with a message naming the problem; 2 an internal error (a bug: the traceback is printed, please report
  it).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from typing import Any, Sequence

from . import catalog
from .catalog import Param, Spec
from .errors import StfError, os_error_message

EXIT_OK, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2
PROGRAM = "python -m stf_fusion"
ALIASES = {"resample_coarse": ["resample"], "make_sample_series": ["make-sample"]}


class TerminalFeedback:
    """The core's feedback on a terminal: messages as lines, progress as a percentage (in place on a terminal,
    every 10 % in a log file), cancel on Ctrl-C or SIGTERM."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.cancelled = False
        self._shown = -1.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def set_progress(self, percent: float) -> None:
        if self.quiet:
            return
        if self._tty:
            if percent - self._shown >= 0.5 or percent >= 100:
                self.stream.write(f"\r{percent:5.1f} %")
                self.stream.flush()
                self._shown = percent
        elif int(percent // 10) > int(self._shown // 10):
            self.stream.write(f"{int(percent // 10) * 10} %\n")
            self.stream.flush()
            self._shown = percent

    def is_canceled(self) -> bool:
        return self.cancelled

    def info(self, message: str) -> None:
        if not self.quiet:
            self.stream.write(("\r" if self._tty and self._shown >= 0 else "") + message + "\n")
            self.stream.flush()

    def cancel(self, signum: int, frame: Any) -> None:
        if self.cancelled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.cancelled = True
        self.stream.write("\nCancelling (outputs are rolled back)...\n")


class _Parser(argparse.ArgumentParser):
    """Usage errors are input errors: exit status 1, not argparse's 2 (our internal-error status)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def _number(p: Param):
    cast = int if p.kind == "int" else float

    def convert(text: str):
        if p.optional and text == "":
            return None
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{p.name} must be {'a whole number' if p.kind == 'int' else 'a number'}"
                                             f", got '{text}'") from None
        if (p.minimum is not None and value < p.minimum) or (p.maximum is not None and value > p.maximum):
            low = "" if p.minimum is None else f"{p.minimum:g}"
            high = "" if p.maximum is None else f"{p.maximum:g}"
            raise argparse.ArgumentTypeError(f"{p.name} must be within [{low}, {high}], got {text}")
        return value

    return convert


def _boolean(p: Param):
    def convert(text: str) -> bool:
        word = text.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"{p.name} must be true or false, got '{text}'")

    return convert


def _choice(p: Param):
    def convert(text: str) -> str:
        if text in p.options:
            return text
        if text.isdigit() and int(text) < len(p.options):  # qgis_process accepts the index too
            return p.options[int(text)]
        raise argparse.ArgumentTypeError(f"{p.name} must be one of {', '.join(p.options)}, got '{text}'")

    return convert


def _add_argument(parser: argparse.ArgumentParser, p: Param) -> None:
    required = not p.optional and p.default is None and p.kind not in ("string",)
    text = p.full_help.replace("%", "%%")
    kwargs: dict[str, Any] = {"dest": p.name, "metavar": p.kind.upper().replace("_OUT", "")}
    if p.kind in ("rasters", "files"):
        kwargs.update(nargs="+", action="extend", default=[], metavar="PATH")
    elif p.kind in ("int", "float"):
        kwargs.update(type=_number(p), default=p.default)
    elif p.kind == "bool":
        kwargs.update(type=_boolean(p), default=p.default, metavar="true|false")
    elif p.kind == "enum":
        kwargs.update(type=_choice(p), default=p.default, metavar="|".join(p.options))
    elif p.kind in ("string", "extent"):
        kwargs.update(default=p.default if p.default is not None else "",
                      **({"metavar": "XMIN,XMAX,YMIN,YMAX[CRS]"} if p.kind == "extent" else {}))
    else:
        kwargs.update(default=None, metavar="PATH")
    if p.default not in (None, "", []) and p.kind not in ("rasters", "files"):
        text += f" Default: {p.default}."
    if p.advanced:
        text += " (advanced)"
    parser.add_argument(f"--{p.name}", help=text, required=required, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """One sub-command per catalog algorithm, its options made from the algorithm's parameters."""
    parser = _Parser(prog=PROGRAM, description="Spatiotemporal fusion without QGIS: the stf Processing algorithms "
                     "on the command line (same names, parameters and defaults as qgis_process run stf:<id>).",
                     epilog="Exit status: 0 done, 1 refused or stopped (the message says why), 2 internal error.")
    parser.add_argument("--json", action="store_true", help="Print the outputs as one JSON object.")
    parser.add_argument("--quiet", action="store_true", help="No progress or messages, only the outputs.")
    commands = parser.add_subparsers(dest="algorithm", metavar="ALGORITHM", parser_class=_Parser)
    commands.add_parser("list", help="List the algorithms.")
    for spec in catalog.specs():
        aliases = ALIASES.get(spec.id, []) + ([spec.id.replace("_", "-")] if "_" in spec.id else [])
        sub = commands.add_parser(spec.id, aliases=aliases, help=spec.name, description=spec.help.replace("%", "%%"),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        for p in spec.params:
            _add_argument(sub, p)
        # also accepted after the algorithm (SUPPRESS: not given there, the value before it stands)
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="Outputs as JSON.")
        sub.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="Only the outputs.")
    return parser


def _spec_of(name: str) -> Spec:
    for spec in catalog.specs():
        if name == spec.id or name in ALIASES.get(spec.id, []) or name == spec.id.replace("_", "-"):
            return spec
    raise KeyError(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one algorithm; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.algorithm in (None, "list"):
        for spec in catalog.specs():
            print(f"{spec.id:20s} {spec.name}")
        return EXIT_OK
    spec = _spec_of(args.algorithm)
    values = {p.name: getattr(args, p.name) for p in spec.params}
    feedback = TerminalFeedback(quiet=args.quiet)
    previous = {s: signal.signal(s, feedback.cancel) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        outputs = catalog.execute(spec, values, feedback)
    except StfError as exc:
        print(f"\nstf {spec.id}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"\nstf {spec.id}: stopped.", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:  # full disk, read-only file system: the problem and the path
        print(f"\nstf {spec.id}: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print(f"\nstf {spec.id}: not enough memory for this run; no output was written.", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # a bug: say so, with what is needed to report it
        traceback.print_exc()
        print(f"\nstf {spec.id}: internal error (a bug, please report it with the lines above).", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.json:
        print(json.dumps(outputs, indent=1))
    else:
        for name, value in outputs.items():
            if value is None:  # an optional output not asked for
                continue
            shown = "\n  ".join(value) if isinstance(value, list) else value
            print(f"{name}:{chr(10) + '  ' if isinstance(value, list) else ' '}{shown}")
    return EXIT_OK
