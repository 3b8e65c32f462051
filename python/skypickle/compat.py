"""skypickle writing for loaders that have cloudpickle and not skypickle.

``import skypickle.compat as cloudpickle`` (or ``LOKY_PICKLER=skypickle.compat``) gives the
cloudpickle API with every payload written by skypickle with ``compat="cloudpickle"``: it names
cloudpickle 3.x's reconstructors (``cloudpickle.cloudpickle._make_function``, ...) and
standard-library globals only, so workers that have cloudpickle 3.0 or newer load it with plain
``pickle.loads``, without skypickle installed.

The target module is ``cloudpickle.cloudpickle`` unless the environment variable
``SKYPICKLE_COMPAT`` names another copy (``pyspark.cloudpickle.cloudpickle``,
``ray.cloudpickle.cloudpickle``, ``joblib.externals.cloudpickle.cloudpickle``,
``modal._vendor.cloudpickle``) when this module is first imported; ``TARGET`` holds it.
"""

from __future__ import annotations

import os
import pickle as _pickle
from typing import Any

import skypickle as _sky
from skypickle import (
    DEFAULT_PROTOCOL,
    list_registry_pickle_by_value,
    register_pickle_by_value,
    unregister_pickle_by_value,
)

#: The cloudpickle copy payloads are written for.
TARGET: str = os.environ.get("SKYPICKLE_COMPAT") or "cloudpickle"

# Refused here, at import, if it is not a copy skypickle can write for.
_sky.dumps(None, compat=TARGET)


def dumps(obj: Any, protocol: int | None = None, buffer_callback: Any = None) -> bytes:
    """``skypickle.dumps(obj, protocol, buffer_callback, compat=TARGET)``."""
    return _sky.dumps(obj, protocol, buffer_callback, compat=TARGET)


def dump(obj: Any, file: Any, protocol: int | None = None, buffer_callback: Any = None) -> None:
    """``skypickle.dump(obj, file, protocol, buffer_callback, compat=TARGET)``."""
    _sky.dump(obj, file, protocol, buffer_callback, compat=TARGET)


class Pickler(_sky.Pickler):
    """``skypickle.Pickler`` writing for ``TARGET`` (subclassable like cloudpickle's)."""

    def __init__(self, file: Any, protocol: int | None = None, buffer_callback: Any = None):
        super().__init__(file, protocol, buffer_callback, compat=TARGET)


CloudPickler = Pickler
loads = _pickle.loads
load = _pickle.load
__version__ = _sky.__version__

__all__ = [
    "TARGET",
    "Pickler",
    "CloudPickler",
    "dumps",
    "loads",
    "dump",
    "load",
    "DEFAULT_PROTOCOL",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
    "list_registry_pickle_by_value",
]
