"""skypickle for ``joblib.Memory``: cache keys that see the code of functions and classes.

``Memory`` keys each call of a cached function by ``joblib.hash`` of its arguments, a pickler
that writes every function and class by its name:

* a lambda or a closure given as an argument cannot be hashed at all (``PicklingError``: it is
  not found under its name), so the call fails;
* a function or class defined in ``__main__`` (a script, a notebook) is hashed by its name
  only: change its code, or a global it reads, and the result computed with the old one is
  returned.

And ``Memory`` identifies the cached function itself by its module, name and source text:
two closures made by one factory (``make_scaler(3)``, ``make_scaler(4)``) share one cache and
return each other's results, and the globals the function reads are no part of any key.

This module:

* ``hash(obj, hash_name="md5", coerce_mmap=False, *, normalize_paths=True)``:
  ``joblib.hash``, except that each function and class that travels by value (what skypickle
  and cloudpickle pickle by value: defined in ``__main__``, lambdas, closures, local classes,
  modules registered with ``register_pickle_by_value``) is hashed by its
  ``skypickle.fingerprint``: its code, closure, the globals it uses and its defaults, the same
  in every process whatever ``PYTHONHASHSEED``. Everything else is hashed as joblib hashes it
  (the same digests: existing caches stay valid for such arguments).
* ``install(normalize_paths=True)`` / ``uninstall()``: ``joblib.hash`` (and the one ``Memory``
  calls) is that ``hash`` in this process, so lambdas and closures can be arguments of cached
  functions, and a changed one is a cache miss.
* ``cache(memory, func=None, **kwargs)``: ``memory.cache(func, **kwargs)`` (also as a
  decorator), keying each call by the function's fingerprint as well as by its arguments
  (hashed as above, whether or not ``install()`` was called). Two closures of one factory get
  their own results, and a change to a global the function reads is a miss. joblib's own
  check of the function (its source text, which clears the cache when it changes) is kept.
  The function is fingerprinted at each call, globals included: a function reading a large
  global hashes it every time. A function importable by the loader (a module on the path) is
  pickled by reference, so its fingerprint is its name: only code that travels by value gains.

``normalize_paths`` (the default here, unlike ``skypickle.fingerprint``): a cache on disk
outlives the process, and the same code should find its results when the script moves to
another directory or gains lines above the function (file base names, first line numbers left
out; line numbers within the function still count).
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

from joblib import hashing as _jhashing
from joblib import memory as _jmemory
from joblib.func_inspect import filter_args as _filter_args

import skypickle

_HASH_NAMES = ("md5", "sha1")

# The fingerprint function, looked up here at each call so that a test can count the calls.
_fingerprint = skypickle.fingerprint


class Fingerprint:
    """What a function or class that travels by value is hashed as: its fingerprint, in an
    object of its own type so that no argument of other data can hash the same."""

    __slots__ = ("digest",)

    def __init__(self, digest: str) -> None:
        self.digest = digest

    def __reduce__(self):
        return Fingerprint, (self.digest,)

    def __repr__(self) -> str:
        return f"Fingerprint({self.digest!r})"


def _travels_by_value(obj: Any) -> bool:
    return isinstance(obj, (types.FunctionType, type)) and not (
        skypickle._should_pickle_by_reference(obj)
    )


class _FingerprintingHasher:
    """joblib's hashers with one change: ``save_global``, through which they write every
    function and class (their dispatch tables map ``FunctionType`` and ``type`` to it, and
    pickle sends classes of other metaclasses there), writes the fingerprint of one that
    travels by value instead of its name."""

    normalize_paths = True

    def save_global(self, obj: Any, name: Any = None) -> None:
        if name is None and _travels_by_value(obj):
            self.save(Fingerprint(_fingerprint(obj, normalize_paths=self.normalize_paths)))
            # As pickle's save_global does: a second occurrence is a memo reference.
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _dispatch(base: Any) -> dict:
    table = dict(base.dispatch)
    table[types.FunctionType] = _FingerprintingHasher.save_global
    table[type] = _FingerprintingHasher.save_global
    return table


class Hasher(_FingerprintingHasher, _jhashing.Hasher):
    dispatch = _dispatch(_jhashing.Hasher)


class NumpyHasher(_FingerprintingHasher, _jhashing.NumpyHasher):
    dispatch = _dispatch(_jhashing.NumpyHasher)


def hash(
    obj: Any, hash_name: str = "md5", coerce_mmap: bool = False, *, normalize_paths: bool = True
) -> str:
    """``joblib.hash(obj, hash_name, coerce_mmap)``, hashing each function and class that
    travels by value by its ``skypickle.fingerprint`` (see the module documentation)."""
    if hash_name not in _HASH_NAMES:
        raise ValueError(f"hash_name must be one of {_HASH_NAMES}, not {hash_name!r}")
    # joblib's choice: its numpy hasher once numpy is imported (it hashes arrays' memory
    # directly), never importing numpy itself.
    if "numpy" in sys.modules:
        hasher: Any = NumpyHasher(hash_name=hash_name, coerce_mmap=coerce_mmap)
    else:
        hasher = Hasher(hash_name=hash_name)
    hasher.normalize_paths = normalize_paths
    return hasher.hash(obj)


# --------------------------------------------------------------------------------------------
# install() / uninstall()
# --------------------------------------------------------------------------------------------

_saved: dict[tuple[Any, str], Any] = {}


def install(*, normalize_paths: bool = True) -> None:
    """Make ``joblib.hash``, and the hash ``Memory`` keys calls by, this module's ``hash`` in
    this process. Calling it again only updates ``normalize_paths``."""
    import joblib

    ours = functools.partial(hash, normalize_paths=normalize_paths)
    # Memory calls joblib.hashing.hash through the module; joblib.hash is the same function
    # bound at joblib's import, for users.
    for module in (_jhashing, joblib):
        key = (module, "hash")
        if key not in _saved:
            _saved[key] = module.hash
        module.hash = ours


def installed() -> bool:
    """Whether ``install()`` is in force."""
    return bool(_saved)


def uninstall() -> None:
    """Give joblib its own ``hash`` back."""
    for (module, name), value in _saved.items():
        current = getattr(module, name)
        # Left alone if someone replaced ours since.
        if isinstance(current, functools.partial) and current.func is hash:
            setattr(module, name, value)
    _saved.clear()


# --------------------------------------------------------------------------------------------
# cache()
# --------------------------------------------------------------------------------------------


class _KeyedByFingerprint:
    """What ``cache()`` turns a ``MemorizedFunc`` into: each call's key (``_get_args_id``, which
    every lookup and store of joblib's goes through) hashes the function with the arguments."""

    _skypickle_normalize_paths = True

    def _get_args_id(self, *args: Any, **kwargs: Any) -> str:
        # joblib's key is the hash of the arguments left after ``ignore``; the function goes
        # into the same hash, by fingerprint when it travels by value. The arguments are hashed
        # here with this module's hasher, so that cache() needs no install().
        filtered = _filter_args(self.func, self.ignore, args, kwargs)
        return hash(
            (self.func, filtered),
            coerce_mmap=self.mmap_mode is not None,
            normalize_paths=self._skypickle_normalize_paths,
        )


class FingerprintedFunc(_KeyedByFingerprint, _jmemory.MemorizedFunc):
    """A ``joblib.memory.MemorizedFunc`` keyed by its function's fingerprint too."""


_KEYED: dict[type, type] = {_jmemory.MemorizedFunc: FingerprintedFunc}

_AsyncMemorizedFunc = getattr(_jmemory, "AsyncMemorizedFunc", None)
if _AsyncMemorizedFunc is not None:  # joblib 1.4 and later: coroutine functions

    class AsyncFingerprintedFunc(_KeyedByFingerprint, _AsyncMemorizedFunc):
        """A ``joblib.memory.AsyncMemorizedFunc`` keyed by its function's fingerprint too."""

    _KEYED[_AsyncMemorizedFunc] = AsyncFingerprintedFunc


def cache(memory: Any, func: Any = None, *, normalize_paths: bool = True, **kwargs: Any) -> Any:
    """``memory.cache(func, **kwargs)`` whose calls are keyed by the function's fingerprint as
    well as by their arguments (see the module documentation). Without ``func``, a decorator.
    """
    if func is None:
        return functools.partial(cache, memory, normalize_paths=normalize_paths, **kwargs)
    memorized = memory.cache(func, **kwargs)
    keyed = _KEYED.get(type(memorized))
    if keyed is None:
        # A Memory without a location stores nothing (joblib's NotMemorizedFunc): no key.
        return memorized
    # Memory.cache chooses the class (async for coroutine functions) and its arguments (the
    # store, compression, mmap mode, timestamp): taking its object and changing only the class,
    # to a subclass adding no state of its own, leaves all of that to joblib.
    memorized.__class__ = keyed
    memorized._skypickle_normalize_paths = normalize_paths
    return memorized
