"""The note naming where in the graph an unpicklable object sits, through by-value functions
and containers. Built while the error unwinds; the exception itself is pickle's."""

from __future__ import annotations

import threading

import pytest
import skypickle


def _notes(exc):
    return getattr(exc, "__notes__", [])


def test_path_through_function_globals():
    class Client:
        def __init__(self):
            self._lock = threading.Lock()

    namespace = {"client": Client()}
    exec("def uses():\n    return client", namespace)
    with pytest.raises(TypeError) as info:
        skypickle.dumps(namespace["uses"])
    assert _notes(info.value) == ["when pickling obj.__globals__['client']._lock"]


def test_path_through_closure_cell():
    def make():
        lock = threading.Lock()

        def f():
            return lock

        return f

    with pytest.raises(TypeError) as info:
        skypickle.dumps({"jobs": [make()]})
    assert _notes(info.value) == ["when pickling obj['jobs'][0].__closure__[0].cell_contents"]


def test_path_through_instance_state_and_class():
    class Handler:
        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(TypeError) as info:
        skypickle.dumps({"jobs": [0, 1, 2, Handler()]})
    assert _notes(info.value) == ["when pickling obj['jobs'][3].lock"]


def test_successful_dump_has_no_note_and_recursion_error_is_converted():
    import pickle
    import sys

    nested = []
    for _ in range(sys.getrecursionlimit() * 2):
        nested = [nested]
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(nested)
    assert isinstance(info.value.__cause__, RecursionError)
    assert _notes(info.value) == []
