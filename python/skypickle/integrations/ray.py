"""skypickle for Ray: ``ray.init(runtime_env=skypickle.integrations.ray.install())``.

Ray pickles remote functions, actor classes, arguments and results with its vendored copy of
cloudpickle (``ray.cloudpickle``), through module attributes looked up at each call.
``install()`` points those at skypickle in this process (the driver). The reducers Ray
registers for its own types (``ObjectRef``, actor handles...) go to ``skypickle.Pickler.dispatch``,
which every skypickle pickler consults, in either mode; any registered before ``install()`` are
carried over. Call it before ``ray.init()``.

What the workers need depends on ``workers``:

* ``"skypickle"``: payloads are skypickle's own. Workers must import skypickle; ``install()``
  returns the ``runtime_env`` with a ``worker_process_setup_hook`` that installs it in every
  worker too, so that they pickle results with it.
* ``"cloudpickle"``: payloads are written with ``compat="ray.cloudpickle.cloudpickle"``, which
  names only Ray's vendored cloudpickle (every Ray worker has it) and the standard library.
  Workers need nothing, no hook is added: ``install()`` returns ``runtime_env`` unchanged
  (without skypickle's own hook if an earlier ``install()`` put it there). Workers pickle
  results with Ray's cloudpickle.
* ``None`` (the default): ``"skypickle"`` when ``ray.init()`` is about to start Ray from this
  process, whose workers share this environment; ``"cloudpickle"`` when ``RAY_ADDRESS`` is set
  or Ray is already initialised, since those workers run wherever the cluster was started. An
  address given to ``ray.init()`` itself (or a ``ray start`` cluster it finds on this machine)
  cannot be seen from here: pass ``workers`` then.

Either way, results that are instances of ``__main__`` classes come back as the original
classes (skypickle shares its class tracker with Ray's copy of cloudpickle).

``workers_mode()`` tells what was chosen.
"""

from __future__ import annotations

import os
from typing import Any

HOOK = "skypickle.integrations.ray.setup"
WORKER_MODES = ("skypickle", "cloudpickle")
#: The copy of cloudpickle every Ray worker has.
RAY_CLOUDPICKLE = "ray.cloudpickle.cloudpickle"

_mode: str | None = None


def _patch_this_process(workers: str = "skypickle") -> None:
    import ray.cloudpickle as rcp

    import skypickle

    if getattr(rcp, "_skypickle_installed", None) == workers:
        return
    if workers == "skypickle":
        api: Any = skypickle
    else:
        from skypickle.compat import for_target

        api = for_target(RAY_CLOUDPICKLE)
    ours = skypickle.Pickler.dispatch
    theirs = getattr(rcp.CloudPickler, "dispatch", None)
    first = getattr(theirs, "maps", [theirs or {}])[0]
    for cls, reducer in list(first.items()):
        # Ray's own reducers; skypickle has its own for what cloudpickle registers itself.
        if isinstance(cls, type) and cls.__module__.split(".")[0] == "ray" and cls not in ours:
            ours[cls] = reducer
    # The compat Pickler inherits skypickle.Pickler's class-level dispatch (the same mapping),
    # so what Ray registers later through rcp.CloudPickler.dispatch reaches both modes.
    rcp.dumps, rcp.dump = api.dumps, api.dump
    rcp.CloudPickler = rcp.Pickler = api.Pickler
    rcp._skypickle_installed = workers


def setup() -> None:
    """Ray's ``worker_process_setup_hook``: install skypickle in a worker."""
    _patch_this_process()


def _default_workers() -> str:
    import ray

    if os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        return "cloudpickle"
    return "skypickle"


def install(
    runtime_env: dict[str, Any] | None = None, workers: str | None = None
) -> dict[str, Any] | None:
    """Use skypickle in this Ray driver, writing for ``workers`` (``"skypickle"``,
    ``"cloudpickle"`` or ``None`` to decide: see the module documentation); return the
    ``runtime_env`` to pass to ``ray.init(runtime_env=...)``: for ``"skypickle"`` a copy of
    ``runtime_env`` (or a new dict) with the hook that installs skypickle in every worker, for
    ``"cloudpickle"`` ``runtime_env`` itself."""
    global _mode
    if workers is None:
        workers = _default_workers()
    elif workers not in WORKER_MODES:
        raise ValueError(f"workers must be one of {WORKER_MODES} or None, not {workers!r}")
    existing = (runtime_env or {}).get("worker_process_setup_hook")
    if workers == "skypickle" and existing not in (None, HOOK):
        raise ValueError(
            "runtime_env already has a worker_process_setup_hook "
            f"({existing!r}); call skypickle.integrations.ray.setup() from it instead"
        )
    _patch_this_process(workers)
    _mode = workers
    if workers == "cloudpickle":
        if existing != HOOK:
            return runtime_env
        # Our hook imports skypickle, which these workers need not have.
        env = dict(runtime_env or {})
        del env["worker_process_setup_hook"]
        return env
    env = dict(runtime_env or {})
    env["worker_process_setup_hook"] = HOOK
    return env


def workers_mode() -> str | None:
    """``"skypickle"`` or ``"cloudpickle"``: what the last ``install()`` wrote for; ``None``
    before ``install()``."""
    return _mode
