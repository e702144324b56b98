"""The dask executor on a real multi-process LocalCluster: streaming, errors, resume, killed
workers and seeds that do not depend on the workers.

The task functions live at module level here so that the spawned worker processes can import
them (pytest puts ``tests/`` on ``sys.path``, and spawned processes inherit it).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from seeds import seed

from bayes_va.workflows.executor import (
    ClusterSpec,
    ExecutorError,
    TaskStore,
    dask_client,
    dask_map,
    run_tasks,
    task_seed,
)

#: Tasks of the tests below: short, so a test costs about a second of cluster time.
N_TASKS = 10


def draw_task(index: int, seed: int) -> dict:
    """A task whose result depends on its seed only: two normal draws."""
    time.sleep(0.05)
    return {"draws": np.random.default_rng(seed).normal(size=2).tolist(), "index": index}


def failing_task(index: int, seed: int) -> dict:
    """Like :func:`draw_task`, but task 2 raises."""
    if index == 2:
        raise ValueError(f"simulated failure in task {index}")
    return draw_task(index, seed)


def slow_task(index: int, seed: int) -> dict:
    """A task long enough for a worker to be killed while it runs."""
    time.sleep(0.4)
    return draw_task(index, seed)


def square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def cluster():
    """One real two-process cluster for the module (LocalCluster, 1 thread per worker)."""
    with dask_client(ClusterSpec(n_workers=2)) as client:
        yield client


def results(store: TaskStore) -> dict[int, dict]:
    return {r["index"]: r["result"] for r in store.records()}


def test_task_seeds_come_from_the_base_seed_and_index_only():
    seeds = [task_seed(seed(20231123), i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeds[:3] == [task_seed(seed(20231123), i) for i in range(3)]
    assert task_seed(seed(1), 0) != task_seed(seed(2), 0)
    with pytest.raises(ValueError):
        task_seed(-1, 0)


def test_each_task_is_streamed_to_its_own_file_and_a_raising_task_is_recorded(cluster, tmp_path):
    report = run_tasks(
        failing_task, N_TASKS, tmp_path, base_seed=seed(7), client=cluster, progress=False
    )
    store = TaskStore(tmp_path)
    assert sorted(p.name for p in store.tasks.iterdir()) == [
        f"{i:07d}.json" for i in range(N_TASKS)
    ]
    assert report.complete and report.ran == list(range(N_TASKS)) and report.errors == [2]
    bad = store.read(2)
    assert bad["status"] == "error" and bad["result"] is None
    assert bad["seed"] == task_seed(seed(7), 2)
    assert "simulated failure in task 2" in bad["error"] and "Traceback" in bad["traceback"]
    assert all(store.read(i)["status"] == "ok" for i in range(N_TASKS) if i != 2)


def test_an_interrupted_run_resumes_exactly_the_missing_tasks(cluster, tmp_path):
    reference = tmp_path / "reference"
    run_tasks(draw_task, N_TASKS, reference, base_seed=seed(3), client=cluster, progress=False)

    seen: list[int] = []

    def interrupt_after_three(record: dict) -> None:
        seen.append(record["index"])
        if len(seen) == 3:
            raise KeyboardInterrupt  # what Ctrl-C does to the client

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_tasks(
            draw_task,
            N_TASKS,
            run,
            base_seed=seed(3),
            client=cluster,
            progress=False,
            on_record=interrupt_after_three,
        )
    done_before = TaskStore(run).done()
    assert done_before == set(seen) and len(done_before) == 3

    report = run_tasks(
        draw_task, N_TASKS, run, base_seed=seed(3), client=cluster, progress=False, resume=True
    )
    assert report.already_done == 3
    assert set(report.ran) == set(range(N_TASKS)) - done_before
    assert results(TaskStore(run)) == results(TaskStore(reference))

    again = run_tasks(
        draw_task, N_TASKS, run, base_seed=seed(3), client=cluster, progress=False, resume=True
    )
    assert again.ran == [] and again.complete  # nothing left: nothing redone


def test_a_used_folder_needs_resume_and_the_same_run(cluster, tmp_path):
    run_tasks(draw_task, 2, tmp_path, base_seed=seed(1), client=cluster, progress=False)
    with pytest.raises(ExecutorError, match="--resume"):
        run_tasks(draw_task, 2, tmp_path, base_seed=seed(1), client=cluster, progress=False)
    with pytest.raises(ExecutorError, match="base_seed"):
        run_tasks(
            draw_task, 2, tmp_path, base_seed=seed(2), client=cluster, progress=False, resume=True
        )


def test_results_are_identical_with_one_and_two_workers(cluster, tmp_path):
    run_tasks(
        draw_task, N_TASKS, tmp_path / "two", base_seed=seed(11), client=cluster, progress=False
    )
    run_tasks(
        draw_task,
        N_TASKS,
        tmp_path / "one",
        base_seed=seed(11),
        progress=False,
        cluster=ClusterSpec(n_workers=1),
    )
    assert results(TaskStore(tmp_path / "one")) == results(TaskStore(tmp_path / "two"))


def test_killing_a_worker_mid_run_loses_no_result(tmp_path):
    n = 8
    with dask_client(ClusterSpec(n_workers=2)) as client:
        pids = client.run(os.getpid)  # {worker address: pid}
        victim = next(iter(pids.values()))
        killed: list[int] = []

        def kill_once(record: dict) -> None:
            if not killed:
                os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its task is redone
                killed.append(victim)

        report = run_tasks(
            slow_task,
            n,
            tmp_path,
            base_seed=seed(5),
            client=client,
            progress=False,
            on_record=kill_once,
        )
    assert killed
    assert report.lost == {} and report.complete
    store = TaskStore(tmp_path)
    assert store.done() == set(range(n))
    assert all(r["status"] == "ok" for r in store.records())
    assert {r["seed"] for r in store.records()} == {task_seed(seed(5), i) for i in range(n)}


def test_dask_map_returns_results_in_input_order(cluster):
    addr = cluster.scheduler.address
    assert dask_map(ClusterSpec(scheduler=addr), progress=False)(square, [3, 1, 2]) == [9, 1, 4]


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ExecutorError, match="dask scheduler"):
        with dask_client(ClusterSpec(scheduler="tcp://127.0.0.1:9", connect_timeout="1s")):
            pass
