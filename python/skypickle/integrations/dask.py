"""skypickle for dask and distributed: one call, ``install()``.

``install(client=None, workers=None)`` makes ``distributed`` (``Client``, ``LocalCluster``, any
scheduler) pickle task functions, graphs and results with skypickle wherever it would have used
cloudpickle, and dask's local ``processes`` scheduler and ``dask.base.tokenize`` too. What the
workers need depends on ``workers``:

* ``"skypickle"``: payloads are skypickle's own (the fastest to write and load). Workers must
  be able to import skypickle, and they pickle what they send back with it too: workers
  started afterwards by a ``LocalCluster`` or ``Nanny`` in this process's dask config load it
  themselves (a worker preload), and ``install(client)`` registers a worker plugin on an
  already running cluster.
* ``"cloudpickle"``: payloads are written with ``compat="cloudpickle"``, which workers load
  with the cloudpickle that distributed requires anyway: they need nothing else, no preload
  and no plugin is installed. Workers pickle results with their own cloudpickle.

Either way, results that are instances of ``__main__`` classes come back as instances of the
original class (skypickle shares its class tracker with the cloudpickle copies it finds).
* ``None`` (the default) decides: with a ``client``, its workers are asked whether they can
  import skypickle (``"skypickle"`` only if every one of them can; a cluster with no workers
  yet, or an asynchronous client, gets ``"cloudpickle"``, which every worker can load); without
  one, ``"skypickle"``, because the only workers this call can prepare are those started later
  from this process, with this environment. For a cluster started elsewhere, pass its client or
  say which.

``workers_mode()`` tells what was chosen; ``uninstall()`` restores cloudpickle in this process.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from typing import Any

import skypickle

PRELOAD = "skypickle.integrations.dask"
WORKER_MODES = ("skypickle", "cloudpickle")

_saved: dict[tuple[str, str], Any] = {}
_mode: str | None = None


def _patch(module: Any, name: str, value: Any) -> None:
    key = (module.__name__, name)
    if key not in _saved:
        _saved[key] = getattr(module, name)
    setattr(module, name, value)


class _CompatDumps:
    """``dask.multiprocessing._dumps`` for workers without skypickle: it writes compat payloads
    here. dask's processes scheduler also sends its dumps function to the pool processes (they
    pickle results with it), and there this one arrives as cloudpickle's own ``dumps``, by
    reference, which they can import."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def __call__(self, obj: Any) -> bytes:
        return self._api.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def __reduce__(self):
        import cloudpickle

        return functools.partial(cloudpickle.dumps, protocol=pickle.HIGHEST_PROTOCOL).__reduce__()


def _patch_this_process(workers: str = "skypickle") -> list[str]:
    """Point every place dask and distributed call cloudpickle at skypickle, writing for
    ``workers``; return what was patched."""
    if workers == "skypickle":
        writer: Any = skypickle
        mp_dumps: Any = functools.partial(skypickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        from skypickle.compat import for_target

        # distributed and dask import the top-level cloudpickle, so their workers load that.
        writer = for_target("cloudpickle")
        mp_dumps = _CompatDumps(writer)
    patched = []
    try:
        import distributed.protocol.pickle as dpickle
    except ImportError:
        pass
    else:
        _patch(dpickle, "cloudpickle", writer)
        patched.append("distributed.protocol.pickle")
    try:
        import dask.multiprocessing as dmp
    except ImportError:
        pass
    else:
        _patch(dmp, "_dumps", mp_dumps)
        # pickle.loads under either name: skypickle's and cloudpickle's loads are the same.
        _patch(dmp, "_loads", skypickle.loads)
        patched.append("dask.multiprocessing")
    try:
        import dask.tokenize as dtok
    except ImportError:
        try:
            import dask.base as dtok  # older dask: tokenize lives in dask.base
        except ImportError:
            dtok = None
    if dtok is not None and hasattr(dtok, "cloudpickle"):
        # Tokens are hashes of the bytes, computed and compared in this process only: skypickle's
        # own format serves either mode (and gives the same token in both).
        _patch(dtok, "cloudpickle", skypickle)
        patched.append(dtok.__name__)
    return patched


def _set_worker_preload(on: bool) -> None:
    """Have workers started from this process's dask config install skypickle too (or not)."""
    try:
        import dask.config
    except ImportError:
        return
    preload = [
        p for p in dask.config.get("distributed.worker.preload", default=[]) or [] if p != PRELOAD
    ]
    if on:
        preload.append(PRELOAD)
    dask.config.set({"distributed.worker.preload": preload})


def workers_have_skypickle(client: Any) -> bool:
    """Whether every worker of ``client`` finds skypickle (False when there are no workers, or
    when asking fails). The question travels as a reference to ``importlib.util.find_spec``,
    which plain ``pickle`` writes and any worker loads, whatever it has installed; a worker
    without skypickle answers None rather than raising, so asking logs no error there."""
    if getattr(client, "asynchronous", False):
        # Its run() returns a coroutine, which this synchronous call cannot wait for.
        return False
    try:
        specs = client.run(importlib.util.find_spec, "skypickle")
    except Exception:
        return False
    return bool(specs) and all(spec is not None for spec in specs.values())


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # distributed is not installed: dask alone
    _WorkerPluginBase = object


class SkypicklePlugin(_WorkerPluginBase):
    """A distributed worker plugin that installs skypickle in each worker."""

    name = "skypickle"

    def setup(self, worker: Any = None) -> None:
        _patch_this_process()

    def teardown(self, worker: Any = None) -> None:
        pass


def install(client: Any = None, workers: str | None = None) -> list[str]:
    """Use skypickle in dask and distributed (see the module documentation).

    ``client``: a ``distributed.Client`` of an already running cluster. ``workers``:
    ``"skypickle"`` (workers import skypickle; it is installed on them too), ``"cloudpickle"``
    (workers need only cloudpickle) or ``None`` to decide as the module documentation says.
    Returns the modules patched in this process; ``workers_mode()`` gives the choice made.
    """
    global _mode
    if workers is None:
        workers = "skypickle" if client is None or workers_have_skypickle(client) else "cloudpickle"
    elif workers not in WORKER_MODES:
        raise ValueError(f"workers must be one of {WORKER_MODES} or None, not {workers!r}")
    patched = _patch_this_process(workers)
    # A preload left from an earlier install("skypickle") would make new workers import
    # skypickle, which workers="cloudpickle" promises they need not have.
    _set_worker_preload(workers == "skypickle")
    if client is not None and workers == "skypickle":
        client.register_plugin(SkypicklePlugin(), name=SkypicklePlugin.name)
    _mode = workers
    return patched


def workers_mode() -> str | None:
    """``"skypickle"`` or ``"cloudpickle"``: what the last ``install()`` wrote for; ``None``
    before ``install()`` and after ``uninstall()``."""
    return _mode


def uninstall() -> None:
    """Restore what ``install()`` replaced in this process (workers keep skypickle)."""
    import importlib

    global _mode
    for (module_name, name), value in _saved.items():
        setattr(importlib.import_module(module_name), name, value)
    _saved.clear()
    _mode = None
    _set_worker_preload(False)


def dask_setup(worker: Any = None) -> None:
    """Called by distributed when a worker preloads this module: install skypickle there."""
    _patch_this_process()
