"""The memo's kept tables (``memo::Spare``): a thread that makes large dumps repeatedly keeps
the last large memo table (and deterministic mode's content index) for its next dump, to
spare it the page faults of fresh memory.

What must hold: every dump's output is exactly what a fresh process writes (a kept table is
cleared before use: no stale entry may turn into a memo GET), the memory kept per thread is
bounded, a one-off big dump keeps nothing, and what is kept is given back after 64 dumps that
do not take it.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest
import skypickle
from skypickle._skypickle import _kept_memo_bytes

# 4 MiB of slots, 2.1 MiB of content index, 64 KiB of small table.
BOUND = 4 * 2**20 + 131072 * 17 + 64 * 2**10

GRAPHS = """
def graphs():
    # Sizes on both sides of each table size (the memo grows x4 up to 50,000 entries).
    for n in (3_000, 12_000, 45_000, 50_000, 200_000, 50_000, 12_000):
        yield n, [f"s{i}-{n}" for i in range(n)]
        yield n, {f"k{i}": (i, str(i)) for i in range(n // 2)}
"""


def _digests(deterministic: bool) -> list[str]:
    ns: dict = {}
    exec(textwrap.dedent(GRAPHS), ns)
    return [
        hashlib.sha256(skypickle.dumps(g, deterministic=deterministic)).hexdigest()
        for _, g in ns["graphs"]()
    ]


@pytest.mark.parametrize("deterministic", [False, True])
def test_repeated_large_dumps_write_what_a_fresh_process_writes(deterministic):
    # This process has made large dumps already (other tests, and the warm-up here): the
    # later dumps take kept tables. A fresh interpreter makes each dump on its own.
    for _ in range(2):
        _digests(deterministic)
    here = _digests(deterministic)
    code = GRAPHS + textwrap.dedent(
        f"""
        import hashlib, skypickle
        for _, g in graphs():
            # One dump per interpreter state: a fresh memo every time.
            print(hashlib.sha256(skypickle.dumps(g, deterministic={deterministic})).hexdigest())
        """
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert here == fresh


def test_a_kept_table_holds_no_stale_entries():
    """Objects of a second graph take the addresses the first graph's objects had: a table
    kept from the first dump and not cleared would write memo GETs for them."""
    reused = 0
    for _ in range(3):
        first = [object.__new__(Thing) for _ in range(60_000)]
        skypickle.dumps(first)
        skypickle.dumps(first)  # the second dump keeps its table
        addresses = {id(t) for t in first}
        del first
        second = [Thing(i) for i in range(60_000)]  # addresses reused
        reused = len({id(t) for t in second} & addresses)
        loaded = pickle.loads(skypickle.dumps(second))
        assert [t.i for t in loaded] == list(range(60_000))
        assert len({id(t) for t in loaded}) == 60_000
    assert reused > 1_000  # the case this test is about did arise


class Thing:
    def __init__(self, i=0):
        self.i = i


def _on_fresh_thread(body):
    """Run ``body`` on a new thread: its kept tables start empty and end with it."""
    out = {}

    def run():
        out["value"] = body()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["value"]


def test_a_one_off_big_dump_keeps_nothing():
    def body():
        skypickle.dumps([str(i) for i in range(50_000)])
        return _kept_memo_bytes()

    assert _on_fresh_thread(body) == 0


def test_repeated_big_dumps_keep_a_bounded_amount_given_back_when_unused():
    def body():
        seen = []
        strs = [str(i) for i in range(300_000)]
        for n in (50_000, 50_000, 300_000, 300_000):
            skypickle.dumps(strs[:n])
            skypickle.dumps(strs[:n], deterministic=True)
            seen.append(_kept_memo_bytes())
        kept = _kept_memo_bytes()
        for _ in range(65):
            skypickle.dumps(1)
        return seen, kept, _kept_memo_bytes()

    seen, kept, after = _on_fresh_thread(body)
    assert seen[1] >= 4 * 2**20  # 50,000 strs: the 4 MiB table and a content index kept
    assert all(k <= BOUND for k in seen), seen
    assert kept > 0
    assert after <= 64 * 2**10  # only the small table (at most 4,096 slots)


def test_kept_tables_are_per_thread():
    strs = [str(i) for i in range(50_000)]
    skypickle.dumps(strs)
    skypickle.dumps(strs)
    assert _kept_memo_bytes() >= 4 * 2**20
    assert _on_fresh_thread(_kept_memo_bytes) == 0
