"""Makes ``import skypickle`` fail in this interpreter: the executors of tests/test_spark.py's
"executors without skypickle" mode.

Python imports ``sitecustomize`` from ``sys.path`` at startup. This directory is put first on
``PYTHONPATH`` only by the wrapper that those tests give Spark as ``PYSPARK_PYTHON``, so the guard
acts in Spark's Python workers (and the daemon they fork from) and nowhere else: the driver, in
the same virtualenv, imports skypickle as usual. A finder first on ``sys.meta_path`` refuses the
package and its submodules, wherever they are installed (an editable install included), which is
what a machine without skypickle looks like to ``pickle.loads``.
"""

import sys


class _HideSkypickle:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "skypickle" or name.startswith("skypickle."):
            raise ModuleNotFoundError(
                f"No module named {name!r} (hidden from Spark's executors by the test suite)",
                name=name,
            )
        return None


sys.meta_path.insert(0, _HideSkypickle())
