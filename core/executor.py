"""Where the tile jobs of a run are computed: in this process (the default), on local worker processes, or on a
Dask distributed cluster.

Every method writes its predictions through :func:`..fusion.write_predictions`, which cuts the scene into tiles
with a halo; a tile (all its dates) is an independent job. The ``SCHEDULER`` parameter of the fusion and prediction
algorithms chooses the executor:

* empty: in this process, tile after tile (no extra package);
* ``local`` or ``local:N``: N worker processes on this machine, at most one per core (a Dask ``LocalCluster``;
  ``local`` = one per two cores), each computing one tile at a time with ``cores / N`` threads, so the workers do not oversubscribe;
* an address (``tcp://host:8786``, ``tls://...``, ``host:8786``): the workers of a running ``dask scheduler``.
  A worker computes one tile at a time with as many threads as it was started with (``dask worker --nthreads``).

What travels: the method's tile function is scattered to every worker once (the trained networks with it, not
once per tile); a task carries a tile's window, and returns the tile's values (float32) and validity. Workers
open the inputs themselves, from the same paths (a shared file system, or GDAL virtual file systems such as
``/vsicurl/`` and ``/vsis3/``), and the client writes the outputs with the same writer as an in-process run, in
tile order, with at most ``2 x worker threads`` tasks in flight, so the client's memory stays bounded and the
files are identical to an in-process run's.

Failures: an error the core raises on purpose (bad input) ends the run with its message and nothing is committed;
any other exception is retried twice (``retries``: a network file system's hiccup) before the run fails; a
worker that dies is replaced by its nanny and its tasks are recomputed elsewhere (the scheduler's
``allowed-failures``). Cancel cancels every future. dask and distributed are imported only when a scheduler is
given, with an install hint when missing.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Sequence

from .errors import InputError, MissingDependencyError, StfError
from .feedback import Feedback, check_cancel

SCHEDULER_HELP = ("Where the tiles are computed: empty = in this process; local:N = N worker processes on this "
                  "machine (local = one per two cores); or the address of a Dask scheduler (tcp://host:8786) whose "
                  "workers can read the inputs and the output folder. Needs the dask and distributed packages.")

_SCHEDULER: contextvars.ContextVar = contextvars.ContextVar("stf_scheduler", default="")
_ADDRESS = re.compile(r"^(?:(tcp|tls|inproc|ucx|ws|wss)://)?[\w.\-\[\]:]+:\d+$")


@contextlib.contextmanager
def scheduler_scope(spec: str | None) -> Iterator[None]:
    """Run the :func:`..fusion.write_predictions` calls of the block on the executor ``spec`` (SCHEDULER)."""
    parse_scheduler(spec or "")  # a bad value is an error before any work
    token = _SCHEDULER.set(spec or "")
    try:
        yield
    finally:
        _SCHEDULER.reset(token)


def current_scheduler() -> str:
    """The SCHEDULER of the running block ('' = in this process)."""
    return _SCHEDULER.get()


def parse_scheduler(spec: str) -> tuple[str, Any]:
    """``('inprocess', None)``, ``('local', workers)`` or ``('address', address)``; a malformed value is an
    :class:`InputError` naming SCHEDULER."""
    text = (spec or "").strip()
    if not text:
        return "inprocess", None
    match = re.fullmatch(r"local(?::(\d+))?", text)
    if match:
        workers = int(match.group(1)) if match.group(1) else max(1, (os.cpu_count() or 2) // 2)
        if workers < 1:
            raise InputError("SCHEDULER local:N needs at least one worker (N >= 1).")
        # capped at the core count: more processes only compete for the cores (local:999 spawned until refused)
        return "local", min(workers, os.cpu_count() or 1)
    if _ADDRESS.match(text):
        return "address", text if "://" in text else f"tcp://{text}"
    raise InputError(f"SCHEDULER '{text}' is not understood: leave it empty (this process), write local:N (N local "
                     "worker processes) or the address of a Dask scheduler, e.g. tcp://10.0.0.5:8786.")


def map_ordered(function: Callable[[Any], Any], items: Sequence[Any], feedback: Feedback | None = None,
                on_result: Callable[[int, Any], None] | None = None) -> None:
    """Call ``on_result(i, function(items[i]))`` for every item, in item order, on the executor of the running
    :func:`scheduler_scope`. ``function`` must be picklable (cloudpickle: closures are) when a scheduler is set."""
    kind, target = parse_scheduler(current_scheduler())
    if kind == "inprocess":
        for i, item in enumerate(items):
            check_cancel(feedback)
            on_result(i, function(item))
        return
    with _DaskRun(kind, target, feedback) as run:
        run.map(function, items, on_result)


# --- worker side --------------------------------------------------------------------------------------------------
_WORKER_LOCK = threading.Lock()  # one tile at a time per worker process: tile functions keep per-tile caches


def _set_threads(threads: int) -> None:
    """Give the tile's computation ``threads`` cores (torch's and numba's thread pools)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    numba = sys.modules.get("numba")
    if numba is not None:
        with contextlib.suppress(Exception):  # numba's pool cannot grow past NUMBA_NUM_THREADS
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _worker_threads(threads: int | None) -> int:
    if threads:
        return threads
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return max(1, os.cpu_count() or 1)


def run_task(function: Callable[[Any], Any], item: Any, threads: int | None) -> tuple[str, Any]:
    """What a worker runs for one item: ``('ok', result)``, or ``('error', message)`` for an error the core raised
    on purpose (returned, not raised: Dask would retry it, and it fails the same way every time)."""
    with _WORKER_LOCK:
        _set_threads(_worker_threads(threads))
        try:
            return "ok", function(item)
        except StfError as exc:
            return "error", (type(exc).__name__, str(exc))


# --- client side --------------------------------------------------------------------------------------------------
def import_distributed():
    """``distributed``, or a :class:`MissingDependencyError` that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "SCHEDULER needs the Python packages dask and distributed, which are not installed for "
            f"{sys.executable or 'this Python'}: install them with  python -m pip install \"dask[distributed]\"  "
            "(in the OSGeo4W Shell on Windows), or leave SCHEDULER empty to compute in this process.") from None
    return distributed


_INTERPRETERS: dict[str, bool] = {}


def _same_python(candidate: str) -> bool:
    """True when ``candidate`` runs this very Python (version and installation), checked once by running it: an
    embedded Python (QGIS, qgis_process) guesses ``sys.executable`` from PATH, which may be another Python (a
    pyenv shim, a newer version) whose workers then load the wrong standard library ("No module named '_csv'")."""
    if candidate not in _INTERPRETERS:
        import subprocess

        code = "import sys; print(sys.version_info[:2], sys.base_prefix)"
        try:
            out = subprocess.run([candidate, "-c", code], capture_output=True, text=True, timeout=30,
                                 env={k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)})
            _INTERPRETERS[candidate] = out.stdout.strip() == f"{tuple(sys.version_info[:2])} {sys.base_prefix}"
        except (OSError, subprocess.SubprocessError):
            _INTERPRETERS[candidate] = False
    return _INTERPRETERS[candidate]


def python_executable() -> str:
    """The Python interpreter worker processes are started with: this process's own Python. Inside QGIS
    ``sys.executable`` is the QGIS program, or whatever ``python3`` came first on PATH; each candidate is checked
    to be the same version and installation."""
    import shutil

    exe = sys.executable or ""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [exe] if os.path.basename(exe).lower().startswith("python") else []
    for prefix in dict.fromkeys((sys.exec_prefix, sys.base_exec_prefix)):
        candidates += [os.path.join(prefix, "bin", f"python{version}"), os.path.join(prefix, "bin", "python3"),
                       os.path.join(prefix, "python.exe"), os.path.join(prefix, "python3.exe")]
    candidates += [shutil.which(f"python{version}") or "", shutil.which("python3") or ""]
    for candidate in dict.fromkeys(c for c in candidates if c and os.path.isfile(c)):
        if _same_python(candidate):
            return candidate
    return exe


class _DaskRun:
    """A client (and, for ``local:N``, its cluster) for the duration of one map."""

    def __init__(self, kind: str, target: Any, feedback: Feedback | None) -> None:
        self.kind, self.target, self.feedback = kind, target, feedback
        self.cluster = self.client = None
        self.threads: int | None = None

    def __enter__(self) -> "_DaskRun":
        distributed = import_distributed()
        try:
            if self.kind == "local":
                self.client = self._local_client(distributed, self.target)
            else:
                try:
                    self.client = distributed.Client(self.target, timeout=30, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise InputError(f"Cannot reach the Dask scheduler at SCHEDULER '{self.target}': {exc}. Start "
                                     "it with  dask scheduler  and its workers with  dask worker <address>, or leave "
                                     "SCHEDULER empty.") from None
            info = self.client.scheduler_info(n_workers=-1) if _accepts_n_workers(self.client) else \
                self.client.scheduler_info()
            workers = info.get("workers", {})
            if not workers:
                self.client.wait_for_workers(1, timeout=60)
                workers = self.client.scheduler_info().get("workers", {})
            self.slots = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
            if self.feedback is not None:
                where = (f"{len(workers)} local worker process(es), {self.threads} thread(s) each"
                         if self.kind == "local" else f"{len(workers)} worker(s) of {self.target}")
                self.feedback.info(f"Tiles computed on {where}.")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _local_client(self, distributed, workers: int):
        import multiprocessing

        self.threads = max(1, (os.cpu_count() or 1) // workers)
        spawn = multiprocessing.get_context("spawn")
        previous = multiprocessing.spawn.get_executable()
        spawn.set_executable(python_executable())  # inside QGIS, not the QGIS program
        try:
            # one thread per worker for Dask (a worker computes one tile at a time, see run_task); the tile uses
            # `threads` cores through torch and numba
            self.cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR, worker_class=distributed.Nanny)
        finally:
            if previous:
                spawn.set_executable(previous)
        return distributed.Client(self.cluster, set_as_default=False)

    def map(self, function: Callable[[Any], Any], items: Sequence[Any],
            on_result: Callable[[int, Any], None]) -> None:
        client = self.client
        shared = client.scatter(function, broadcast=True, hash=False)  # once per worker, not once per tile
        run_id = uuid.uuid4().hex[:8]
        window = 2 * self.slots
        pending: dict[Any, int] = {}
        done: dict[int, Any] = {}
        next_item = next_out = 0
        try:
            while next_out < len(items):
                check_cancel(self.feedback)
                while next_item < len(items) and len(pending) + len(done) < window:
                    future = client.submit(run_task, shared, items[next_item], self.threads, pure=False, retries=2,
                                           key=f"stf-tile-{run_id}-{next_item}")
                    pending[future] = next_item
                    next_item += 1
                finished = [future for future in pending if future.done()]
                if not finished:  # poll: cancel is checked between the waits
                    time.sleep(0.05)
                for future in finished:
                    index = pending.pop(future)
                    status, value = future.result()  # an unexpected exception (retries spent) is raised here
                    if status == "error":
                        raise _core_error(*value)
                    done[index] = value
                while next_out in done:  # in tile order: the files are written as in this process
                    on_result(next_out, done.pop(next_out))
                    next_out += 1
        finally:
            if pending:
                client.cancel(list(pending), force=True)
            del shared

    def __exit__(self, *exc) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _core_error(name: str, message: str) -> StfError:
    from . import errors

    cls = getattr(errors, name, StfError)
    return cls(message) if isinstance(cls, type) and issubclass(cls, StfError) else StfError(message)
