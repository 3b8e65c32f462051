"""The bridge to the cloudpickle copies of this process: one class tracker, seen from all sides.

skypickle usually runs on one side only: a driver dumps with skypickle, and its workers answer
with cloudpickle, or with a copy of it that their framework vendors (PySpark, Ray, joblib, ...).
Each copy keeps a class tracker of its own (``_DYNAMIC_CLASS_TRACKER_BY_CLASS`` and
``_BY_ID``, under ``_DYNAMIC_CLASS_TRACKER_LOCK``) and a by-value registry of its own
(``_PICKLE_BY_VALUE_MODULES``). For a ``__main__`` class to come back as itself, every tracker
of a process must give it the same id:

* whenever skypickle's tracker (``src/class_tracker``) learns a pair, by pickling a class or by
  loading one, it calls ``share``, which registers the pair in each copy imported;
* a copy imported later (often by ``pickle.loads`` of a worker's answer, which names the copy's
  reconstructors) gets every pair skypickle holds as soon as its module has run: ``_Finder`` sits
  first in ``sys.meta_path``, and for these module names only, wraps the loader that the rest of
  ``sys.meta_path`` finds;
* an id a copy already gave a class (it pickled the class first, or loaded it) is taken by
  skypickle rather than a new one (``adopt_id``), and an id skypickle does not know is looked up
  in the copies before a class is built (``adopt_class``).

The copies' by-value registries are read by skypickle's decision (``src/by_value/decision.rs``)
through ``_skypickle._CLOUDPICKLE_COPIES``, which this module keeps.

Nothing here imports a copy: copies are found in ``sys.modules`` only. The tracker calls in
only when it learns something (once per class), never while holding its lock.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

from . import _skypickle

#: The modules that hold a cloudpickle's tracker and registry: cloudpickle's own, then the
#: vendored copies known to be used by frameworks whose workers answer with them.
COPIES: tuple[str, ...] = (
    "cloudpickle.cloudpickle",
    "pyspark.cloudpickle.cloudpickle",
    "ray.cloudpickle.cloudpickle",
    "joblib.externals.cloudpickle.cloudpickle",
    "modal._vendor.cloudpickle",
    "srsly.cloudpickle.cloudpickle",
)
_COPY_NAMES = frozenset(COPIES)

#: Name -> module for the copies imported. Kept up to date at install, whenever a copy
#: finishes importing, and at each call from the tracker (which looks in ``sys.modules``
#: anyway); ``_skypickle._CLOUDPICKLE_COPIES`` is the list of its modules, which the Rust
#: decision reads (one length check when empty).
_loaded: dict[str, types.ModuleType] = {}
_copies: list[types.ModuleType] = _skypickle._CLOUDPICKLE_COPIES


class _NoLock:
    """Stands in for a copy's lock where a copy has none (very old cloudpickle)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _tracker(module: types.ModuleType) -> tuple[Any, Any, Any] | None:
    """A copy's (by_class, by_id, lock), or None where the module has no tracker (yet)."""
    # The module's namespace, not getattr: no module __getattr__ runs, and a module still
    # executing simply has no tracker yet.
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return None
    by_class = namespace.get("_DYNAMIC_CLASS_TRACKER_BY_CLASS")
    by_id = namespace.get("_DYNAMIC_CLASS_TRACKER_BY_ID")
    if by_class is None or by_id is None:
        return None
    return by_class, by_id, namespace.get("_DYNAMIC_CLASS_TRACKER_LOCK") or _NO_LOCK


def _refresh() -> list[tuple[Any, Any, Any]]:
    """Bring ``_loaded`` in line with ``sys.modules``; return the copies' trackers."""
    trackers = []
    modules = sys.modules
    changed = False
    for name in COPIES:
        module = modules.get(name)
        if module is None:
            changed |= _loaded.pop(name, None) is not None
            continue
        if _loaded.get(name) is not module:
            _loaded[name] = module
            changed = True
        tracker = _tracker(module)
        if tracker is not None:
            trackers.append(tracker)
    if changed:
        _copies[:] = _loaded.values()
    return trackers


def _register(tracker: tuple[Any, Any, Any], obj: Any, tracker_id: Any) -> None:
    """Make ``tracker_id`` stand for ``obj`` in one copy. What the copy already has wins: a
    class it tracks under another id keeps that id too (both ids then load the class)."""
    by_class, by_id, lock = tracker
    with lock:
        if by_id.setdefault(tracker_id, obj) is obj:
            by_class.setdefault(obj, tracker_id)


def _defined_here(obj: Any) -> bool:
    """Whether a class a copy tracks was defined in this process (pickled there first) rather
    than loaded from a payload: a method of it runs in the namespace of its module. A class a
    cloudpickle payload brought has methods with namespaces of their own."""
    if not isinstance(obj, type):
        return False
    module_name = obj.__dict__.get("__module__")
    if not isinstance(module_name, str):
        return False
    namespace = getattr(sys.modules.get(module_name), "__dict__", None)
    if namespace is None:
        return False
    for value in list(obj.__dict__.values()):
        kind = type(value)
        if kind is staticmethod or kind is classmethod:
            value = value.__func__
        elif kind is property:
            value = value.fget
        if type(value) is types.FunctionType:
            return value.__globals__ is namespace
    return False


def adopt_id(obj: Any) -> tuple[Any, bool] | None:
    """The id a copy gave ``obj``, and whether this process defined it; None if no copy
    tracks it. Called by skypickle's tracker before it makes a new id, that is when this
    process sends the class: the sender is taken as the class's own process, whatever the
    heuristic of ``_defined_here`` would say (it cannot recognise a class defined in a
    namespace other than its module's, and a class of this process taken for a received one
    would have its namespace replaced by copies of itself when a payload brings it back)."""
    for by_class, _by_id, lock in _refresh():
        with lock:
            tracker_id = by_class.get(obj)
        if tracker_id is not None:
            return tracker_id, True
    return None


def adopt_class(tracker_id: Any) -> tuple[Any, bool] | None:
    """The class a copy tracks under ``tracker_id``, and whether this process defined it;
    None if no copy does. Called by skypickle's tracker on load, for an id it does not know."""
    for _by_class, by_id, lock in _refresh():
        with lock:
            obj = by_id.get(tracker_id)
        if obj is not None:
            return obj, _defined_here(obj)
    return None


def share(obj: Any, tracker_id: Any) -> None:
    """Register a pair skypickle's tracker has just learnt in every copy imported."""
    for tracker in _refresh():
        _register(tracker, obj, tracker_id)


def _copy_imported(module: types.ModuleType) -> None:
    """A copy has just run: give it every pair skypickle's tracker holds."""
    _refresh()
    tracker = _tracker(module)
    if tracker is None:
        return
    for obj, tracker_id in _skypickle._tracked_classes():
        _register(tracker, obj, tracker_id)


class _SyncingLoader:
    """The loader the import system found for a copy, with one step added after the module
    has run (``_copy_imported``). Everything else is the real loader's: the module is given
    its real loader back before it runs, so nothing that reads ``__loader__`` sees this one."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and getattr(spec, "loader", None) is self:
            spec.loader = loader
        loader.exec_module(module)
        _copy_imported(module)


class _Finder:
    """First in ``sys.meta_path``; finds nothing itself. For a copy's module name, asks the
    finders after it and wraps the loader they return; every other import costs a set lookup."""

    _skypickle_bridge = True

    def __init__(self) -> None:
        # Names this thread is finding, so that a finder after us that asks the import system
        # again (importlib.util.find_spec) does not bring us back in.
        self._busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _COPY_NAMES:
            return None
        busy = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = self._find_after_us(fullname, path, target)
        finally:
            busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _SyncingLoader(loader)
        return spec

    def _find_after_us(self, fullname: str, path: Any, target: Any) -> Any:
        finders = list(sys.meta_path)
        for index, finder in enumerate(finders):
            if finder is self:
                finders = finders[index + 1 :]
                break
        for finder in finders:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def invalidate_caches(self) -> None:
        return None


def install() -> None:
    """Put the finder first in ``sys.meta_path`` (once) and note the copies already imported."""
    if not any(getattr(finder, "_skypickle_bridge", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    _refresh()
