"""Regression tests for defects found in review, one section per defect.

Cases that crashed the interpreter (or could) run in a child interpreter, so a regression
fails one test with the child's output instead of killing the test run.
"""

from __future__ import annotations

import pickle

import pytest

# --------------------------------------------------------------------------------------------
# 1. User code run while a buffer is being written (buffer_callback, __bool__, file.write)
# --------------------------------------------------------------------------------------------

# Run in a child interpreter: before the fix the first case was a use-after-free (the memory
# of a released PickleBuffer's base read after the callback's result freed it), which
# segfaults for a base large enough to be returned to the OS when freed.
BUFFER_CHILD = """
import io
import pickle
import sys

import skypickle

MIB = 1 << 20


class Releases:
    '''A callback result whose truth value releases the PickleBuffer it was given (and with
    it the last reference to the buffer's base).'''

    def __init__(self, buf, verdict, then=None):
        self.buf = buf
        self.verdict = verdict
        self.then = then

    def __bool__(self):
        self.buf.release()
        if self.then is not None:
            self.then()
        return self.verdict


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))


def release_and_drop(verdict, size, to_file, readonly):
    content = (b"x" if readonly else bytearray(b"x")) * size
    expected = bytes(content)
    pb = pickle.PickleBuffer(content)
    del content  # the PickleBuffer holds the only reference to its base
    buffers = []

    def callback(buf):
        buffers.append(buf)
        return Releases(buf, verdict)

    def run():
        if to_file:
            f = io.BytesIO()
            skypickle.dump(pb, f, protocol=5, buffer_callback=callback)
            data = f.getvalue()
        else:
            data = skypickle.dumps(pb, protocol=5, buffer_callback=callback)
        # Reuse the freed memory, so stale reads would show different bytes.
        junk = [b"y" * size for _ in range(4)]
        del junk
        if verdict:
            loaded = pickle.loads(data)
            return bytes(loaded) == expected and (
                isinstance(loaded, bytes) if readonly else isinstance(loaded, bytearray)
            )
        reference = pickle.dumps(
            pickle.PickleBuffer(expected if readonly else bytearray(expected)),
            protocol=5,
            buffer_callback=lambda b: False,
        )
        return data == reference

    return outcome(run)


def resize_base(verdict, size):
    base = bytearray(b"x" * size)
    pb = pickle.PickleBuffer(base)

    def callback(buf):
        return Releases(buf, verdict, then=lambda: base.extend(b"z" * (4 * size)))

    def run():
        data = skypickle.dumps(pb, protocol=5, buffer_callback=callback)
        if verdict:
            return bytes(pickle.loads(data)) == b"x" * size
        return data == b"\\x80\\x05\\x97."

    return outcome(run)


class Writer(io.BytesIO):
    '''A file whose write() changes the bytearray being pickled.'''

    def __init__(self, action):
        super().__init__()
        self.action = action

    def write(self, data):
        n = super().write(data)
        self.action()
        return n


def dump_with_hostile_write(size, kind):
    base = bytearray(b"x" * size)
    holder = [base]
    if kind == "bytearray resized":
        obj = [base, "tail"]
        action = lambda: base.clear() or base.extend(b"z" * (3 * size))
    elif kind == "picklebuffer released":
        pb = pickle.PickleBuffer(holder.pop())
        obj = [pb, "tail"]
        action = pb.release
    else:  # picklebuffer released, base resized
        pb = pickle.PickleBuffer(base)
        obj = [pb, "tail"]
        action = lambda: pb.release() or base.extend(b"z" * size)

    def run():
        f = Writer(action)
        skypickle.dump(obj, f, protocol=5)
        loaded = pickle.loads(f.getvalue())
        return bytes(loaded[0]) == b"x" * size and loaded[1] == "tail"

    return outcome(run)


results = {}
for verdict in (True, False):
    for size in (1000, 4 * MIB):
        for to_file in (False, True):
            for readonly in (False, True):
                key = ("release", verdict, size, to_file, readonly)
                results[key] = release_and_drop(verdict, size, to_file, readonly)
        results[("resize", verdict, size)] = resize_base(verdict, size)
for size in (1000, 4 * MIB):
    for kind in ("bytearray resized", "picklebuffer released", "released and resized"):
        results[("write", size, kind)] = dump_with_hostile_write(size, kind)
sys.stdout.write(repr(results))
"""


RELEASED = "operation forbidden on released PickleBuffer object"


def test_user_code_cannot_free_a_buffer_being_written(run_in_subprocess):
    import ast

    proc = run_in_subprocess(BUFFER_CHILD, timeout=300)
    results = ast.literal_eval(proc.stdout)
    for key, got in results.items():
        what = key[0]
        if what == "release":
            _, verdict, size, to_file, _ = key
            if verdict and to_file and size >= 65536:
                # A large in-band payload is handed to write() as the PickleBuffer itself
                # (as `pickle` does), which the callback released: the file refuses it.
                assert got == ("raise", "ValueError", RELEASED), (key, got)
            else:
                # The view skypickle holds keeps the memory: written correctly.
                assert got == ("ok", True), (key, got)
        elif what == "resize":
            # The export skypickle holds forbids the resize: the callback's error surfaces.
            assert got[0] == "raise" and got[1] == "BufferError", (key, got)
        elif key[2] == "bytearray resized":
            # The bytearray was copied before anything was written: its content then.
            assert got == ("ok", True), (key, got)
        elif key[1] < 65536:
            # A small payload is written before write() is ever called.
            assert got == ("ok", True), (key, got)
        else:
            # A large one is handed to write() after the previous write released it: the
            # file gets the released PickleBuffer (as with `pickle`), or the resize fails.
            assert got[0] == "raise" and got[1] in ("ValueError", "BufferError"), (key, got)
    assert len(results) == 2 * 2 * 2 * 2 + 2 * 2 + 2 * 3


def test_released_picklebuffer_is_refused_as_pickle_does():
    import skypickle

    pb = pickle.PickleBuffer(b"abc")
    pb.release()
    with pytest.raises(ValueError) as expected:
        pickle.dumps(pb, protocol=5)
    with pytest.raises(ValueError) as got:
        skypickle.dumps(pb, protocol=5)
    assert str(got.value) == str(expected.value)
