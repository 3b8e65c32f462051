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
    fingerprint,
    list_registry_pickle_by_value,
    register_pickle_by_value,
    unregister_pickle_by_value,
)
from ._skypickle import (  # noqa: E402 - cloudpickle's private helpers, by the same names
    _extract_class_dict as _extract_class_dict,
)
from ._skypickle import (  # noqa: E402
    _extract_code_globals as _extract_code_globals,
)
from ._skypickle import (  # noqa: E402
    _lookup_module_and_qualname as _lookup_module_and_qualname,
)
from ._skypickle import _make_empty_cell as _make_empty_cell  # noqa: E402
from ._skypickle import (
    _should_pickle_by_reference as _should_pickle_by_reference,
)
from ._skypickle import _whichmodule as _whichmodule  # noqa: E402

__version__: str = _skypickle.__version__

# Keep the class trackers of the cloudpickle copies this process imports in agreement with
# skypickle's (see _bridge): a __main__ class that a worker sends back with cloudpickle is the
# original class.
from . import _bridge  # noqa: E402
from ._explain import Explanation, explain  # noqa: E402

_bridge.install()


def is_tornado_coroutine(func):
    """Deprecated, as in cloudpickle 3: use ``tornado.gen.is_coroutine_function``."""
    import sys
    import warnings

    warnings.warn(
        "is_tornado_coroutine is deprecated in cloudpickle 3.0 and will be removed in "
        "cloudpickle 4.0. Use tornado.gen.is_coroutine_function directly instead.",
        category=DeprecationWarning,
        stacklevel=2,
    )
    gen = sys.modules.get("tornado.gen")
    if gen is None or not hasattr(gen, "is_coroutine_function"):
        return False
    return gen.is_coroutine_function(func)


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
    "fingerprint",
    "explain",
    "Explanation",
    "loads",
    "dump",
    "load",
    "DEFAULT_PROTOCOL",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
    "list_registry_pickle_by_value",
]
