"""dump() streams: frames are flushed to the file as they complete, large payloads bypass frames."""

from __future__ import annotations

import pickle

import pytest
import skypickle

FRAME = 64 * 1024


class RecordingFile:
    """A file object that records every write() call (as bytes, in order)."""

    def __init__(self):
        self.writes: list[bytes] = []

    def write(self, data):
        self.writes.append(bytes(data))
        return len(self.writes[-1])

    def getvalue(self) -> bytes:
        return b"".join(self.writes)


def _many_small_items(n=2000):
    # ~2.2 MB of distinct small strings: dozens of 64 KiB frames at protocol 4+
    return [f"{i:06d}-" + "x" * 1000 for i in range(n)]


@pytest.mark.parametrize("proto", (4, 5))
def test_frames_are_flushed_as_they_complete(proto):
    obj = _many_small_items()
    f = RecordingFile()
    skypickle.dump(obj, f, protocol=proto)
    data = skypickle.dumps(obj, protocol=proto)
    assert f.getvalue() == data
    assert data == pickle.dumps(obj, protocol=proto)
    total = len(data)
    assert total > 2_000_000
    # several writes, none of them the whole stream, each about a frame long
    assert len(f.writes) >= total // (2 * FRAME), [len(w) for w in f.writes]
    assert max(len(w) for w in f.writes) < 2 * FRAME, max(len(w) for w in f.writes)


@pytest.mark.parametrize("proto", (4, 5))
def test_frames_flushed_through_pickler_too(proto):
    obj = _many_small_items(500)
    f = RecordingFile()
    skypickle.Pickler(f, proto).dump(obj)
    assert f.getvalue() == pickle.dumps(obj, protocol=proto)
    assert len(f.writes) >= 3


@pytest.mark.parametrize("proto", (4, 5))
@pytest.mark.parametrize("size", (FRAME, 200_000, 3_000_000))
def test_large_bytes_payload_is_its_own_write(size, proto):
    payload = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    assert len(payload) == size
    obj = [b"small", payload, "tail", payload]
    f = RecordingFile()
    skypickle.dump(obj, f, protocol=proto)
    assert f.getvalue() == skypickle.dumps(obj, protocol=proto) == pickle.dumps(obj, protocol=proto)
    own = [w for w in f.writes if w == payload]
    assert len(own) == 1, [len(w) for w in f.writes]  # the second occurrence is a memo GET
    # nothing else written is payload-sized: the payload was not copied into a frame
    assert all(len(w) < size for w in f.writes if w != payload)
    assert pickle.loads(f.getvalue())[1] == payload


@pytest.mark.parametrize("proto", (4, 5))
def test_small_object_single_write(proto):
    f = RecordingFile()
    skypickle.dump({"a": 1}, f, protocol=proto)
    assert len(f.writes) >= 1
    assert f.getvalue() == pickle.dumps({"a": 1}, protocol=proto)


@pytest.mark.parametrize("proto", range(6))
def test_dump_concatenation_equals_dumps_all_protocols(proto):
    obj = [_many_small_items(300), b"B" * 100_000, bytearray(b"A" * 100_000), "S" * 100_000]
    f = RecordingFile()
    skypickle.dump(obj, f, protocol=proto)
    assert f.getvalue() == skypickle.dumps(obj, protocol=proto) == pickle.dumps(obj, protocol=proto)


def test_dump_to_real_file_streams(tmp_path):
    obj = _many_small_items()
    path = tmp_path / "big.pkl"
    with open(path, "wb") as fh:
        skypickle.dump(obj, fh)
    assert path.read_bytes() == pickle.dumps(obj, protocol=5)
    with open(path, "rb") as fh:
        assert pickle.load(fh) == obj


def test_out_of_band_large_buffer_not_written():
    payload = bytearray(b"z" * 1_000_000)
    buffers = []
    f = RecordingFile()
    skypickle.dump([pickle.PickleBuffer(payload)], f, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1
    assert sum(len(w) for w in f.writes) < 100
    assert pickle.loads(f.getvalue(), buffers=buffers)[0] == payload


def test_peak_memory_of_a_large_bytes_dump(run_in_subprocess):
    proc = run_in_subprocess(
        """
        import os, resource, sys
        import skypickle

        SIZE = 200 * 1024 * 1024
        payload = b"x" * SIZE  # touched memory (not a lazily zeroed calloc)
        path = os.path.join(os.getcwd(), "big.pkl")
        with open(path, "wb") as f:
            skypickle.dump(payload, f)
        # VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a child forked from a
        # big pytest process would report the parent's peak.
        with open("/proc/self/status") as status:
            hwm = [line for line in status if line.startswith("VmHWM:")]
        peak = (
            int(hwm[0].split()[1]) * 1024
            if hwm
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
            f.seek(-16, 2)
            tail = f.read()
        os.remove(path)
        print(SIZE, peak, size, head[:2].hex(), tail[-1:].hex())
        """,
        timeout=300,
    )
    size_s, peak_s, fsize_s, head, tail = proc.stdout.split()
    size, peak, fsize = int(size_s), int(peak_s), int(fsize_s)
    assert head == "8005"
    assert tail == "2e"  # STOP
    assert size < fsize < size + 100
    limit = 1.5 * size + 100 * 1024 * 1024
    assert peak < limit, f"peak RSS {peak / 2**20:.0f} MiB >= {limit / 2**20:.0f} MiB"
