"""skypickle: cloudpickle's job done by a pickler written in Rust.

``import skypickle as cloudpickle`` keeps working: ``dumps``/``dump`` produce ordinary pickle
data that loads with the standard library's ``pickle.loads`` wherever skypickle is importable.
"""

from __future__ import annotations

import pickle as _pickle

from . import _skypickle
from ._skypickle import (
    _PICKLE_BY_VALUE_MODULES as _PICKLE_BY_VALUE_MODULES,
)
from ._skypickle import (
    DEFAULT_PROTOCOL,
    Pickler,
    dump,
    dumps,
    list_registry_pickle_by_value,
    register_pickle_by_value,
    unregister_pickle_by_value,
)
from ._skypickle import (
    _should_pickle_by_reference as _should_pickle_by_reference,
)

__version__: str = _skypickle.__version__

#: Alias kept for cloudpickle compatibility (``cloudpickle.CloudPickler is cloudpickle.Pickler``).
CloudPickler = Pickler

#: Loading is the standard library's: skypickle has no unpickler of its own.
loads = _pickle.loads
load = _pickle.load

__all__ = [
    "__version__",
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
