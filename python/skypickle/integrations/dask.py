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

Tokens: ``install()`` also calls ``install_tokenize()``, which users of dask without
distributed can call alone. ``dask.base.tokenize`` then gives each function (lambdas and
closures included) and each class one ``skypickle.fingerprint``: a digest of its deterministic
pickle, the same in every process whatever ``PYTHONHASHSEED``, that changes with the code, the
closure, the globals and the defaults. dask's own way pickles such an object two or three
times (and loads it each time) until two hashes agree, and its token for a class defined in
``__main__`` differs from one process to the next (cloudpickle's class ids are random).

* Registered with ``normalize_token``: ``types.FunctionType`` and ``type`` (so every class,
  whatever its metaclass, unless something else is registered for that metaclass). An
  importable function or class is pickled by reference, so its fingerprint stands for its
  module and qualified name, as dask's token does, for a fraction of the cost (one short
  pickle instead of two dumps and two loads).
* Not registered: everything dask already dispatches (``functools.partial``, ``curry``,
  ``Compose``, bound methods, builtins: their parts come back through the registrations
  above) and instances of classes (``__dask_tokenize__``, dataclasses, callable instances):
  overriding dask's handler for ``object`` would change the token of every object of every
  library. They keep dask's path, where the pickler dask falls back to for what plain
  ``pickle`` cannot name (``dask.tokenize.cloudpickle``) writes skypickle's deterministic
  stream: an instance of a ``__main__`` class gets the same token in every process too.
* What skypickle cannot pickle (a closure over a lock) gets dask's own treatment (a random
  token, or ``TokenizationError`` when determinism is required). When it is required
  (``tokenize(..., ensure_deterministic=True)`` or the ``tokenize.ensure-deterministic``
  setting), each fingerprint is computed twice and compared, as dask compares its pickles.

``uninstall_tokenize()`` (also called by ``uninstall()``) gives dask its own handlers back.
Tokens made with and without the registration differ (a different hash of the same
information): processes that compare tokens should agree on it, as workers installed by
``install()`` do.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
import types
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


def _limited(writer: Any, max_bytes: int | None) -> Any:
    """``writer`` (skypickle or a compat API) with ``max_bytes`` on its ``dumps``/``dump``: a
    module object of its own, so that the original is left as it is."""
    if max_bytes is None:
        return writer
    api = types.ModuleType(f"{writer.__name__}[max_bytes={max_bytes}]", writer.__doc__)
    api.__dict__.update({k: v for k, v in vars(writer).items() if not k.startswith("__")})
    api.dumps = functools.partial(writer.dumps, max_bytes=max_bytes)
    api.dump = functools.partial(writer.dump, max_bytes=max_bytes)
    return api


def _patch_this_process(workers: str = "skypickle", max_task_bytes: int | None = None) -> list[str]:
    """Point every place dask and distributed call cloudpickle at skypickle, writing for
    ``workers``, refusing payloads over ``max_task_bytes``; return what was patched."""
    if workers == "skypickle":
        writer: Any = _limited(skypickle, max_task_bytes)
        mp_dumps: Any = functools.partial(writer.dumps, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        from skypickle.compat import for_target

        # distributed and dask import the top-level cloudpickle, so their workers load that.
        writer = _limited(for_target("cloudpickle"), max_task_bytes)
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
    # Tokens are computed and compared where graphs are built: skypickle's own stream serves
    # either mode (and gives the same token in both).
    if install_tokenize():
        patched.append(_tokenize_module().__name__)
    return patched


# --------------------------------------------------------------------------------------------
# Tokenization
# --------------------------------------------------------------------------------------------

#: The first element of every token made here: no token dask makes otherwise can equal one.
TOKEN_TAG = "skypickle.fingerprint"

# The fingerprint function, looked up here at each call so that a test can count the calls.
_fingerprint = skypickle.fingerprint
_ABSENT = object()


class _TokenizeState:
    """What ``install_tokenize()`` changed, to be given back by ``uninstall_tokenize()``."""

    def __init__(self, dtok: Any, generic: Any) -> None:
        import dask.config

        self.dtok = dtok
        self.config = dask.config
        # tokenize's ensure_deterministic argument, set for the duration of each call (absent
        # from older dask, which reads the setting only).
        self.ensure_var = getattr(dtok, "_ENSURE_DETERMINISTIC", None)
        # dask's handler for ``object`` (``normalize_object``): what the registered types
        # resolved to before, and what is called for what skypickle cannot pickle.
        self.generic = generic
        self.normalize_paths = False
        # type -> the entry ``normalize_token._lookup`` had for it (or _ABSENT).
        self.lookup_saved: dict[type, Any] = {}
        self.pickler_saved: Any = _ABSENT


_token_state: _TokenizeState | None = None


def _tokenize_module() -> Any:
    """The module holding ``normalize_token`` and the ``cloudpickle`` that ``tokenize`` falls
    back to: ``dask.tokenize`` (dask 2024.2 and later) or ``dask.base`` (before)."""
    import importlib

    for name in ("dask.tokenize", "dask.base"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "normalize_token"):
            return module
    return None


def _determinism_required(state: _TokenizeState) -> bool:
    """What dask reads before raising ``TokenizationError``: ``tokenize``'s
    ``ensure_deterministic`` argument, else the ``tokenize.ensure-deterministic`` setting."""
    value = state.ensure_var.get(None) if state.ensure_var is not None else None
    if value is not None:
        return bool(value)
    # Read where dask.config.get would find it (dask's defaults define the key, and set()
    # keeps the spelling it finds): dask.config.get costs as much as a third of a small
    # function's fingerprint, and this runs for every function.
    try:
        return bool(state.config.config["tokenize"]["ensure-deterministic"])
    except (KeyError, TypeError):
        return bool(state.config.get("tokenize.ensure-deterministic", False))


def _normalize_by_fingerprint(obj: Any) -> Any:
    """dask's ``normalize_token`` for functions and classes: their fingerprint."""
    state = _token_state
    if state is None:  # uninstalled while a tokenize was running: dask's own way
        import dask.base

        return dask.base.normalize_token.dispatch(object)(obj)
    normalize_paths = state.normalize_paths
    try:
        digest = _fingerprint(obj, normalize_paths=normalize_paths)
    except Exception:
        # What skypickle cannot pickle (a closure over a lock, say) cannot be pickled by dask's
        # fallback either: dask decides, giving a random token or raising TokenizationError.
        return state.generic(obj)
    # One fingerprint is deterministic as far as the objects' own reductions are: when the
    # caller requires determinism, check those too, as dask does by pickling twice.
    if _determinism_required(state):
        if _fingerprint(obj, normalize_paths=normalize_paths) != digest:
            raise state.dtok.TokenizationError(
                f"{obj!r} cannot be deterministically hashed: two pickles of it differ"
            )
    return TOKEN_TAG, digest


class _DeterministicPickler:
    """What ``dask.tokenize.cloudpickle`` becomes: dask calls its ``dumps`` for what plain
    ``pickle`` cannot name or names in ``__main__`` (instances of ``__main__`` classes, bound
    methods of them), hashes the bytes and loads them back."""

    __name__ = "skypickle (deterministic)"

    def __init__(self) -> None:
        self.normalize_paths = False

    def dumps(self, obj: Any, protocol: int | None = None, buffer_callback: Any = None) -> bytes:
        return skypickle.dumps(
            obj,
            protocol,
            buffer_callback,
            deterministic=True,
            normalize_paths=self.normalize_paths,
        )

    loads = staticmethod(pickle.loads)


_deterministic_pickler = _DeterministicPickler()


def _code_types(lookup: dict) -> list[type]:
    """The types to register: functions, ``type``, and every metaclass for which dask's table
    already holds an entry (``Dispatch`` stores what it found along a type's MRO under the type
    itself, so a metaclass looked up before would not reach the entry for ``type``)."""
    return [types.FunctionType, type] + [
        k for k in lookup if isinstance(k, type) and issubclass(k, type) and k is not type
    ]


def install_tokenize(*, normalize_paths: bool = False) -> list[type]:
    """Make ``dask.base.tokenize`` tokenize functions and classes by ``skypickle.fingerprint``
    in this process (see the module documentation). Needs dask only, not distributed.

    ``normalize_paths``: passed to ``fingerprint`` (source file base names, first line numbers
    left out), for tokens that stay the same when the code moves. Returns the types registered
    (empty without dask); calling it again only updates ``normalize_paths``.
    """
    global _token_state
    dtok = _tokenize_module()
    if dtok is None:
        return []
    normalize_token = dtok.normalize_token
    # Dispatch has no way to unregister: uninstall puts the table's entries back itself.
    lookup = normalize_token._lookup
    state = _token_state
    if state is None:
        state = _TokenizeState(dtok, normalize_token.dispatch(object))
    state.normalize_paths = normalize_paths
    _deterministic_pickler.normalize_paths = normalize_paths
    for cls in _code_types(lookup):
        current = lookup.get(cls, _ABSENT)
        if current is _normalize_by_fingerprint:
            continue
        # Only what would have reached dask's generic handler: a handler someone registered
        # for a metaclass of theirs (or for functions) stays theirs.
        if normalize_token.dispatch(cls) is not state.generic:
            continue
        state.lookup_saved[cls] = current
        normalize_token.register(cls, _normalize_by_fingerprint)
    if state.pickler_saved is _ABSENT and hasattr(dtok, "cloudpickle"):
        state.pickler_saved = dtok.cloudpickle
        dtok.cloudpickle = _deterministic_pickler
    _token_state = state
    return [cls for cls, fn in lookup.items() if fn is _normalize_by_fingerprint]


def tokenize_installed() -> bool:
    """Whether ``install_tokenize()`` (or ``install()``) is in force."""
    return _token_state is not None


def uninstall_tokenize() -> None:
    """Give dask back the handlers and the pickler ``install_tokenize()`` replaced."""
    global _token_state
    state = _token_state
    if state is None:
        return
    lookup = state.dtok.normalize_token._lookup
    for cls, previous in state.lookup_saved.items():
        # Left alone if someone registered another handler since.
        if lookup.get(cls) is _normalize_by_fingerprint:
            if previous is _ABSENT:
                del lookup[cls]
            else:
                lookup[cls] = previous
    # Metaclasses first looked up while installed hold the entry too: without it they resolve
    # through their MRO again.
    for cls in [c for c, fn in lookup.items() if fn is _normalize_by_fingerprint]:
        del lookup[cls]
    if state.pickler_saved is not _ABSENT and state.dtok.cloudpickle is _deterministic_pickler:
        state.dtok.cloudpickle = state.pickler_saved
    _token_state = None


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


def _make_plugin_class() -> type:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin as base
    except ImportError:  # distributed is not installed: dask alone
        base = object

    class SkypicklePlugin(base):
        """A distributed worker plugin that installs skypickle in each worker."""

        name = "skypickle"

        def setup(self, worker: Any = None) -> None:
            _patch_this_process()

        def teardown(self, worker: Any = None) -> None:
            pass

    # Pickled by reference (register_plugin sends an instance): found under this name.
    SkypicklePlugin.__qualname__ = "SkypicklePlugin"
    return SkypicklePlugin


def _plugin_class() -> type:
    cls = globals().get("SkypicklePlugin")
    if cls is None:
        cls = globals()["SkypicklePlugin"] = _make_plugin_class()
    return cls


def __getattr__(name: str) -> Any:
    # ``SkypicklePlugin`` is made on first use: its base class is distributed's, and importing
    # distributed also changes how every exception pickles (it installs tblib's reducers in
    # copyreg), which users of install_tokenize() alone should not get from importing this.
    if name == "SkypicklePlugin":
        return _plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def install(
    client: Any = None, workers: str | None = None, max_task_bytes: int | None = None
) -> list[str]:
    """Use skypickle in dask and distributed (see the module documentation).

    ``client``: a ``distributed.Client`` of an already running cluster. ``workers``:
    ``"skypickle"`` (workers import skypickle; it is installed on them too), ``"cloudpickle"``
    (workers need only cloudpickle) or ``None`` to decide as the module documentation says.
    ``max_task_bytes``: what this process pickles with skypickle (functions, closures and
    classes that travel by value, and whatever holds them) over this many bytes is refused
    with ``pickle.PicklingError`` naming its largest parts (``skypickle.dumps(max_bytes=)``).
    Returns the modules patched in this process; ``workers_mode()`` gives the choice made.
    """
    global _mode
    if workers is None:
        workers = "skypickle" if client is None or workers_have_skypickle(client) else "cloudpickle"
    elif workers not in WORKER_MODES:
        raise ValueError(f"workers must be one of {WORKER_MODES} or None, not {workers!r}")
    patched = _patch_this_process(workers, max_task_bytes)
    # A preload left from an earlier install("skypickle") would make new workers import
    # skypickle, which workers="cloudpickle" promises they need not have.
    _set_worker_preload(workers == "skypickle")
    if client is not None and workers == "skypickle":
        plugin = _plugin_class()
        client.register_plugin(plugin(), name=plugin.name)
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
    uninstall_tokenize()
    _mode = None
    _set_worker_preload(False)


def dask_setup(worker: Any = None) -> None:
    """Called by distributed when a worker preloads this module: install skypickle there."""
    _patch_this_process()
