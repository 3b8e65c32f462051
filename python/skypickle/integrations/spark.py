"""skypickle for PySpark: ``skypickle.integrations.spark.install()`` on the driver.

PySpark pickles on the driver in two places, and ``install()`` patches both:

* ``pyspark.cloudpickle.dumps`` and ``.dump``, PySpark's vendored cloudpickle, which
  ``pyspark.serializers.CloudPickleSerializer`` looks up at every call. That serializer pickles
  the command of every Python RDD operation (``map``, ``mapPartitions``, ... and the functions
  they wrap), every Python UDF and UDTF (``pyspark.sql.functions.udf``, ``spark.udf.register``,
  pandas UDFs) and Python data source, Spark Connect's commands, accumulators, and, as the
  default data serializer (``CPickleSerializer`` is the same class), the elements that
  ``sc.parallelize`` sends. The other modules of PySpark that call ``pyspark.cloudpickle`` on
  the driver (``pyspark.ml``'s ``dl_util`` and ``TorchDistributor``) go through the same two
  attributes.
* ``Broadcast.dump``, which writes ``sc.broadcast(value)`` with the standard library's
  ``pickle`` (so a broadcast of a lambda or of an instance of a ``__main__`` class fails without
  skypickle). Commands larger than ``spark.broadcast.threshold`` travel as broadcasts of their
  already pickled bytes, which the replacement writes exactly as ``pickle`` does.

Executors load everything with ``pickle.loads``; what they need depends on the format:

* ``install(executors="cloudpickle")``: payloads written with
  ``compat="pyspark.cloudpickle.cloudpickle"``, which name only the reconstructors of PySpark's
  own copy of cloudpickle, so executors need nothing besides PySpark.
* ``install(executors="skypickle")``: skypickle's own format (smaller, faster to load); every
  executor's Python must have skypickle installed.
* ``install()`` (``executors="detect"``) reads ``SKYPICKLE_SPARK_EXECUTORS`` (``skypickle`` or
  ``cloudpickle``) and otherwise chooses ``cloudpickle``. Nothing is asked of the executors:
  before a job there is no cheap way to (it would take a job of its own), and an answer from
  some executors says nothing about those that dynamic allocation or a restart bring later, so
  skypickle's own format is used only when the user says every executor has skypickle.

``install()`` is idempotent; called again with another ``executors`` it switches format.
``uninstall()`` restores PySpark's own pickling. Before patching anything, ``install()`` checks
PySpark's version (4.x) and that the attributes above are where and what it expects; if not, it
raises :class:`SparkIntegrationError` and PySpark keeps pickling as it did.

Call it on the driver, before or after creating the ``SparkSession``: the patched attributes are
looked up at each call. Executors still pickle the results they send back with PySpark's
cloudpickle; instances of ``__main__`` classes among them are instances of the driver's classes
all the same, since skypickle keeps the class trackers of the cloudpickle copies in agreement
with its own (``skypickle._bridge``) on both sides.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from typing import Any, Callable

import skypickle

#: The value of ``compat`` that makes skypickle write payloads for PySpark's cloudpickle.
COMPAT = "pyspark.cloudpickle.cloudpickle"

#: The environment variable that ``executors="detect"`` reads.
ENV_VAR = "SKYPICKLE_SPARK_EXECUTORS"

#: The PySpark versions whose internals install() knows: (lowest, first unsupported).
SUPPORTED_PYSPARK = ((4, 0), (5, 0))

_FORMATS = ("cloudpickle", "skypickle")

_lock = threading.Lock()
# The attributes install() replaced, as (owner, name, original), restored by uninstall().
_saved: list[tuple[Any, str, Any]] = []
# The format in force while installed: "cloudpickle" or "skypickle"; None when not installed.
_format: str | None = None
# The keyword arguments the replacements pass to skypickle.dumps/dump in that format: one dict,
# replaced whole, so a call racing with a switch of format sees the old format or the new.
_kwargs: dict[str, str] = {}


class SparkIntegrationError(RuntimeError):
    """``install()`` cannot patch this PySpark: nothing was changed and PySpark pickles as it did
    before."""


def executors_mode() -> str | None:
    """``"skypickle"`` or ``"cloudpickle"``: the format the last ``install()`` put in force;
    ``None`` before ``install()`` and after ``uninstall()``."""
    return _format


# The replacements look skypickle's functions up at each call, not once: what a caller (a test's
# spy, say) puts at skypickle.dumps is what runs, as with the attributes they replace.


def _dumps(obj: Any, protocol: int | None = None, buffer_callback: Any = None) -> bytes:
    """``pyspark.cloudpickle.dumps``, by skypickle in the format install() chose."""
    return skypickle.dumps(obj, protocol, buffer_callback, **_kwargs)


def _dump(obj: Any, file: Any, protocol: int | None = None, buffer_callback: Any = None) -> None:
    """``pyspark.cloudpickle.dump``, by skypickle in the format install() chose."""
    skypickle.dump(obj, file, protocol, buffer_callback, **_kwargs)


def _broadcast_dump(self: Any, value: Any, f: Any) -> None:
    """``Broadcast.dump``: the value pickled by skypickle, with PySpark's contract: any failure
    other than a PickleError is raised as a PicklingError naming the broadcast, and the file is
    closed once written (closing flushes the temporary file, or ends the stream to the JVM when
    broadcasts are encrypted, before the JVM reads it)."""
    protocol = sys.modules["pyspark.serializers"].pickle_protocol
    try:
        _dump(value, f, protocol)
    except pickle.PickleError:
        raise
    except Exception as exc:
        raise pickle.PicklingError(
            f"Could not serialize broadcast: {type(exc).__name__}: {exc}"
        ) from exc
    f.close()


def _pyspark_version(pyspark: Any) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in pyspark.__version__.split(".")[:2])
    except (AttributeError, ValueError) as exc:
        raise SparkIntegrationError(
            f"cannot read PySpark's version ({getattr(pyspark, '__version__', None)!r})"
        ) from exc
    return major, minor


def _calls(func: Any, module: Any, global_name: str, attribute: str) -> bool:
    """Whether ``func``'s code reads ``global_name`` (bound to ``module`` in its globals) and an
    attribute ``attribute``: how we check that PySpark still pickles where we patch."""
    code = getattr(func, "__code__", None)
    globals_ = getattr(func, "__globals__", {})
    return (
        code is not None
        and global_name in code.co_names
        and attribute in code.co_names
        and globals_.get(global_name) is module
    )


def _targets() -> list[tuple[Any, str, Callable[..., Any]]]:
    """Check PySpark's internals; return what to patch as (owner, name, replacement).

    Raises SparkIntegrationError, before anything is patched, when PySpark is not a version we
    know or its pickling is not where we expect it."""
    try:
        import pyspark
        import pyspark.cloudpickle as vendored
        import pyspark.serializers as serializers
        from pyspark import Broadcast
    except ImportError as exc:
        raise SparkIntegrationError(f"PySpark cannot be imported: {exc}") from exc

    version = _pyspark_version(pyspark)
    low, high = SUPPORTED_PYSPARK
    if not low <= version < high:
        raise SparkIntegrationError(
            f"PySpark {pyspark.__version__} is not a version this integration knows "
            f"({low[0]}.{low[1]} up to {high[0]}.0 excluded), so install() changed nothing: "
            "PySpark keeps pickling as it did"
        )

    problems = []
    if getattr(serializers, "cloudpickle", None) is not vendored:
        problems.append(
            "pyspark.serializers.cloudpickle is not pyspark.cloudpickle "
            "(something else patched it?)"
        )
    ser_dumps = getattr(getattr(serializers, "CloudPickleSerializer", None), "dumps", None)
    if not _calls(ser_dumps, vendored, "cloudpickle", "dumps"):
        problems.append("CloudPickleSerializer.dumps no longer calls cloudpickle.dumps")
    for name in ("dumps", "dump"):
        current = getattr(vendored, name, None)
        if current in (_dumps, _dump):
            continue  # ours, from an earlier install(): checked then
        if getattr(current, "__module__", None) != COMPAT:
            problems.append(f"pyspark.cloudpickle.{name} is not PySpark's cloudpickle {name}")
    if not isinstance(getattr(serializers, "pickle_protocol", None), int):
        problems.append("pyspark.serializers.pickle_protocol is missing")
    current_dump = Broadcast.__dict__.get("dump")
    if current_dump is not _broadcast_dump and not _calls(current_dump, pickle, "pickle", "dump"):
        problems.append("Broadcast.dump no longer calls pickle.dump")
    if problems:
        raise SparkIntegrationError(
            f"PySpark {pyspark.__version__} does not pickle where this integration expects: "
            + "; ".join(problems)
            + ". install() changed nothing: PySpark keeps pickling as it did."
        )
    return [
        (vendored, "dumps", _dumps),
        (vendored, "dump", _dump),
        (Broadcast, "dump", _broadcast_dump),
    ]


def _resolve(executors: str) -> str:
    if executors == "detect":
        said = os.environ.get(ENV_VAR, "").strip().lower()
        if said and said not in _FORMATS:
            raise ValueError(f"{ENV_VAR}={said!r}: expected 'skypickle' or 'cloudpickle'")
        return said or "cloudpickle"
    if executors not in _FORMATS:
        raise ValueError(
            f"executors={executors!r}: expected 'detect', 'cloudpickle' or 'skypickle'"
        )
    return executors


def install(executors: str = "detect") -> str:
    """Make this driver pickle PySpark's closures, UDFs, data and broadcasts with skypickle.

    ``executors`` says what the executors' Python can load: ``"cloudpickle"`` (PySpark's own
    cloudpickle only: payloads name ``pyspark.cloudpickle.cloudpickle``'s reconstructors),
    ``"skypickle"`` (skypickle is installed there: its own format), or ``"detect"`` (the
    default: ``SKYPICKLE_SPARK_EXECUTORS`` if set, else ``"cloudpickle"``; see the module
    documentation for why nothing is asked of the executors).

    Returns the format now in force. Raises :class:`SparkIntegrationError`, leaving PySpark as it
    was, when PySpark's version or internals are not as expected; ``ValueError`` for an unknown
    ``executors``.
    """
    global _format, _kwargs

    chosen = _resolve(executors)
    with _lock:
        targets = _targets()
        # The format first, then the attributes: once a replacement is reachable, its format is.
        _kwargs = {"compat": COMPAT} if chosen == "cloudpickle" else {}
        if not _saved:
            for owner, name, _replacement in targets:
                # The class's own attribute (Broadcast.dump), not one found through its bases.
                original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                _saved.append((owner, name, original))
            for owner, name, replacement in targets:
                setattr(owner, name, replacement)
        _format = chosen
        return chosen


def uninstall() -> None:
    """Restore PySpark's own pickling on this driver (a no-op when not installed)."""
    global _format, _kwargs

    with _lock:
        for owner, name, original in reversed(_saved):
            setattr(owner, name, original)
        _saved.clear()
        _format = None
        _kwargs = {}
