"""The Spark scenario of tests/test_spark.py, run as ``__main__`` by a driver of its own.

``python spark_job.py skypickle|cloudpickle`` starts a ``local[2]`` SparkSession, installs
skypickle with that executor format, runs each job and prints one line ``RESULT {json}``.
Everything defined here lives in ``__main__``, as in a user's script or notebook, so it can only
reach the executors by value. Each scenario's outcome is recorded separately (a value, or the
error's text), so one failing job does not hide the others.

The parent chooses the executors' Python through ``PYSPARK_PYTHON``: for ``cloudpickle`` it is a
wrapper in which ``import skypickle`` fails (tests/spark_executor_guard/sitecustomize.py).
"""

from __future__ import annotations

import json
import sys
import traceback

import pyspark.core.rdd
import skypickle
import skypickle.integrations.spark as skyspark
from pyspark.sql import SparkSession
from pyspark.sql.functions import col, udf
from pyspark.sql.types import StringType

OFFSET = 10
PREFIX = "n="


class Point:
    def __init__(self, x):
        self.x = x

    def moved(self, d):
        return Point(self.x + d)


class Table:
    """A broadcast value: a ``__main__`` class with a method, which plain pickle (PySpark's
    pickler for broadcasts) writes by reference to ``__main__.Table``, a name executors lack."""

    def __init__(self, rows):
        self.rows = dict(rows)

    def get(self, key):
        return self.rows.get(key, -1)


def make_scaler(k):
    return lambda v: v * k + OFFSET


def running_sums(iterator):
    total = 0
    for value in iterator:
        total += value
        yield total


def executor_can_import_skypickle(_):
    try:
        import skypickle  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "importable"


def names(payload: bytes) -> dict:
    """Which reconstructors a payload calls: skypickle's own, or PySpark's cloudpickle's."""
    return {
        "skypickle": b"skypickle._skypickle" in payload,
        "vendored": b"pyspark.cloudpickle.cloudpickle" in payload,
        "size": len(payload),
    }


class Spy:
    """Counts calls of skypickle.dumps and skypickle.dump, and records every command (closure
    or UDF) that PySpark hands to the JVM, as pickled on this driver."""

    def __init__(self):
        self.calls = 0
        self.commands = []
        self._dumps, self._dump = skypickle.dumps, skypickle.dump
        self._prepare = pyspark.core.rdd._prepare_for_python_RDD

    def __enter__(self):
        def dumps(*args, **kwargs):
            self.calls += 1
            return self._dumps(*args, **kwargs)

        def dump(*args, **kwargs):
            self.calls += 1
            return self._dump(*args, **kwargs)

        def prepare(sc, command):
            # Both RDD operations and SQL UDFs call this function through its module, at call
            # time, for the command they send: its first result is the bytes the JVM receives.
            prepared = self._prepare(sc, command)
            self.commands.append(names(prepared[0]))
            return prepared

        skypickle.dumps, skypickle.dump = dumps, dump
        pyspark.core.rdd._prepare_for_python_RDD = prepare
        return self

    def __exit__(self, *exc):
        skypickle.dumps, skypickle.dump = self._dumps, self._dump
        pyspark.core.rdd._prepare_for_python_RDD = self._prepare


def attempt(results, name, job):
    try:
        results[name] = {"value": job()}
    except Exception as exc:  # recorded for the test to show, with the executor's traceback
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[-3000:]}
        traceback.print_exc()


def broadcast(sc):
    table = sc.broadcast(Table({"a": 1, "b": 2}))
    # The driver wrote the value to this file when broadcasting: what executors will load.
    with open(table._path, "rb") as f:
        written = names(f.read())
    got = sc.parallelize(["a", "b", "z"], 2).map(lambda k: table.value.get(k)).collect()
    return {"values": got, "payload": written}


def scenarios(spark, sc, results):
    attempt(
        results,
        "lambda_map",
        lambda: sc.parallelize(range(6), 2).map(lambda v: v * 3 + 1).collect(),
    )
    attempt(
        results,
        "closure_over_global",
        lambda: sc.parallelize(range(4), 2).map(make_scaler(3)).collect(),
    )

    def main_class():
        points = sc.parallelize([Point(i) for i in range(3)], 2).map(lambda p: p.moved(1))
        got = points.collect()
        return {
            "xs": [p.x for p in got],
            "type_names": sorted({type(p).__qualname__ for p in got}),
            "isinstance": all(isinstance(p, Point) for p in got),
        }

    attempt(results, "main_class", main_class)
    attempt(
        results,
        "generator_partitions",
        lambda: sc.parallelize(range(1, 7), 2).mapPartitions(running_sums).collect(),
    )

    attempt(results, "broadcast", lambda: broadcast(sc))

    label = udf(lambda v: f"{PREFIX}{v * 2 + OFFSET}", StringType())
    attempt(
        results,
        "dataframe_udf",
        lambda: [row[0] for row in spark.range(3).select(label(col("id"))).collect()],
    )

    def sql_udf():
        spark.udf.register("plus_offset", lambda v: v + OFFSET, "long")
        return [row.v for row in spark.sql("SELECT plus_offset(id) AS v FROM range(3)").collect()]

    attempt(results, "sql_udf", sql_udf)


def main():
    mode = sys.argv[1]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(f"skypickle-{mode}")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.pythonUDF.arrow.enabled", "false")
        .getOrCreate()
    )
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    results = {"mode": mode, "jobs": {}}
    try:
        # Before install(): PySpark's own pickling ships the probe, whatever the executors have.
        results["executor_import"] = sorted(
            set(sc.parallelize(range(2), 2).map(executor_can_import_skypickle).collect())
        )
        if mode == "cloudpickle":
            # The control: skypickle's own format cannot load where skypickle is not importable,
            # so the guard is real and the executor format matters.
            skyspark.install(executors="skypickle")
            attempt(
                results,
                "own_format_on_guarded_executors",
                lambda: sc.parallelize(range(2), 2).map(lambda v: v + 1).collect(),
            )
            skyspark.uninstall()
            skyspark.install(executors="cloudpickle")
        else:
            # The baseline: PySpark pickles broadcasts with plain pickle, which writes Table as
            # a reference to __main__.Table, a name the executors do not have.
            attempt(results, "broadcast_without_install", lambda: broadcast(sc))
            skyspark.install(executors="skypickle")
        results["installed"] = skyspark.executors_mode()
        with Spy() as spy:
            scenarios(spark, sc, results["jobs"])
        results["skypickle_calls"] = spy.calls
        results["commands"] = spy.commands
    finally:
        skyspark.uninstall()
        spark.stop()
        print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
