"""explain(), max_bytes= and ``skypickle explain MODULE:OBJECT`` (issue #13, items 1 and 2).

Each case builds a payload whose large parts are known, and checks that ``explain`` names them
with their paths and sizes, that its sizes add up to ``len(dumps(obj))``, and that
``max_bytes`` refuses the payload naming the same culprit. Peak memory of a refused dump is
measured in a child process.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skypickle

MIB = 1024 * 1024


def namespace(source: str) -> dict:
    """Run ``source`` as a ``__main__``-like module: its functions and classes go by value."""
    ns = {"__name__": "__main__", "np": np}
    exec(compile(textwrap.dedent(source), "<explain-test>", "exec"), ns)
    return ns


def entry(exp, path):
    found = [e for e in exp.entries if e.path == path]
    assert found, f"no entry {path!r} in {[e.path for e in exp.entries]}"
    return found[0]


def assert_adds_up(obj, exp, protocol=None):
    assert exp.total == len(skypickle.dumps(obj, protocol=protocol))
    assert sum(e.own for e in exp.entries) + exp.overhead == exp.total
    assert exp.overhead >= 0
    for e in exp.entries:
        assert 0 <= e.own <= e.bytes
        if e.parent is not None:
            assert exp.entries[e.parent].bytes >= e.bytes


CLOSURE = """
def make():
    big = np.arange(131072, dtype=np.float64)      # 1 MiB
    table = {f"k{i}": i for i in range(5000)}
    def task(x):
        return big[x] + table.get("k1", 0)
    return task
task = make()
"""


def test_closure_captures_are_named_with_paths_and_sizes():
    task = namespace(CLOSURE)["task"]
    obj = {"jobs": [task]}
    exp = skypickle.explain(obj)
    assert_adds_up(obj, exp)
    fn = entry(exp, "obj['jobs'][0]")
    assert fn.kind == "function" and "make.<locals>.task" in fn.detail
    cells = {e.path: e for e in exp.entries if e.kind == "closure cell"}
    names = task.__code__.co_freevars
    big = cells[f"obj['jobs'][0].__closure__[{names.index('big')}].cell_contents"]
    table = cells[f"obj['jobs'][0].__closure__[{names.index('table')}].cell_contents"]
    assert big.detail == "ndarray" and table.detail == "dict"
    # Within 5% of what each capture adds to the payload: the payload with it, minus the
    # payload with a trivial value in its place.
    full = len(skypickle.dumps(obj))
    for cell, name in ((big, "big"), (table, "table")):
        i = names.index(name)
        saved = task.__closure__[i].cell_contents
        task.__closure__[i].cell_contents = None
        try:
            without = len(skypickle.dumps(obj))
        finally:
            task.__closure__[i].cell_contents = saved
        added = full - without
        assert abs(cell.bytes - added) <= 0.05 * added, (name, cell.bytes, added)
    # Biggest first, and the report names both.
    assert exp.largest(1)[0] is fn
    text = str(exp)
    assert "obj['jobs'][0].__closure__" in text and "MiB" in text


def test_compat_mode_names_closure_cells_as_the_native_mode_does():
    """cloudpickle's form fills each cell after the function exists (a separate BUILD), and
    the path still says which cell: ``__closure__[i].cell_contents``."""
    task = namespace(CLOSURE)["task"]
    obj = {"jobs": [task]}
    native = {e.path: e.detail for e in skypickle.explain(obj).entries if e.kind == "closure cell"}
    compat = skypickle.explain(obj, compat="cloudpickle")
    assert compat.total == len(skypickle.dumps(obj, compat="cloudpickle"))
    cells = {e.path: e.detail for e in compat.entries if e.kind == "closure cell"}
    assert cells == native and len(cells) == 2
    # An error inside a cell names the same path.
    names = task.__code__.co_freevars
    i = names.index("table")
    saved = task.__closure__[i].cell_contents
    task.__closure__[i].cell_contents = {"lock": __import__("threading").Lock()}
    try:
        with pytest.raises(TypeError) as info:
            skypickle.dumps(obj, compat="cloudpickle")
    finally:
        task.__closure__[i].cell_contents = saved
    notes = " ".join(getattr(info.value, "__notes__", None) or [])
    assert f"obj['jobs'][0].__closure__[{i}].cell_contents['lock']" in notes, notes


def test_class_method_reading_a_large_global():
    ns = namespace(
        """
        BIG = {i: str(i) * 3 for i in range(20000)}
        class Model:
            def predict(self, x):
                return BIG.get(x)
        """
    )
    exp = skypickle.explain(ns["Model"])
    assert_adds_up(ns["Model"], exp)
    assert entry(exp, "obj").kind == "class"
    method = entry(exp, "obj.predict")
    assert method.kind == "class attribute" and method.detail.startswith("function")
    big = entry(exp, "obj.predict.__globals__['BIG']")
    assert big.kind == "global" and big.bytes > 200_000
    assert big.parent == exp.entries.index(method)
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(ns["Model"], max_bytes=100_000)
    assert "obj.predict.__globals__['BIG'] (global)" in str(info.value)


@pytest.fixture
def by_value_module(tmp_path, monkeypatch):
    (tmp_path / "exp_bv_mod.py").write_text(
        textwrap.dedent(
            """
            CONSTANT = bytes(range(256)) * 1024   # 256 KiB
            def helper(i):
                return CONSTANT[i]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import exp_bv_mod

    skypickle.register_pickle_by_value(exp_bv_mod)
    yield exp_bv_mod
    skypickle.unregister_pickle_by_value(exp_bv_mod)
    sys.modules.pop("exp_bv_mod", None)


def test_by_value_module_with_a_large_constant_warns(by_value_module):
    exp = skypickle.explain(by_value_module.helper)
    assert_adds_up(by_value_module.helper, exp)
    const = entry(exp, "obj.__globals__['CONSTANT']")
    assert const.kind == "global" and const.bytes >= 256 * 1024
    assert any(
        "obj.__globals__['CONSTANT']" in w and "exp_bv_mod" in w and "by value" in w
        for w in exp.warnings
    ), exp.warnings
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(by_value_module.helper, max_bytes=64 * 1024)
    assert "obj.__globals__['CONSTANT'] (global)" in str(info.value)


def test_a_numpy_view_carries_only_its_own_data():
    """numpy copies a view's elements when pickling (its base does not travel): the entry
    shows the view's size, and no warning is given."""
    base = np.arange(1_000_000, dtype=np.float64)
    ns = namespace("def task(i):\n    return VIEW[i]\n")
    ns["VIEW"] = base[:1000]
    exp = skypickle.explain(ns["task"])
    assert_adds_up(ns["task"], exp)
    view = entry(exp, "obj.__globals__['VIEW']")
    assert 8000 <= view.bytes < 9000
    assert not exp.warnings


class DraggingView:
    """A view whose pickle carries its whole base (as a PyArrow slice or a torch tensor view
    do): it reports the size of its own data, and writes its base."""

    def __init__(self, base, n):
        self.base, self.n = base, n

    @property
    def nbytes(self):
        return self.n

    def __reduce__(self):
        return (DraggingView, (self.base, self.n))


def test_a_view_that_drags_its_base_is_reported():
    obj = {"slice": DraggingView(b"x" * (2 * MIB), 100)}
    exp = skypickle.explain(obj)
    assert_adds_up(obj, exp)
    assert any(
        "obj['slice']" in w and "reports 100 bytes" in w and "base" in w for w in exp.warnings
    ), exp.warnings
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(obj, max_bytes=MIB)
    assert "stopped while writing obj['slice'].__reduce_ex__(5)[1][0]" in str(info.value)


def test_an_object_reached_twice_is_reported_once():
    ns = namespace("def task(i):\n    return DATA[i]\n")
    data = np.ones(200_000)
    ns["DATA"] = data
    obj = {"task": ns["task"], "data": data}
    exp = skypickle.explain(obj)
    assert_adds_up(obj, exp)
    assert exp.total < 1.2 * data.nbytes  # one copy travels
    assert any(
        "obj['task'].__globals__['DATA']" in w and "obj['data']" in w for w in exp.warnings
    ), exp.warnings
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(obj, max_bytes=100_000)
    assert "obj['task'].__globals__['DATA'] (global)" in str(info.value)


def test_imports_name_what_needs_them():
    task = namespace(CLOSURE)["task"]
    exp = skypickle.explain(task)
    modules = exp.modules()
    assert any(m.startswith("numpy") for m in modules)
    numpy_reasons = [r for m, rs in modules.items() if m.startswith("numpy") for r in rs]
    assert any(".__closure__[" in r for r in numpy_reasons), numpy_reasons
    assert "skypickle._skypickle" in modules
    # compat: the loader imports cloudpickle instead.
    compat = skypickle.explain(task, compat="cloudpickle")
    assert "cloudpickle.cloudpickle" in compat.modules()
    assert "skypickle._skypickle" not in compat.modules()
    assert compat.total == len(skypickle.dumps(task, compat="cloudpickle"))


def test_buffers_are_listed():
    arr = np.ones(100_000)
    exp = skypickle.explain([arr])
    (buf,) = exp.buffers
    assert buf.bytes >= arr.nbytes and "800000 bytes" in buf.detail


@pytest.mark.parametrize("protocol", range(6))
def test_sizes_add_up_at_every_protocol(protocol):
    task = namespace(CLOSURE)["task"]
    obj = {"t": task, "s": {1, 2, 3}, "l": [task, "x" * 100]}
    exp = skypickle.explain(obj, protocol=protocol)
    assert_adds_up(obj, exp, protocol)
    assert exp.protocol == protocol


def test_to_dict_is_json_ready():
    exp = skypickle.explain(namespace(CLOSURE)["task"])
    data = json.loads(json.dumps(exp.to_dict()))
    assert data["total"] == exp.total
    assert {"path", "kind", "bytes", "own"} <= set(data["entries"][0])
    assert data["modules"]


def test_plain_data_is_explained_too():
    exp = skypickle.explain(list(range(100)))
    assert exp.entries == [] and exp.total == len(skypickle.dumps(list(range(100))))
    assert "plain data" in str(exp)


def test_max_bytes_allows_payloads_under_the_limit_unchanged():
    task = namespace(CLOSURE)["task"]
    full = skypickle.dumps(task)
    assert skypickle.dumps(task, max_bytes=len(full)) == full
    with pytest.raises(pickle.PicklingError):
        skypickle.dumps(task, max_bytes=len(full) - 1)
    for small in (1, "x", (1, 2), b"abc"):
        # A last frame too small for a header: the limit counts the bytes written.
        data = skypickle.dumps(small)
        assert skypickle.dumps(small, max_bytes=len(data)) == data


def test_max_bytes_names_the_largest_parts():
    task = namespace(CLOSURE)["task"]
    names = task.__code__.co_freevars
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps({"jobs": [task]}, max_bytes=100_000)
    msg = str(info.value)
    assert "max_bytes=100000" in msg
    big = f"obj['jobs'][0].__closure__[{names.index('big')}].cell_contents (closure cell)"
    assert big in msg, msg


def test_max_bytes_on_dump_and_pickler(tmp_path):
    import io

    task = namespace(CLOSURE)["task"]
    with pytest.raises(pickle.PicklingError):
        skypickle.dump(task, io.BytesIO(), max_bytes=10_000)
    p = skypickle.Pickler(io.BytesIO(), max_bytes=10_000)
    with pytest.raises(pickle.PicklingError):
        p.dump(task)
    out = io.BytesIO()
    skypickle.Pickler(out, max_bytes=10 * MIB).dump(task)
    assert out.getvalue() == skypickle.dumps(task)


def test_a_refused_dump_to_a_file_writes_nothing():
    """A refused dump leaves the file (or socket) untouched: nothing half-written to load or
    to send. Limits above one frame (64 KiB) and past the closure's table, so that frames
    and the 1 MiB array would have been handed on before the refusal had the dump streamed."""
    import io

    task = namespace(CLOSURE)["task"]
    full = skypickle.dumps(task)
    for limit in (10_000, 200_000, len(full) - 1):
        out = io.BytesIO()
        with pytest.raises(pickle.PicklingError):
            skypickle.dump(task, out, max_bytes=limit)
        assert out.getvalue() == b"", limit
        out = io.BytesIO()
        with pytest.raises(pickle.PicklingError):
            skypickle.Pickler(out, max_bytes=limit).dump(task)
        assert out.getvalue() == b"", limit
    for protocol in (2, 5):
        expected = skypickle.dumps(task, protocol=protocol)
        out = io.BytesIO()
        skypickle.dump(task, out, protocol=protocol, max_bytes=len(expected))
        assert out.getvalue() == expected


REFUSED_DUMP = """
import os, resource, sys, pickle
import numpy as np
import skypickle
ns = {"__name__": "__main__"}
exec("def task(i):\\n    return DATA[i] + sum(TABLE)\\n", ns)
ns["DATA"] = np.ones(8_000_000)            # 64 MB, in band
ns["TABLE"] = list(range(1_000_000))       # about 5 MB of opcodes, in frames
limit = int(sys.argv[1])
target = ns["task"] if sys.argv[2] == "array" else {"t": ns["TABLE"]}
skypickle.dumps(1, max_bytes=limit)        # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    if sys.argv[3] == "dumps":
        skypickle.dumps(target, max_bytes=limit)
    else:  # a file: the payload is held until complete, within the same bound
        skypickle.dump(target, open(os.devnull, "wb"), max_bytes=limit)
except pickle.PicklingError:
    pass
else:
    raise SystemExit("not refused")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


@pytest.mark.parametrize("sink", ["dumps", "dump"])
@pytest.mark.parametrize("what", ["array", "frames"])
def test_a_refused_dump_stays_under_the_limit_in_memory(what, sink):
    """The peak resident memory a refused dump adds stays below N + 1 MiB: the large buffer
    is refused before it is copied, and framed output stops growing at the limit."""
    limit = 2 * MIB
    out = subprocess.run(
        [sys.executable, "-c", REFUSED_DUMP, str(limit), what, sink],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.strip())
    assert grown < limit + MIB, grown


def test_cli_explain(tmp_path):
    (tmp_path / "cli_tasks.py").write_text(
        textwrap.dedent(
            """
            import skypickle
            TABLE = {i: i for i in range(3000)}
            def run(i):
                return TABLE[i]
            skypickle.register_pickle_by_value(__import__(__name__))
            """
        )
    )
    base = [sys.executable, "-m", "skypickle", "explain", "cli_tasks:run"]
    out = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("explain cli_tasks:run: ")
    assert "obj.__globals__['TABLE']  [global]  dict" in out.stdout
    assert "Modules imported on load:" in out.stdout
    js = subprocess.run(base + ["--json"], cwd=tmp_path, capture_output=True, text=True)
    data = json.loads(js.stdout)
    assert data["what"] == "cli_tasks:run" and data["entries"]
    bad = subprocess.run(
        [sys.executable, "-m", "skypickle", "explain", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "MODULE:OBJECT" in bad.stderr


def test_inspect_shares_the_report_layout(tmp_path):
    task = namespace(CLOSURE)["task"]
    path = tmp_path / "p.pkl"
    path.write_bytes(skypickle.dumps(task))
    out = subprocess.run(
        [sys.executable, "-m", "skypickle", "inspect", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    exp_first = str(skypickle.explain(task)).splitlines()[0]
    # Same header shape: "<command> <what>: <size> (<n> bytes), pickle protocol 5".
    assert first.startswith(f"inspect {path}: ") and exp_first.startswith("explain ")
    assert first.split(": ", 1)[1].split(",")[0] == exp_first.split(": ", 1)[1].split(",")[0]
    assert "Modules imported on load:" in out.stdout


DASK_CAP = """
import pickle
import numpy as np
import distributed.protocol.pickle as dpickle
import skypickle.integrations.dask as skydask

BIG = np.ones(200_000)
task = lambda i: BIG[i]                      # a __main__ lambda: goes to skypickle
small = lambda i: i + 1
skydask.install(workers="skypickle", max_task_bytes=100_000)
assert pickle.loads(dpickle.dumps(small))(1) == 2
try:
    dpickle.dumps(task)
except pickle.PicklingError as exc:
    print("refused:", exc)
skydask.install(workers="cloudpickle", max_task_bytes=100_000)
try:
    dpickle.dumps(task)
except pickle.PicklingError as exc:
    print("refused compat:", "obj.__globals__['BIG'] (global)" in str(exc))
skydask.uninstall()
assert len(dpickle.dumps(task)) > 1_000_000
print("uninstalled")
"""


def test_dask_install_max_task_bytes():
    out = subprocess.run(
        [sys.executable, "-c", DASK_CAP], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "refused: the pickle would exceed max_bytes=100000" in out.stdout
    assert "obj.__globals__['BIG'] (global)" in out.stdout
    assert "refused compat: True" in out.stdout
    assert out.stdout.rstrip().endswith("uninstalled")


def test_explain_takes_the_per_call_by_value_list(by_value_module):
    """explain measures what dumps would write with the same arguments: with the module in
    ``by_value=`` (and not registered), its function and constant are entries."""
    skypickle.unregister_pickle_by_value(by_value_module)
    try:
        plain = skypickle.explain(by_value_module.helper)
        assert plain.entries == []  # by reference
        listed = skypickle.explain(by_value_module.helper, by_value=[by_value_module])
        assert listed.total == len(skypickle.dumps(by_value_module.helper, by_value=["exp_bv_mod"]))
        assert entry(listed, "obj.__globals__['CONSTANT']").bytes >= 256 * 1024
    finally:
        skypickle.register_pickle_by_value(by_value_module)
