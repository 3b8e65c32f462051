"""skypickle for dask and distributed: one call, ``install()``.

After ``install()``:

* ``distributed`` (``Client``, ``LocalCluster``, any scheduler) pickles task functions, graphs
  and results with skypickle wherever it would have used cloudpickle: functions, lambdas and
  classes that workers cannot import travel by value;
* workers started afterwards by a ``LocalCluster`` or ``Nanny`` in this process's dask config
  do the same for what they send back (results that are instances of ``__main__`` classes come
  back as instances of the original class); for a cluster that already runs, pass its client:
  ``install(client)`` registers a worker plugin that installs skypickle on every worker;
* dask's local ``processes`` scheduler and ``dask.base.tokenize`` use skypickle too.

Workers need nothing but skypickle installed. ``uninstall()`` restores cloudpickle in this
process.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import skypickle

PRELOAD = "skypickle.integrations.dask"

_saved: dict[tuple[str, str], Any] = {}


def _patch(module: Any, name: str, value: Any) -> None:
    key = (module.__name__, name)
    if key not in _saved:
        _saved[key] = getattr(module, name)
    setattr(module, name, value)


def _patch_this_process() -> list[str]:
    """Point every place dask and distributed call cloudpickle at skypickle; return what was
    patched."""
    patched = []
    try:
        import distributed.protocol.pickle as dpickle
    except ImportError:
        pass
    else:
        _patch(dpickle, "cloudpickle", skypickle)
        patched.append("distributed.protocol.pickle")
    try:
        import dask.multiprocessing as dmp
    except ImportError:
        pass
    else:
        _patch(dmp, "_dumps", functools.partial(skypickle.dumps, protocol=pickle.HIGHEST_PROTOCOL))
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
        _patch(dtok, "cloudpickle", skypickle)
        patched.append(dtok.__name__)
    return patched


def _add_worker_preload() -> None:
    """Have workers started from this process's dask config install skypickle too."""
    try:
        import dask.config
    except ImportError:
        return
    preload = list(dask.config.get("distributed.worker.preload", default=[]) or [])
    if PRELOAD not in preload:
        dask.config.set({"distributed.worker.preload": [*preload, PRELOAD]})


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


def install(client: Any = None) -> list[str]:
    """Use skypickle in dask and distributed (see the module documentation).

    ``client``: a ``distributed.Client`` of an already running cluster, whose workers should
    install skypickle as well. Returns the modules patched in this process.
    """
    patched = _patch_this_process()
    _add_worker_preload()
    if client is not None:
        client.register_plugin(SkypicklePlugin(), name=SkypicklePlugin.name)
    return patched


def uninstall() -> None:
    """Restore what ``install()`` replaced in this process (workers keep skypickle)."""
    import importlib

    for (module_name, name), value in _saved.items():
        setattr(importlib.import_module(module_name), name, value)
    _saved.clear()
    try:
        import dask.config
    except ImportError:
        return
    preload = [
        p for p in dask.config.get("distributed.worker.preload", default=[]) or [] if p != PRELOAD
    ]
    dask.config.set({"distributed.worker.preload": preload})


def dask_setup(worker: Any = None) -> None:
    """Called by distributed when a worker preloads this module: install skypickle there."""
    _patch_this_process()
