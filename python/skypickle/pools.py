"""Closures, lambdas and ``__main__`` classes through the standard library's process pools.

``concurrent.futures.ProcessPoolExecutor`` and ``multiprocessing.Pool`` pickle work with plain
``pickle``, which cannot send a lambda, a closure or a class defined in ``__main__`` (with the
``spawn`` start method, not even a module-level function of a script run as ``__main__`` when
the class is defined under ``if __name__ == "__main__":``). This module makes any object travel
inside a skypickle payload that plain ``pickle`` can carry:

* :func:`ship` wraps one object: the wrapper pickles as "load this skypickle payload", so the
  receiving side gets the object itself, not a wrapper;
* :class:`ProcessPoolExecutor` and :class:`Pool` are drop-in subclasses whose ``submit``,
  ``map``, ``apply_async``, ``starmap``, ``imap``... ship the callable and its arguments to the
  workers and the results (and exceptions) back, for any start method, ``spawn`` included.

Instances of classes that travelled by value come back as instances of the original class
(``isinstance`` holds in the parent), through skypickle's class tracking.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
import pickle
from typing import Any, Callable

from . import _skypickle

__all__ = ["Pool", "ProcessPoolExecutor", "Shipped", "ShippedCall", "ship"]


class Shipped:
    """An object carried as a skypickle payload. Pickling this wrapper with plain ``pickle``
    writes ``pickle.loads(payload)``: whoever loads it gets the original object back."""

    __slots__ = ("payload",)

    def __init__(self, obj: Any) -> None:
        self.payload = _skypickle.dumps(obj)

    def __reduce__(self):
        return (pickle.loads, (self.payload,))

    def __repr__(self) -> str:
        return f"<skypickle.pools.Shipped payload of {len(self.payload)} bytes>"


def ship(obj: Any) -> Shipped:
    """Wrap ``obj`` so that plain ``pickle`` sends it as a skypickle payload (see
    :class:`Shipped`). Loading the pickle gives ``obj`` itself."""
    return Shipped(obj)


class ShippedException(Exception):
    """Stands in for an exception raised by shipped work, so that it goes back to the parent
    as a skypickle payload: the parent receives the original exception (of a class defined in
    ``__main__`` too)."""

    def __init__(self, original: BaseException, payload: bytes) -> None:
        super().__init__(repr(original))
        self.payload = payload

    def __reduce__(self):
        return (pickle.loads, (self.payload,))


class ShippedCall:
    """``fn(*args, **kwargs)`` as one skypickle payload that plain ``pickle`` can carry.
    Calling it (in the worker) runs the call and returns the result :func:`ship`-ped, so the
    result travels back as a skypickle payload too; an exception is sent back the same way."""

    __slots__ = ("_call", "_payload")

    def __init__(self, fn: Callable, args: tuple = (), kwargs: dict | None = None) -> None:
        self._call = (fn, tuple(args), dict(kwargs or {}))
        self._payload = _skypickle.dumps(self._call)

    def __reduce__(self):
        return (_load_call, (self._payload,))

    def __call__(self, *more_args: Any) -> Shipped:
        fn, args, kwargs = self._call
        try:
            result = fn(*args, *more_args, **kwargs)
        except Exception as exc:
            try:
                payload = _skypickle.dumps(exc)
            except Exception:
                raise exc from None
            raise ShippedException(exc, payload) from None
        return ship(result)


def _load_call(payload: bytes) -> ShippedCall:
    call = ShippedCall.__new__(ShippedCall)
    call._payload = payload
    call._call = pickle.loads(payload)
    return call


def _ship_items(iterable):
    for item in iterable:
        yield ship(item)


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor):
    """``concurrent.futures.ProcessPoolExecutor`` whose work travels as skypickle payloads:
    lambdas, closures and ``__main__`` classes work with any ``mp_context`` (``"spawn"``
    included; a start method name is accepted as well as a context)."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable | None = None,
        initargs: tuple = (),
        **kwargs: Any,
    ) -> None:
        if isinstance(mp_context, str):
            mp_context = multiprocessing.get_context(mp_context)
        if initializer is not None:
            initializer, initargs = ShippedCall(initializer, initargs), ()
        super().__init__(max_workers, mp_context, initializer, initargs, **kwargs)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        return super().submit(ShippedCall(fn, args, kwargs))


class Pool(multiprocessing.pool.Pool):
    """``multiprocessing.Pool`` whose work travels as skypickle payloads. ``context`` may be a
    start method name (``"fork"``, ``"spawn"``, ``"forkserver"``) or a context."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable | None = None,
        initargs: tuple = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        if isinstance(context, str):
            context = multiprocessing.get_context(context)
        if initializer is not None:
            initializer, initargs = ShippedCall(initializer, initargs), ()
        super().__init__(processes, initializer, initargs, maxtasksperchild, context)

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):  # noqa: B006
        return super().apply_async(ShippedCall(func, args, kwds), (), {}, callback, error_callback)

    def _map_async(
        self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None
    ):
        return super()._map_async(
            ShippedCall(func), _ship_items(iterable), mapper, chunksize, callback, error_callback
        )

    def imap(self, func, iterable, chunksize=1):
        return super().imap(ShippedCall(func), _ship_items(iterable), chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        return super().imap_unordered(ShippedCall(func), _ship_items(iterable), chunksize)
