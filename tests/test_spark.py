"""PySpark for real: ``skypickle.integrations.spark`` on the driver of a ``local[2]`` Spark.

Two kinds of tests:

* in this process, without a JVM: what ``install()`` patches, that ``uninstall()`` restores it,
  idempotence, the choice of executor format, and the refusals that leave PySpark as it was;
* real jobs: tests/spark_job.py runs as ``__main__`` in a driver of its own (so its lambdas,
  closures and classes exist only there, as in a user's script), once per executor mode, and
  prints its results as JSON. "executors_with_skypickle" runs Spark's Python workers on this
  virtualenv's interpreter and installs skypickle's own format; "executors_without_skypickle"
  runs them through a wrapper that makes ``import skypickle`` fail there
  (tests/spark_executor_guard/sitecustomize.py) and installs the ``pyspark.cloudpickle`` format.

Jobs need Java (``JAVA_HOME``, or ``java`` on ``PATH``). Without Java or PySpark these tests
skip, unless ``SKYPICKLE_REQUIRE_SPARK=1`` (set by .ci/run), which turns the skip into a failure.
``SKYPICKLE_SPARK_JOBS=0`` skips the jobs on purpose: scripts/test-matrix.sh sets it for the
interpreters other than the default one, which ``make py-test`` covers, unless
``SKYPICKLE_SPARK_ALL=1`` (the two drivers take 20 to 30 seconds on two cores: Spark's start
and its Python workers).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import skypickle
from helpers import spark_jobs_java_home

if importlib.util.find_spec("pyspark") is None:
    if os.environ.get("SKYPICKLE_REQUIRE_SPARK") == "1":
        pytest.fail("pyspark is not installed (SKYPICKLE_REQUIRE_SPARK=1)", pytrace=False)
    pytest.skip("pyspark is not installed", allow_module_level=True)

import pyspark  # noqa: E402
import pyspark.cloudpickle  # noqa: E402
import pyspark.serializers  # noqa: E402
import skypickle.integrations.spark as skyspark  # noqa: E402
from pyspark import Broadcast  # noqa: E402

TESTS = Path(__file__).resolve().parent


def originals():
    return (
        pyspark.cloudpickle.dumps,
        pyspark.cloudpickle.dump,
        Broadcast.__dict__["dump"],
    )


@pytest.fixture(autouse=True)
def restore_pyspark():
    """Every test leaves PySpark as it found it; the jobs run in their own processes."""
    before = originals()
    yield
    skyspark.uninstall()
    assert originals() == before


class File(io.BytesIO):
    """A file whose ``close()`` is recorded instead of discarding the content."""

    closed_by_dump = False

    def close(self):
        self.closed_by_dump = True


def make_adder(n):
    return lambda v: v + n


# --------------------------------------------------------------------------------------------
# install() and uninstall() in this process
# --------------------------------------------------------------------------------------------


def test_install_patches_every_driver_pickling_point_and_uninstall_restores_them():
    before = originals()
    assert skyspark.install(executors="skypickle") == "skypickle"
    assert skyspark.executors_mode() == "skypickle"
    after = originals()
    assert all(a is not b for a, b in zip(after, before))

    # What CloudPickleSerializer sends for a command: skypickle's payload, which loads back.
    payload = pyspark.serializers.CloudPickleSerializer().dumps(make_adder(2))
    assert b"skypickle._skypickle" in payload
    assert b"pyspark.cloudpickle.cloudpickle" not in payload
    assert pickle.loads(payload)(40) == 42

    # A broadcast value: written by skypickle into the file, which PySpark's dump closes.
    f = File()
    Broadcast.dump(None, make_adder(3), f)
    assert f.closed_by_dump
    assert b"skypickle._skypickle" in f.getvalue()
    assert pickle.loads(f.getvalue())(1) == 4

    # pyspark.cloudpickle.dump, used by pyspark.ml on the driver.
    g = io.BytesIO()
    pyspark.cloudpickle.dump(make_adder(4), g)
    assert pickle.loads(g.getvalue())(1) == 5

    skyspark.uninstall()
    assert skyspark.executors_mode() is None
    assert all(a is b for a, b in zip(originals(), before))


def test_install_is_idempotent_and_uninstall_restores_pyspark_not_ours():
    before = originals()
    skyspark.install(executors="skypickle")
    patched = originals()
    assert skyspark.install(executors="skypickle") == "skypickle"
    assert all(a is b for a, b in zip(originals(), patched))
    skyspark.uninstall()
    assert all(a is b for a, b in zip(originals(), before))
    skyspark.uninstall()  # a second uninstall is a no-op
    assert all(a is b for a, b in zip(originals(), before))


def test_data_pickled_with_the_driver_format():
    """The elements ``sc.parallelize`` sends go through the same serializer (CPickleSerializer
    is CloudPickleSerializer), so a lambda inside data travels by value too."""
    skyspark.install(executors="skypickle")
    ser = pyspark.serializers.BatchedSerializer(pyspark.serializers.CPickleSerializer(), 2)
    out = io.BytesIO()
    ser.dump_stream(iter([make_adder(1), make_adder(2), 3]), out)
    assert b"skypickle._skypickle" in out.getvalue()
    back = list(ser.load_stream(io.BytesIO(out.getvalue())))
    assert [back[0](1), back[1](1), back[2]] == [2, 3, 3]


def test_the_patched_functions_call_skypickle_at_call_time(monkeypatch):
    """The replacements look ``skypickle.dumps`` up at each call: the spy of the job tests
    depends on it, and so does anyone who wraps skypickle."""
    skyspark.install(executors="skypickle")
    calls = []
    real = skypickle.dumps

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(skypickle, "dumps", spy)
    pyspark.serializers.CloudPickleSerializer().dumps("command")
    assert calls == ["command"]


def test_broadcast_errors_keep_pysparks_contract():
    skyspark.install(executors="skypickle")
    f = File()
    with pytest.raises(pickle.PicklingError, match="^Could not serialize broadcast: TypeError"):
        Broadcast.dump(None, {"lock": threading.Lock()}, f)
    assert not f.closed_by_dump
    # skypickle's own error, with the path to the culprit, is the cause.
    with pytest.raises(pickle.PicklingError) as info:
        Broadcast.dump(None, {"lock": threading.Lock()}, File())
    assert isinstance(info.value.__cause__, TypeError)
    assert any("['lock']" in note for note in getattr(info.value.__cause__, "__notes__", []))


def test_detect_defaults_to_the_cloudpickle_format(monkeypatch):
    monkeypatch.delenv(skyspark.ENV_VAR, raising=False)
    assert skyspark.install() == "cloudpickle"
    payload = pyspark.serializers.CloudPickleSerializer().dumps(make_adder(2))
    assert b"pyspark.cloudpickle.cloudpickle" in payload
    assert b"skypickle" not in payload
    assert pickle.loads(payload)(40) == 42


def test_switching_format_back_and_forth():
    before = originals()
    skyspark.install(executors="skypickle")
    assert b"skypickle._skypickle" in pyspark.cloudpickle.dumps(make_adder(1))
    assert skyspark.install(executors="cloudpickle") == "cloudpickle"
    payload = pyspark.cloudpickle.dumps(make_adder(1))
    assert b"pyspark.cloudpickle.cloudpickle" in payload and b"skypickle" not in payload
    f = File()
    Broadcast.dump(None, make_adder(5), f)
    assert b"skypickle" not in f.getvalue()
    assert pickle.loads(f.getvalue())(1) == 6
    skyspark.uninstall()
    assert originals() == before


def test_detect_follows_the_environment(monkeypatch):
    monkeypatch.setenv(skyspark.ENV_VAR, "skypickle")
    assert skyspark.install() == "skypickle"
    skyspark.uninstall()
    before = originals()
    monkeypatch.setenv(skyspark.ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=skyspark.ENV_VAR):
        skyspark.install()
    assert originals() == before


def test_unknown_executors_value():
    with pytest.raises(ValueError, match="executors='yes'"):
        skyspark.install(executors="yes")


def _not_calling_cloudpickle(self, obj):
    return pickle.dumps(obj)


@pytest.mark.parametrize(
    "change, message",
    [
        ("version-3.4", "PySpark 3.4.1 is not a version"),
        ("version-5", "PySpark 5.0.0 is not a version"),
        ("serializers-module", "pyspark.serializers.cloudpickle is not pyspark.cloudpickle"),
        ("serializer-dumps", "CloudPickleSerializer.dumps no longer calls cloudpickle.dumps"),
        ("vendored-dumps", "pyspark.cloudpickle.dumps is not PySpark's"),
        ("broadcast-dump", "Broadcast.dump no longer calls pickle.dump"),
    ],
)
def test_unexpected_pyspark_internals_change_nothing(monkeypatch, change, message):
    if change == "version-3.4":
        monkeypatch.setattr(pyspark, "__version__", "3.4.1")
    elif change == "version-5":
        monkeypatch.setattr(pyspark, "__version__", "5.0.0")
    elif change == "serializers-module":
        # The one-liner this README used to give: the module attribute replaced wholesale.
        monkeypatch.setattr(pyspark.serializers, "cloudpickle", skypickle)
    elif change == "serializer-dumps":
        monkeypatch.setattr(
            pyspark.serializers.CloudPickleSerializer, "dumps", _not_calling_cloudpickle
        )
    elif change == "vendored-dumps":
        monkeypatch.setattr(pyspark.cloudpickle, "dumps", pickle.dumps)
    else:
        monkeypatch.setattr(Broadcast, "dump", _not_calling_cloudpickle)
    before = originals()
    with pytest.raises(skyspark.SparkIntegrationError, match=message) as info:
        skyspark.install(executors="skypickle")
    assert "install() changed nothing" in str(info.value)
    assert originals() == before
    assert skyspark.executors_mode() is None


# --------------------------------------------------------------------------------------------
# Real jobs on local[2], one driver process per executor mode
# --------------------------------------------------------------------------------------------

MODES = {"executors_with_skypickle": "skypickle", "executors_without_skypickle": "cloudpickle"}


def guarded_python(directory: Path) -> str:
    """An executable for ``PYSPARK_PYTHON``: this interpreter with the import guard first on
    ``PYTHONPATH``. Spark runs ``$PYSPARK_PYTHON -m pyspark.daemon`` and keeps PYTHONPATH
    entries the process environment gives it, after its own; the wrapper puts the guard first
    at the last moment, in the executor processes only."""
    wrapper = directory / "python-without-skypickle"
    guard = shlex.quote(str(TESTS / "spark_executor_guard"))
    wrapper.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH={guard}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        "export PYTHONPATH\n"
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


class ScenarioFailed(RuntimeError):
    """A job, or the whole driver script, produced no value: its error, shown as such rather
    than as a failed comparison."""


@pytest.fixture(scope="session")
def spark_run(tmp_path_factory):
    """``spark_run(name)``: the results of tests/spark_job.py in that executor mode, running it
    the first time it is asked for."""
    home = spark_jobs_java_home()
    runs: dict[str, dict | ScenarioFailed] = {}

    def run(name: str) -> None:
        mode = MODES[name]
        workdir = tmp_path_factory.mktemp(name)
        executor_python = guarded_python(workdir) if mode == "cloudpickle" else sys.executable
        env = dict(os.environ)
        env.pop(skyspark.ENV_VAR, None)
        env.update(
            JAVA_HOME=home,
            PYSPARK_PYTHON=executor_python,
            PYSPARK_DRIVER_PYTHON=sys.executable,
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_DIRS=str(workdir),
        )
        proc = subprocess.run(
            [sys.executable, str(TESTS / "spark_job.py"), mode],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=workdir,
            env=env,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            # Kept, so that the tests asking for this mode fail at once instead of each
            # starting Spark again.
            runs[name] = ScenarioFailed(
                f"spark_job.py {mode}: exit {proc.returncode}\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            )
        else:
            runs[name] = json.loads(lines[-1][len("RESULT ") :])

    def results(name: str) -> dict:
        if name not in runs:
            run(name)
        if isinstance(runs[name], ScenarioFailed):
            raise runs[name]
        return runs[name]

    return results

    return run


def jobs(spark_run, name: str) -> dict:
    results = spark_run(name)
    assert results["installed"] == MODES[name]
    return results


def job(spark_run, name: str, scenario: str):
    outcome = jobs(spark_run, name)["jobs"][scenario]
    if "error" in outcome:
        raise ScenarioFailed(f"{scenario}: {outcome['error']}")
    return outcome["value"]


def test_executors_can_or_cannot_import_skypickle_as_each_mode_says(spark_run):
    # Asked inside a job, in the executors' own processes.
    assert spark_run("executors_with_skypickle")["executor_import"] == ["importable"]
    [answer] = spark_run("executors_without_skypickle")["executor_import"]
    assert answer.startswith("ModuleNotFoundError: No module named 'skypickle'")


def test_own_format_cannot_load_on_executors_without_skypickle(spark_run):
    """The control of the guarded mode: what skypickle's own format needs is really absent."""
    outcome = spark_run("executors_without_skypickle")["own_format_on_guarded_executors"]
    assert "error" in outcome, outcome
    assert "No module named 'skypickle'" in outcome["error"]


def test_without_install_a_broadcast_of_a_main_object_fails(spark_run):
    """The baseline that install() fixes: PySpark writes broadcasts with plain pickle."""
    outcome = spark_run("executors_with_skypickle")["broadcast_without_install"]
    assert "error" in outcome, outcome
    assert "'Table'" in outcome["error"]


@pytest.mark.parametrize("name", MODES)
def test_skypickle_pickles_on_the_driver(spark_run, name):
    results = jobs(spark_run, name)
    commands = results["commands"]
    # One command per Python job below (RDD operations and UDFs), each pickled by skypickle.
    assert len(commands) == len(results["jobs"])
    assert results["skypickle_calls"] >= len(commands)
    if MODES[name] == "skypickle":
        expected = {"skypickle": True, "vendored": False}
    else:
        expected = {"skypickle": False, "vendored": True}
    for command in commands:
        assert {k: command[k] for k in expected} == expected, command


@pytest.mark.parametrize("name", MODES)
def test_rdd_map_of_a_lambda(spark_run, name):
    assert job(spark_run, name, "lambda_map") == [1, 4, 7, 10, 13, 16]


@pytest.mark.parametrize("name", MODES)
def test_closure_over_a_global(spark_run, name):
    assert job(spark_run, name, "closure_over_global") == [10, 13, 16, 19]


@pytest.mark.parametrize("name", MODES)
def test_main_class_instances_come_back(spark_run, name):
    got = job(spark_run, name, "main_class")
    assert got["xs"] == [1, 2, 3]
    assert got["type_names"] == ["Point"]


@pytest.mark.parametrize("name", MODES)
def test_main_class_instances_are_instances_of_the_drivers_class(spark_run, name):
    # They come back pickled by the executors' pyspark.cloudpickle, whose class tracker agrees
    # with skypickle's through skypickle._bridge: on the executors when they have skypickle,
    # and on the driver in both modes.
    assert job(spark_run, name, "main_class")["isinstance"] is True


@pytest.mark.parametrize("name", MODES)
def test_map_partitions_with_a_generator_function(spark_run, name):
    # Two partitions, [1, 2, 3] and [4, 5, 6]: a running sum restarts in each.
    assert job(spark_run, name, "generator_partitions") == [1, 3, 6, 4, 9, 15]


@pytest.mark.parametrize("name", MODES)
def test_broadcast_of_a_by_value_object(spark_run, name):
    got = job(spark_run, name, "broadcast")
    assert got["values"] == [1, 2, -1]
    # Written by skypickle on the driver, in the executors' format (plain pickle, PySpark's own
    # choice for broadcasts, would name __main__.Table and fail to load there).
    own = MODES[name] == "skypickle"
    assert got["payload"]["skypickle"] is own
    assert got["payload"]["vendored"] is not own


@pytest.mark.parametrize("name", MODES)
def test_dataframe_python_udf(spark_run, name):
    assert job(spark_run, name, "dataframe_udf") == ["n=10", "n=12", "n=14"]


@pytest.mark.parametrize("name", MODES)
def test_sql_registered_udf(spark_run, name):
    assert job(spark_run, name, "sql_udf") == [10, 11, 12]
