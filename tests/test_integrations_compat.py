"""Integrations with ``workers="cloudpickle"``: engines whose workers cannot import skypickle.

Each engine runs once, in a script run as ``__main__`` in a fresh interpreter (its lambda,
closure and class exist only there), with real workers in which ``import skypickle`` fails:
the script itself imports skypickle, then gives its workers a ``PYTHONPATH`` directory whose
``sitecustomize.py`` puts a ``sys.meta_path`` finder refusing skypickle in front of every other
(for Ray, through the ``runtime_env``'s ``env_vars``). A task checks that the import fails
there, and then a lambda, a closure over a global and instances of a ``__main__`` class go
through the workers. The instances come back pickled by the workers' cloudpickle, and are
instances of the driver's own class all the same: skypickle's class tracker is shared with the
cloudpickle copies of the driver.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
from compat_helpers import BLOCK_SKYPICKLE
from engines import EXPECTED, run_script
from helpers import lift_address_space_limit

# Imported by every process started with the guard directory on PYTHONPATH (site imports
# sitecustomize at startup); the variable keeps it inert anywhere else.
SITECUSTOMIZE = (
    'import os\n\nif os.environ.get("SKYPICKLE_TEST_BLOCK") == "1":\n'
    + textwrap.indent(BLOCK_SKYPICKLE, "    ")
)

# Appended to engines.COMMON. No skypickle import at the top level: dask's workers and its
# processes scheduler start with multiprocessing's spawn, which runs this script's top level
# again in each of them (as __mp_main__).
GUARD = """
GUARD_DIR = os.path.join(os.getcwd(), "no_skypickle")


def probe():
    try:
        import skypickle  # noqa: F401
    except ImportError as exc:
        return "blocked: " + str(exc)
    return "imported"


def worker_env():
    return {
        "PYTHONPATH": os.pathsep.join(
            p for p in [GUARD_DIR, os.environ.get("PYTHONPATH", "")] if p
        ),
        "SKYPICKLE_TEST_BLOCK": "1",
    }


def block_skypickle_in_new_processes():
    # Only processes started from now on (the workers) see these.
    os.environ.update(worker_env())
"""

BLOCKED = "blocked: skypickle is not installed on this worker"


def _run(tmp_path_factory, name: str, body: str, **kw) -> dict:
    path = tmp_path_factory.mktemp(name)
    guard = path / "no_skypickle"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return run_script(path, GUARD + textwrap.dedent(body), **kw)


def test_the_guard_blocks_only_where_it_is_set(tmp_path):
    """The guard itself: a process started with it cannot import skypickle, and loads cloudpickle
    payloads; one started without the variable imports skypickle."""
    guard = tmp_path / "no_skypickle"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    code = "import skypickle; print(skypickle.__name__)"
    env = dict(os.environ, PYTHONPATH=str(guard), SKYPICKLE_TEST_BLOCK="1")
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert blocked.returncode != 0 and "not installed on this worker" in blocked.stderr
    env["SKYPICKLE_TEST_BLOCK"] = "0"
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert free.returncode == 0 and free.stdout.strip() == "skypickle"


# --------------------------------------------------------------------------------------------
# dask / distributed
# --------------------------------------------------------------------------------------------

DASK_BODY = """
if __name__ == "__main__":
    import dask
    import dask.bag
    import dask.config
    import distributed.protocol.pickle as dpickle
    from distributed import Client, LocalCluster

    import skypickle.integrations.dask as skydask

    # The documented order: install() before the cluster; with workers="cloudpickle" nothing is
    # asked of the workers it starts (no preload).
    patched = skydask.install(workers="cloudpickle")
    preload = list(dask.config.get("distributed.worker.preload", default=[]) or [])
    block_skypickle_in_new_processes()
    scale = make_scaler(3)
    payload = bytes(dpickle.dumps(scale))
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        # Asked, these workers say they lack skypickle: install(client) picks cloudpickle.
        skydask.install(client)
        detected = skydask.workers_mode()
        probes = client.run(probe)
        task_probe = client.submit(probe, pure=False).result()
        scaled = client.gather(client.map(scale, range(4)))
        points = client.gather(client.map(lambda p: p.moved(1), [Point(i) for i in range(3)]))
        worker_picklers = client.run(
            lambda: sys.modules["distributed.protocol.pickle"].cloudpickle.__name__
        )
    bag = dask.bag.from_sequence(range(4), npartitions=2)
    local = bag.map(scale).compute(scheduler="processes")
    local_probe = dask.bag.from_sequence(range(2), npartitions=2).map(
        lambda _: probe()
    ).compute(scheduler="processes")
    report(
        patched=patched,
        preload=preload,
        detected=detected,
        probes=sorted(set(probes.values())),
        task_probe=task_probe,
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        compat_payload=b"cloudpickle.cloudpickle" in payload and b"skypickle" not in payload,
        worker_picklers=sorted(set(worker_picklers.values())),
        processes_scheduler=local,
        processes_probe=sorted(set(local_probe)),
        tokenize_stable=dask.base.tokenize(scale) == dask.base.tokenize(scale),
    )
"""


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory):
    pytest.importorskip("distributed")
    return _run(tmp_path_factory, "dask", DASK_BODY)


def test_dask_workers_without_skypickle(dask_run):
    got = dask_run
    assert got["probes"] == [BLOCKED] and got["task_probe"] == BLOCKED
    assert got["processes_probe"] == [BLOCKED]
    assert "distributed.protocol.pickle" in got["patched"]
    assert "skypickle.integrations.dask" not in got["preload"]
    assert got["detected"] == "cloudpickle"
    assert got["compat_payload"] is True
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    # The workers were left alone: they pickle results with their own cloudpickle.
    assert got["worker_picklers"] == ["cloudpickle"]
    assert got["processes_scheduler"] == EXPECTED["scaled"]
    assert got["tokenize_stable"] is True


# --------------------------------------------------------------------------------------------
# joblib / loky
# --------------------------------------------------------------------------------------------

LOKY_BODY = """
if __name__ == "__main__":
    import io

    from joblib import Parallel, delayed
    from joblib.externals.loky import set_loky_pickler
    from joblib.externals.loky.backend import reduction

    import skypickle.integrations.loky as skyloky

    changed = skyloky.install(workers="cloudpickle")
    block_skypickle_in_new_processes()
    buf = io.BytesIO()
    reduction.dump(make_scaler(3), buf)
    payload = buf.getvalue()

    def run(calls):
        return Parallel(n_jobs=2, backend="loky")(calls)

    probes = run(delayed(probe)() for _ in range(4))
    scale = make_scaler(3)
    scaled = run(delayed(scale)(i) for i in range(4))
    points = run(delayed(lambda p: p.moved(1))(Point(i)) for i in range(3))

    def worker_pickler():
        from joblib.externals.loky.backend import reduction as r

        return [r.get_loky_pickler_name(), r._LokyPickler.__mro__[1].__module__]

    used = run(delayed(worker_pickler)() for _ in range(2))

    # What install() avoids: a pickler named by module is imported in each worker too.
    set_loky_pickler("skypickle.compat")
    try:
        run(delayed(scale)(i) for i in range(2))
        by_name = "worked"
    except ImportError as exc:
        by_name = str(exc).splitlines()[0]
    skyloky.uninstall()
    report(
        changed=changed,
        parent_name=reduction.get_loky_pickler_name(),
        compat_payload=b"cloudpickle.cloudpickle" in payload and b"skypickle" not in payload,
        probes=sorted(set(probes)),
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        worker_pickler=sorted(set(map(tuple, used))),
        by_name=by_name,
    )
"""


@pytest.fixture(scope="module")
def loky_run(tmp_path_factory):
    pytest.importorskip("joblib")
    return _run(tmp_path_factory, "loky", LOKY_BODY, env={"LOKY_PICKLER": ""})


def test_loky_workers_without_skypickle(loky_run):
    got = loky_run
    assert got["probes"] == [BLOCKED]
    assert "joblib.externals.loky" in got["changed"]
    assert got["compat_payload"] is True
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    # Workers select their own cloudpickle by the name the call items carry: the package
    # index's, or the copy joblib vendors up to 1.5.3 (the newest joblib for CPython 3.9).
    vendored = importlib.util.find_spec("joblib.externals.cloudpickle") is not None
    own = "joblib.externals.cloudpickle.cloudpickle" if vendored else "cloudpickle.cloudpickle"
    assert got["worker_pickler"] == [["cloudpickle", own]]
    # uninstall() gave loky its default back.
    assert got["parent_name"] == "cloudpickle"


def test_loky_pickler_by_name_needs_skypickle_in_workers(loky_run):
    """set_loky_pickler("skypickle.compat") is not the way for such workers: loky imports the
    named module in each worker before running a call."""
    assert loky_run["by_name"] == "skypickle is not installed on this worker"


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------

RAY_BODY = """
if __name__ == "__main__":
    import ray

    import skypickle.integrations.ray as skyray

    given = {"env_vars": worker_env()}
    runtime_env = skyray.install(given, workers="cloudpickle")
    scale = make_scaler(3)
    payload = ray.cloudpickle.dumps(scale)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    try:
        task_probe = ray.get(ray.remote(probe).remote())
        remote_scale = ray.remote(scale)
        scaled = ray.get([remote_scale.remote(i) for i in range(4)])
        move = ray.remote(lambda p: p.moved(1))
        points = ray.get([move.remote(Point(i)) for i in range(3)])
        # An ObjectRef inside an argument: Ray's own reducer, carried over in compat mode too.
        ref = ray.put(Point(7))
        deref = ray.remote(lambda refs: ray.get(refs[0]).x)
        nested = ray.get(deref.remote([ref]))
        where = ray.remote(lambda: sys.modules["ray.cloudpickle"].dumps.__module__)
        worker_dumps = ray.get(where.remote())
    finally:
        ray.shutdown()
    report(
        unchanged=runtime_env is given,
        compat_payload=b"ray.cloudpickle.cloudpickle" in payload and b"skypickle" not in payload,
        task_probe=task_probe,
        scaled=scaled,
        moved=[p.x for p in points],
        isinstance=all(isinstance(p, Point) for p in points),
        nested=nested,
        worker_dumps=worker_dumps,
    )
"""


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory):
    pytest.importorskip("ray")
    return _run(
        tmp_path_factory,
        "ray",
        RAY_BODY,
        env={"RAY_USAGE_STATS_ENABLED": "0"},
        timeout=300,
        preexec_fn=lift_address_space_limit,
    )


def test_ray_workers_without_skypickle(ray_run):
    got = ray_run
    assert got["task_probe"] == BLOCKED
    assert got["unchanged"] is True
    assert got["compat_payload"] is True
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    assert got["nested"] == 7
    # Workers keep Ray's own cloudpickle.
    assert got["worker_dumps"] == "ray.cloudpickle.cloudpickle"


RAY_CHOICES = """
import os

import ray

import skypickle.integrations.ray as skyray

results = {}
os.environ.pop("RAY_ADDRESS", None)
env = skyray.install({"env_vars": {"A": "1"}})
results["local"] = [skyray.workers_mode(), env]
os.environ["RAY_ADDRESS"] = "127.0.0.1:1"  # never connected to: install() only reads it
given = {"env_vars": {"A": "1"}}
returned = skyray.install(given)
results["address"] = [skyray.workers_mode(), returned is given]
# An earlier install()'s hook names skypickle: workers="cloudpickle" takes it out.
results["drop_hook"] = skyray.install(env, workers="cloudpickle")
results["ray_dumps"] = ray.cloudpickle.dumps.__module__
report(**results)
"""


def test_ray_default_choice(tmp_path):
    """No Ray started: what install() decides, and what it returns in each mode."""
    pytest.importorskip("ray")
    got = run_script(tmp_path, RAY_CHOICES)
    hook = {"worker_process_setup_hook": "skypickle.integrations.ray.setup"}
    assert got["local"] == ["skypickle", {"env_vars": {"A": "1"}, **hook}]
    assert got["address"] == ["cloudpickle", True]
    assert got["drop_hook"] == {"env_vars": {"A": "1"}}
    assert got["ray_dumps"] == "skypickle.compat"


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["dask", "ray", "loky"])
def test_install_refuses_an_unknown_worker_mode(engine):
    import importlib

    module = importlib.import_module(f"skypickle.integrations.{engine}")
    with pytest.raises(ValueError, match="workers must be one of"):
        module.install(workers="pickle")
    assert module.workers_mode() is None  # nothing was installed


# --------------------------------------------------------------------------------------------
# compat.for_target: what the integrations patch in
# --------------------------------------------------------------------------------------------


def test_for_target_writes_for_its_copy_only():
    import io
    import pickle

    import skypickle.compat as compat

    ray_api = compat.for_target("ray.cloudpickle.cloudpickle")
    assert compat.for_target("ray.cloudpickle.cloudpickle") is ray_api
    assert compat.for_target(compat.TARGET) is compat
    assert ray_api.TARGET == "ray.cloudpickle.cloudpickle"
    fn = (lambda k: lambda v: v * k)(3)
    payloads = [ray_api.dumps(fn, protocol=4)]
    buf = io.BytesIO()
    ray_api.dump(fn, buf)
    payloads.append(buf.getvalue())
    buf = io.BytesIO()
    ray_api.Pickler(buf).dump(fn)
    payloads.append(buf.getvalue())
    for payload in payloads:
        assert b"ray.cloudpickle.cloudpickle" in payload and b"skypickle" not in payload
    # The module's own API keeps its target.
    assert b"ray.cloudpickle" not in compat.dumps(fn)
    assert ray_api.loads is pickle.loads
    assert ray_api.list_registry_pickle_by_value is compat.list_registry_pickle_by_value
    with pytest.raises(ValueError, match="not a cloudpickle copy"):
        compat.for_target("ray.cloudpickle")
