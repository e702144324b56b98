"""Run many independent tasks on dask.distributed, streaming one record per task to disk.

The same call runs on a laptop and on a cluster: without a scheduler address it starts a
:class:`~distributed.LocalCluster` sized to the machine (one single-threaded worker process per
core); with ``scheduler="tcp://host:8786"`` it uses a cluster someone started (``dask
scheduler`` / ``dask worker``, dask-jobqueue, Kubernetes: see ``docs/cluster.md``).

Guarantees
----------
* **Seeds**: task ``i`` gets the seed :func:`task_seed` ``(base_seed, i)``, derived with
  :class:`numpy.random.SeedSequence`; never from the worker or the completion order, so the
  same base seed gives the same task results whatever the number of workers.
* **Streaming**: each finished task is written as its own JSON file
  ``<out>/tasks/<index>.json`` (atomically: a reader sees a whole record or none), by the client
  as results arrive, so workers need no shared file system.
* **Resume**: a record on disk marks its task done; ``resume=True`` submits exactly the tasks
  without one. An interrupted run (Ctrl-C, a killed client) loses at most the tasks in flight.
* **Failures**: a task that raises is recorded with ``status = "error"``, its error, traceback
  and seed, and the run goes on. A worker that dies mid-task is replaced by its nanny and the
  scheduler reruns the task elsewhere; only a task that kills workers repeatedly (dask's
  ``KilledWorker``) is *lost*: reported, not recorded, and redone by ``--resume``.
* **Compiled models**: workers are long-lived processes, so the per-process compiled-model cache
  of :mod:`bayes_va.engine.sampling` makes each worker compile a model structure once.

Task functions must be importable (defined at module level of an installed module); bind their
fixed arguments with :func:`functools.partial`. A task function has the signature
``fn(index, seed) -> dict`` and returns JSON-serialisable data (NaN/inf are stored as null).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from bayes_va.core import atomic
from bayes_va.core.errors import BayesVAError

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "ClusterSpec",
    "ExecutorError",
    "RunReport",
    "TaskStore",
    "dask_client",
    "dask_map",
    "default_workers",
    "run_tasks",
    "task_seed",
]

TaskFn = Callable[[int, int], dict[str, Any]]

#: File names inside a run folder.
MANIFEST = "manifest.json"
TASKS_DIR = "tasks"


class ExecutorError(BayesVAError):
    """A run folder or cluster cannot be used as asked (the message says why and what to do)."""


def task_seed(base_seed: int, index: int) -> int:
    """Derive the seed of task ``index``: 63 bits from ``SeedSequence([base_seed, index])``.

    Parameters
    ----------
    base_seed : int
        The run's seed (non-negative).
    index : int
        The task index (non-negative).

    Returns
    -------
    int
        A non-negative integer below 2**63, the same on every machine and worker.
    """
    if base_seed < 0 or index < 0:
        raise ValueError("base_seed and index must be non-negative")
    state = np.random.SeedSequence([base_seed, index]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def default_workers() -> int:
    """Count the cores available to this process (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run.

    Attributes
    ----------
    scheduler : str or None
        Address of a running dask scheduler (``tcp://host:8786``); None starts a local cluster.
    n_workers : int or None
        Worker processes of the local cluster (default: :func:`default_workers`); ignored with
        a scheduler address.
    threads_per_worker : int
        Threads per local worker. One: a fit is CPU-bound and holds the GIL in places, so
        processes, not threads, give the parallelism.
    connect_timeout : str
        How long to try reaching ``scheduler`` (a dask time string).
    """

    scheduler: str | None = None
    n_workers: int | None = None
    threads_per_worker: int = 1
    connect_timeout: str = "30s"

    def __post_init__(self) -> None:
        """Reject fewer than one worker or thread."""
        if self.n_workers is not None and self.n_workers < 1:
            raise ExecutorError(f"n_workers must be >= 1, got {self.n_workers}")
        if self.threads_per_worker < 1:
            raise ExecutorError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")

    def describe(self) -> str:
        """Describe in one line, for logs, where the tasks run."""
        if self.scheduler:
            return f"dask scheduler at {self.scheduler}"
        n = self.n_workers or default_workers()
        return f"local dask cluster: {n} worker process(es) x {self.threads_per_worker} thread(s)"


@contextmanager
def dask_client(spec: ClusterSpec | None = None) -> Iterator[Client]:
    """Connect a dask client for ``spec``; a local cluster it started is closed on exit.

    A local cluster can only start from an importable module or a script with an
    ``if __name__ == "__main__":`` guard (its workers are spawned processes).
    """
    from distributed import Client, LocalCluster  # slow to import; only runs need it

    spec = spec or ClusterSpec()
    if spec.scheduler:
        try:
            client = Client(spec.scheduler, timeout=spec.connect_timeout)
        except OSError as exc:
            raise ExecutorError(
                f"cannot reach the dask scheduler at {spec.scheduler}: {exc}. Start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS` (docs/cluster.md)."
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=spec.n_workers or default_workers(),
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        dashboard_address=":0",  # any free port: two local clusters must not collide
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# --------------------------------------------------------------------------- records on disk


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN and inf to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class TaskStore:
    """A run folder: ``manifest.json`` and one JSON record per finished task in ``tasks/``.

    Parameters
    ----------
    root : path
        The run folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.tasks = self.root / TASKS_DIR

    def _path(self, index: int) -> Path:
        return self.tasks / f"{index:07d}.json"

    def manifest(self) -> dict[str, Any] | None:
        """Read the stored manifest; None for a new folder."""
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Store the run's identity (what must match for ``resume``)."""
        atomic.write_json(self.root / MANIFEST, _plain(manifest))

    def done(self) -> set[int]:
        """Return the indices of the tasks with a record on disk (errors included)."""
        if not self.tasks.is_dir():
            return set()
        return {int(p.stem) for p in self.tasks.glob("*.json") if p.stem.isdigit()}

    def write(self, record: dict[str, Any]) -> None:
        """Write one task's record atomically (a second write of an index replaces the first)."""
        atomic.write_json(self._path(int(record["index"])), _plain(record))

    def read(self, index: int) -> dict[str, Any]:
        """Read the record of task ``index``."""
        return json.loads(self._path(index).read_text())

    def records(self) -> list[dict[str, Any]]:
        """Return every stored record, by index."""
        return [self.read(i) for i in sorted(self.done())]


# --------------------------------------------------------------------------- running


#: Threads one task may use on a worker (read by :func:`bayes_va.engine.sampler_cores`).
#: Workers are one per core, so a fit runs its chains one after another: two workers on two
#: cores then give ~2x the fits per second, where fits with a thread per chain would compete.
TASK_CORES_ENV = "BAYES_VA_SAMPLER_CORES"


def _run_task(fn: TaskFn, index: int, seed: int) -> dict[str, Any]:
    """Worker side: run one task and wrap its result or its error in a record."""
    os.environ.setdefault(TASK_CORES_ENV, "1")
    t0 = time.perf_counter()
    record: dict[str, Any] = {"index": index, "seed": seed}
    try:
        result = fn(index, seed)
    except Exception as exc:  # a task error is data: record it, keep the run going
        record.update(
            status="error",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
            result=None,
        )
    else:
        record.update(status="ok", error=None, traceback=None, result=result)
    record["seconds"] = time.perf_counter() - t0
    record["pid"] = os.getpid()
    return _plain(record)


@dataclass
class RunReport:
    """What a call of :func:`run_tasks` did.

    Attributes
    ----------
    n_tasks : int
        Tasks in the run (indices ``0 .. n_tasks - 1``).
    already_done : int
        Records found on disk before this call (``resume``).
    ran : list of int
        Indices run and recorded by this call.
    errors : list of int
        Indices (of all on disk) whose task raised.
    lost : dict of int to str
        Indices that could not be run this time (e.g. ``KilledWorker``) and why; not recorded,
        so a resumed run redoes them.
    wall_seconds : float
        Wall time of this call (cluster start included).
    where : str
        Where the tasks ran.
    """

    n_tasks: int
    already_done: int
    ran: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    lost: dict[int, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    where: str = ""

    @property
    def complete(self) -> bool:
        """Whether every task now has a record."""
        return self.already_done + len(self.ran) == self.n_tasks


def _check_manifest(store: TaskStore, manifest: dict[str, Any], resume: bool) -> None:
    """Refuse to mix runs: a used folder needs ``resume`` and the same identity."""
    old = store.manifest()
    if old is None:
        if store.done():
            raise ExecutorError(f"{store.root} holds task records but no {MANIFEST}")
        return
    if not resume:
        raise ExecutorError(
            f"{store.root} already holds a run ({len(store.done())} task(s) done); "
            "pass --resume (resume=True) to complete it, or choose another --out"
        )
    keys = sorted((set(old) | set(manifest)) - {"n_tasks"})
    differ = [k for k in keys if old.get(k) != _plain(manifest.get(k))]
    if differ:
        raise ExecutorError(
            f"cannot resume {store.root}: it was started with different {', '.join(differ)}"
        )


def run_tasks(
    fn: TaskFn,
    n_tasks: int,
    out_dir: str | os.PathLike[str],
    *,
    base_seed: int,
    manifest: dict[str, Any] | None = None,
    cluster: ClusterSpec | None = None,
    client: Client | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "tasks",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Run ``fn(i, task_seed(base_seed, i))`` for ``i < n_tasks`` and store each record.

    Parameters
    ----------
    fn : callable
        Importable task function ``fn(index, seed) -> dict`` (a :func:`functools.partial` of a
        module-level function is fine).
    n_tasks : int
        Number of tasks. A resumed run may ask for more than before (it extends the run).
    out_dir : path
        Run folder (see :class:`TaskStore`).
    base_seed : int
        Seed of the run; task seeds derive from it and the task index only.
    manifest : dict, optional
        The run's identity (config hash, settings); stored, and compared on ``resume``.
    cluster : ClusterSpec, optional
        Where to run (default: a local cluster sized to the machine). Ignored with ``client``.
    client : distributed.Client, optional
        Use this client (its cluster is left running).
    resume : bool
        Complete a run already in ``out_dir``, running only the tasks without a record.
    progress : bool
        Show a tqdm progress bar of finished tasks.
    desc : str
        Label of the progress bar.
    on_record : callable, optional
        Called with each record after it is stored (e.g. live summaries).

    Returns
    -------
    RunReport

    Raises
    ------
    ExecutorError
        If ``out_dir`` holds another run, or one without ``resume``.
    """
    t0 = time.perf_counter()
    if n_tasks < 0:
        raise ValueError("n_tasks must be >= 0")
    store = TaskStore(out_dir)
    manifest = {**(manifest or {}), "base_seed": int(base_seed), "n_tasks": int(n_tasks)}
    _check_manifest(store, manifest, resume)
    store.write_manifest(manifest)
    done = store.done()
    todo = [i for i in range(n_tasks) if i not in done]
    report = RunReport(n_tasks=n_tasks, already_done=len(done & set(range(n_tasks))))
    report.where = "client given" if client is not None else (cluster or ClusterSpec()).describe()
    if todo:
        if client is not None:
            _submit_all(client, fn, todo, base_seed, store, report, progress, desc, on_record)
        else:
            with dask_client(cluster) as own:
                _submit_all(own, fn, todo, base_seed, store, report, progress, desc, on_record)
    report.errors = [r["index"] for r in store.records() if r.get("status") == "error"]
    report.wall_seconds = time.perf_counter() - t0
    return report


def _submit_all(
    client: Client,
    fn: TaskFn,
    todo: Sequence[int],
    base_seed: int,
    store: TaskStore,
    report: RunReport,
    progress: bool,
    desc: str,
    on_record: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Submit every task, store records as they complete; cancel what is left on exit."""
    from distributed import as_completed  # slow to import; only runs need it

    run_id = uuid.uuid4().hex[:12]  # unique keys: a shared cluster may hold older runs
    futures = {
        client.submit(
            _run_task, fn, i, task_seed(base_seed, i), pure=False, key=f"task-{i}-{run_id}"
        ): i
        for i in todo
    }
    bar = tqdm(
        total=report.n_tasks,
        initial=report.already_done,
        desc=desc,
        unit="task",
        disable=not progress,
    )
    try:
        for fut in as_completed(futures):
            index = futures[fut]
            try:
                record = fut.result()
            except Exception as exc:  # infrastructure failure (e.g. KilledWorker): redo later
                report.lost[index] = f"{type(exc).__name__}: {exc}"
            else:
                store.write(record)
                report.ran.append(index)
                if on_record is not None:
                    on_record(record)
            bar.update(1)
    finally:
        bar.close()
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
    report.ran.sort()


# --------------------------------------------------------------------------- map for callers


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    os.environ.setdefault(TASK_CORES_ENV, "1")
    return fn(item)


def dask_map(
    cluster: ClusterSpec | None = None, *, progress: bool = True, desc: str = "fits"
) -> Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]:
    """Make a ``map_fn(fn, items) -> results`` that runs on dask, results in input order.

    For callers with their own loop, e.g.
    ``run_sensitivity(configs, map_fn=dask_map(ClusterSpec(scheduler=addr)))``.

    Parameters
    ----------
    cluster : ClusterSpec, optional
        Where the tasks run (default: a local cluster, see :func:`dask_client`).
    progress : bool
        Show a progress bar.
    desc : str
        The progress bar's label.

    Returns
    -------
    callable
        ``map_fn(fn, items)``: ``fn`` must be picklable (module-level). When an item raises,
        ``map_fn`` raises :class:`ExecutorError` naming its position, after the others finish.
    """

    def map_fn(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        from distributed import as_completed  # slow to import; only runs need it

        items = list(items)
        with dask_client(cluster) as client:
            futures = [client.submit(_call, fn, item, pure=False) for item in items]
            with tqdm(total=len(items), desc=desc, unit="task", disable=not progress) as bar:
                for _ in as_completed(futures):
                    bar.update(1)
            out, first_error = [], None
            for i, fut in enumerate(futures):
                if fut.status == "error" and first_error is None:
                    first_error = (i, fut.exception())
                out.append(fut.result() if fut.status == "finished" else None)
        if first_error is not None:
            i, exc = first_error
            raise ExecutorError(f"item {i} ({items[i]!r:.80}) raised {exc!r}") from exc
        return out

    return map_fn
