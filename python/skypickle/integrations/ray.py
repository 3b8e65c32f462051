"""skypickle for Ray: ``ray.init(runtime_env=skypickle.integrations.ray.install())``.

Ray pickles remote functions, actor classes, arguments and results with its vendored copy of
cloudpickle (``ray.cloudpickle``), through module attributes looked up at each call.
``install()`` points those at skypickle in this process (the driver) and returns the
``runtime_env`` entry that does the same in every worker (``worker_process_setup_hook``), so
results that are instances of ``__main__`` classes come back as the original classes. The
reducers Ray registers for its own types (``ObjectRef``, actor handles...) go to
``skypickle.Pickler.dispatch``, which every skypickle pickler consults; any registered before
``install()`` are carried over.

Call it before ``ray.init()``. Workers need nothing but skypickle installed.
"""

from __future__ import annotations

from typing import Any

HOOK = "skypickle.integrations.ray.setup"


def _patch_this_process() -> None:
    import ray.cloudpickle as rcp

    import skypickle

    if getattr(rcp, "_skypickle_installed", False):
        return
    ours = skypickle.Pickler.dispatch
    theirs = getattr(rcp.CloudPickler, "dispatch", None)
    first = getattr(theirs, "maps", [theirs or {}])[0]
    for cls, reducer in list(first.items()):
        # Ray's own reducers; skypickle has its own for what cloudpickle registers itself.
        if isinstance(cls, type) and cls.__module__.split(".")[0] == "ray" and cls not in ours:
            ours[cls] = reducer
    rcp.dumps, rcp.dump = skypickle.dumps, skypickle.dump
    rcp.CloudPickler = rcp.Pickler = skypickle.Pickler
    rcp._skypickle_installed = True


def setup() -> None:
    """Ray's ``worker_process_setup_hook``: install skypickle in a worker."""
    _patch_this_process()


def install(runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Use skypickle in this Ray driver; return ``runtime_env`` (a copy, or a new dict) with the
    hook that installs it in every worker: pass it to ``ray.init(runtime_env=...)``."""
    _patch_this_process()
    env = dict(runtime_env or {})
    existing = env.get("worker_process_setup_hook")
    if existing not in (None, HOOK):
        raise ValueError(
            "runtime_env already has a worker_process_setup_hook "
            f"({existing!r}); call skypickle.integrations.ray.setup() from it instead"
        )
    env["worker_process_setup_hook"] = HOOK
    return env
