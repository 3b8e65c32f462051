"""skypickle writing for loaders that have cloudpickle and not skypickle.

``import skypickle.compat as cloudpickle`` gives the cloudpickle API with every payload written
by skypickle with ``compat="cloudpickle"``: it names cloudpickle 3.x's reconstructors
(``cloudpickle.cloudpickle._make_function``, ...) and standard-library globals only, so
processes that have cloudpickle 3.0 or newer load it with plain ``pickle.loads``, without
skypickle installed.

The target module is ``cloudpickle.cloudpickle`` unless the environment variable
``SKYPICKLE_COMPAT`` names another copy (``pyspark.cloudpickle.cloudpickle``,
``ray.cloudpickle.cloudpickle``, ``joblib.externals.cloudpickle.cloudpickle``,
``modal._vendor.cloudpickle``) when this module is first imported; ``TARGET`` holds it.
:func:`for_target` gives the same API for any other copy, whatever ``SKYPICKLE_COMPAT`` says
(the integrations use it: each engine's workers have one particular copy).

``LOKY_PICKLER=skypickle.compat`` writes loky's payloads this way, but loky imports the pickler
module named there in every worker too, so it does not spare the workers skypickle: see
:mod:`skypickle.integrations.loky` for loky workers that have only cloudpickle.
"""

from __future__ import annotations

import os
import pickle as _pickle
import sys
import types
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


def dumps(
    obj: Any, protocol: int | None = None, buffer_callback: Any = None, **options: Any
) -> bytes:
    """``skypickle.dumps(obj, protocol, buffer_callback, compat=TARGET, **options)``
    (``deterministic=``, ``normalize_paths=``, ``by_value=``)."""
    return _sky.dumps(obj, protocol, buffer_callback, compat=TARGET, **options)


def dump(
    obj: Any, file: Any, protocol: int | None = None, buffer_callback: Any = None, **options: Any
) -> None:
    """``skypickle.dump(obj, file, protocol, buffer_callback, compat=TARGET, **options)``."""
    _sky.dump(obj, file, protocol, buffer_callback, compat=TARGET, **options)


class Pickler(_sky.Pickler):
    """``skypickle.Pickler`` writing for ``TARGET`` (subclassable like cloudpickle's)."""

    # The copy written for; for_target's subclasses set their own.
    _target: str = TARGET

    def __init__(
        self,
        file: Any,
        protocol: int | None = None,
        buffer_callback: Any = None,
        **options: Any,
    ):
        super().__init__(file, protocol, buffer_callback, compat=self._target, **options)


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
    "for_target",
]

_by_target: dict[str, types.ModuleType] = {}


def for_target(target: str) -> types.ModuleType:
    """This module's API writing for ``target`` (``"cloudpickle"`` or a vendored copy's module
    path): a module object with ``dumps``, ``dump``, ``Pickler``/``CloudPickler`` bound to that
    target and the rest (``loads``, the by-value registry, ...) shared. ``for_target(TARGET)``
    is this module itself; others are made once per target. An unknown target raises
    ``ValueError``."""
    if target == TARGET:
        return sys.modules[__name__]
    api = _by_target.get(target)
    if api is None:
        _sky.dumps(None, compat=target)  # refused now rather than at the first dump

        def t_dumps(
            obj: Any, protocol: int | None = None, buffer_callback: Any = None, **options: Any
        ) -> bytes:
            return _sky.dumps(obj, protocol, buffer_callback, compat=target, **options)

        def t_dump(
            obj: Any,
            file: Any,
            protocol: int | None = None,
            buffer_callback: Any = None,
            **options: Any,
        ) -> None:
            _sky.dump(obj, file, protocol, buffer_callback, compat=target, **options)

        t_pickler = type(
            "Pickler",
            (Pickler,),
            {
                "_target": target,
                "__doc__": f"``skypickle.Pickler`` writing for {target!r}.",
                "__qualname__": f"for_target({target!r}).Pickler",
            },
        )
        api = types.ModuleType(f"{__name__}.for_target({target!r})", __doc__)
        api.__dict__.update(
            {name: globals()[name] for name in __all__},
            TARGET=target,
            dumps=t_dumps,
            dump=t_dump,
            Pickler=t_pickler,
            CloudPickler=t_pickler,
            __version__=__version__,
        )
        # Two threads may both build one; either is fine, and every caller gets the same.
        api = _by_target.setdefault(target, api)
    return api
