"""The engines users ship code with: joblib/loky, dask/distributed and the standard library's
process pools, each running real worker processes.

Every case runs a script as ``__main__`` in a fresh interpreter, so its lambda, closure and
class exist only there (as in a user's script or notebook), and checks that:
a lambda and a closure over a global run in the workers, and instances of a ``__main__`` class
come back as instances of that very class (``isinstance`` in the parent).
"""

from __future__ import annotations

import pytest
from engines import EXPECTED, run_script
from helpers import lift_address_space_limit

# --------------------------------------------------------------------------------------------
# joblib / loky
# --------------------------------------------------------------------------------------------

LOKY_BODY = """
from joblib import Parallel, delayed
from joblib.externals.loky.backend import reduction

if __name__ == "__main__":
    {select}
    scale = make_scaler(3)
    scaled = Parallel(n_jobs=2, backend="loky")(delayed(scale)(i) for i in range(4))
    points = Parallel(n_jobs=2, backend="loky")(
        delayed(lambda p: p.moved(1))(Point(i)) for i in range(3)
    )

    def worker_pickler():
        from joblib.externals.loky.backend import reduction as r
        return r._LokyPickler.__mro__[1].__module__

    used = Parallel(n_jobs=2, backend="loky")(delayed(worker_pickler)() for _ in range(2))
    report(
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        parent_pickler=reduction._LokyPickler.__mro__[1].__module__,
        worker_pickler=sorted(set(used)),
    )
"""


@pytest.mark.parametrize("how", ["env", "set_loky_pickler"])
def test_joblib_loky(tmp_path, how):
    joblib = pytest.importorskip("joblib")
    assert joblib
    if how == "env":
        got = run_script(tmp_path, LOKY_BODY.format(select="pass"), {"LOKY_PICKLER": "skypickle"})
    else:
        select = "from joblib.externals.loky import set_loky_pickler; set_loky_pickler('skypickle')"
        got = run_script(tmp_path, LOKY_BODY.format(select=select), {"LOKY_PICKLER": ""})
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    # loky subclasses skypickle.Pickler in the parent and selects it again in each worker.
    assert got["parent_pickler"] == "skypickle"
    assert got["worker_pickler"] == ["skypickle"]


# --------------------------------------------------------------------------------------------
# dask / distributed
# --------------------------------------------------------------------------------------------

DASK_BODY = """
if __name__ == "__main__":
    import skypickle.integrations.dask as skydask

    patched = skydask.install()
    import dask
    import dask.bag
    import distributed.protocol.pickle as dpickle
    from distributed import Client, LocalCluster

    scale = make_scaler(3)
    # What distributed sends for a task function is skypickle's payload.
    payload = dpickle.dumps(scale)
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        scaled = client.gather(client.map(scale, range(4)))
        points = client.gather(client.map(lambda p: p.moved(1), [Point(i) for i in range(3)]))
        workers = client.run(
            lambda: sys.modules["distributed.protocol.pickle"].cloudpickle.__name__
        )
        detected = skydask.workers_have_skypickle(client)
    local = dask.bag.from_sequence(range(4), npartitions=2).map(scale).compute(
        scheduler="processes"
    )
    report(
        patched=patched,
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        skypickle_payload=b"skypickle._skypickle" in payload and b"cloudpickle" not in payload,
        worker_picklers=sorted(set(workers.values())),
        processes_scheduler=local,
        tokenize_stable=dask.base.tokenize(scale) == dask.base.tokenize(scale),
        detected=detected,
        mode=skydask.workers_mode(),
    )
"""


def test_dask_distributed(tmp_path):
    pytest.importorskip("distributed")
    got = run_script(tmp_path, DASK_BODY)
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert "distributed.protocol.pickle" in got["patched"]
    assert got["skypickle_payload"] is True
    assert got["worker_picklers"] == ["skypickle"]
    assert got["processes_scheduler"] == EXPECTED["scaled"]
    assert got["tokenize_stable"] is True
    # install() with no client chose skypickle; asked, these workers say they have it.
    assert got["mode"] == "skypickle"
    assert got["detected"] is True


# --------------------------------------------------------------------------------------------
# concurrent.futures and multiprocessing
# --------------------------------------------------------------------------------------------

POOLS_BODY = """
import skypickle.pools as pools


class Oops(Exception):
    pass


def boom(x):
    raise Oops(f"bad {{x}}")


if __name__ == "__main__":
    method = "{method}"
    scale = make_scaler(3)
    results = {{}}
    with pools.ProcessPoolExecutor(2, mp_context=method) as ex:
        results["executor_scaled"] = list(ex.map(scale, range(4)))
        points = list(ex.map(lambda p: p.moved(1), [Point(i) for i in range(3)]))
        results["executor_moved"] = [p.x for p in points]
        results["executor_isinstance"] = all(isinstance(p, Point) for p in points)
        try:
            ex.submit(boom, 3).result()
        except Oops as exc:
            results["executor_error"] = [type(exc) is Oops, str(exc)]
    with pools.Pool(2, context=method) as pool:
        results["pool_scaled"] = pool.map(scale, range(4))
        points = pool.map(lambda p: p.moved(1), [Point(i) for i in range(3)])
        results["pool_moved"] = [p.x for p in points]
        results["pool_isinstance"] = all(isinstance(p, Point) for p in points)
        results["pool_apply"] = pool.apply(scale, (5,))
        results["pool_starmap"] = pool.starmap(lambda a, b: a + b, [(1, 2), (3, 4)])
        results["pool_imap"] = sorted(pool.imap_unordered(scale, [1, 2]))
    report(**results)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_stdlib_process_pools(tmp_path, method):
    got = run_script(tmp_path, POOLS_BODY.format(method=method))
    for prefix in ("executor", "pool"):
        assert got[f"{prefix}_scaled"] == EXPECTED["scaled"]
        assert got[f"{prefix}_moved"] == EXPECTED["moved"]
        assert got[f"{prefix}_isinstance"] is True
    assert got["executor_error"] == [True, "bad 3"]
    assert got["pool_apply"] == 25
    assert got["pool_starmap"] == [3, 7]
    assert got["pool_imap"] == [13, 16]


def test_plain_pool_cannot_do_this(tmp_path):
    """The baseline the wrappers fix: a plain spawn pool refuses the lambda.

    CPython 3.9's pool can deadlock when its feeder thread fails to pickle a call item (the
    error path races the executor's shutdown; seen once in CI under load), so the outcome is
    read with a deadline, and a pool that does not shut down within a minute is killed.
    A pool that hangs on the lambda cannot do this either."""
    body = """
    import concurrent.futures
    import multiprocessing
    import threading

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        ex = concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx)
        future = ex.submit(make_scaler(3), 1)
        try:
            future.result(timeout=60)
            outcome = "worked"
        except concurrent.futures.TimeoutError:
            outcome = "hung"
        except Exception as exc:
            outcome = type(exc).__name__
        report(outcome=outcome)
        sys.stdout.flush()
        closer = threading.Thread(target=ex.shutdown, daemon=True)
        closer.start()
        closer.join(60)
        if closer.is_alive():
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                proc.kill()
            os._exit(0)
    """
    assert run_script(tmp_path, body)["outcome"] != "worked"


def test_ship_loads_as_the_object_itself():
    import pickle

    import skypickle.pools as pools

    scale = (lambda k: lambda v: v * k)(4)
    shipped = pools.ship(scale)
    assert "payload" in repr(shipped)
    back = pickle.loads(pickle.dumps(shipped))
    assert back is not shipped and back(2) == 8


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------

RAY_BODY = """
if __name__ == "__main__":
    import ray

    import skypickle.integrations.ray as skyray

    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=skyray.install()
    )
    try:
        scale = ray.remote(make_scaler(3))
        scaled = ray.get([scale.remote(i) for i in range(4)])
        move = ray.remote(lambda p: p.moved(1))
        points = ray.get([move.remote(Point(i)) for i in range(3)])
        # An ObjectRef inside an argument: Ray's own reducer, registered in skypickle's dispatch.
        ref = ray.put(Point(7))
        deref = ray.remote(lambda refs: ray.get(refs[0]).x)
        nested = ray.get(deref.remote([ref]))
        where = ray.remote(lambda: sys.modules["ray.cloudpickle"].dumps.__module__)
        worker_dumps = ray.get(where.remote())
    finally:
        ray.shutdown()
    report(
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        nested=nested,
        worker_dumps=worker_dumps,
    )
"""


def test_ray(tmp_path):
    pytest.importorskip("ray")
    got = run_script(
        tmp_path,
        RAY_BODY,
        {"RAY_USAGE_STATS_ENABLED": "0"},
        timeout=300,
        preexec_fn=lift_address_space_limit,
    )
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["nested"] == 7
    assert got["worker_dumps"] == "skypickle._skypickle"
