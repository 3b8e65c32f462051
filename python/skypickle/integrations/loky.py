"""skypickle for joblib and loky, with a choice of what the workers need.

loky pickles the work it sends to its worker processes with the pickler it is told by module
name (``LOKY_PICKLER``, ``set_loky_pickler``), and the name travels too: loky's workers import
``LOKY_PICKLER``'s module when they start, and every call item carries the name, which the
worker selects (imports) before running the call, to pickle its results with it. So any
pickler named there must be importable in the workers, ``skypickle.compat`` included: with
``LOKY_PICKLER=skypickle.compat`` and workers that cannot import skypickle, the workers exit at
start; with ``set_loky_pickler("skypickle.compat")`` every call fails with that ImportError.

``install(workers=...)`` does the selection for each copy of loky there is (joblib's
``joblib.externals.loky`` and the ``loky`` package):

* ``"skypickle"``: ``set_loky_pickler("skypickle")``; workers import skypickle and pickle
  results with it.
* ``"cloudpickle"``: this process pickles with skypickle writing for loky's own cloudpickle
  (``compat=``), while the name loky sends along stays ``"cloudpickle"``: the workers load
  with plain ``pickle``, select cloudpickle, and need nothing else. loky builds its pickler
  class (dispatch table, reducers) on skypickle's through ``set_loky_pickler`` itself; only its
  record of the selected name is set back afterwards. Instances of ``__main__`` classes in the
  results still come back as the original class (skypickle shares its class tracker with the
  cloudpickle copies it finds).
* ``None`` (the default): ``"skypickle"``. loky starts its workers with this interpreter
  (``sys.executable``) and this process's ``sys.path``, so they import what this process
  imports; say ``"cloudpickle"`` for workers whose environment differs.

``workers_mode()`` tells what was chosen; ``uninstall()`` gives loky back its default.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

WORKER_MODES = ("skypickle", "cloudpickle")
LOKY_COPIES = ("joblib.externals.loky", "loky")

#: The pickler class handed to loky by the last ``install(workers="cloudpickle")``: loky imports
#: this module by name and reads ``Pickler`` from it, as from any pickler module.
Pickler: Any = None

_mode: str | None = None


def _reductions() -> list[Any]:
    found = []
    for name in LOKY_COPIES:
        try:
            found.append(importlib.import_module(f"{name}.backend.reduction"))
        except ImportError:
            pass
    return found


def _workers_cloudpickle(reduction: Any) -> str:
    """The compat target for the cloudpickle this copy of loky selects by the name
    ``"cloudpickle"`` (the ``cloudpickle`` package, or joblib's vendored copy up to joblib
    1.5.3)."""
    package = getattr(reduction, "cloudpickle", None)
    if package is None:
        raise RuntimeError(
            f"{reduction.__name__} found no cloudpickle; its workers pickle with plain pickle"
        )
    major = str(getattr(package, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 3:
        raise RuntimeError(
            f"{package.__name__} is version {package.__version__}; workers='cloudpickle' "
            "writes for cloudpickle 3.0 or newer"
        )
    # The cloudpickle package is compat's default target, "cloudpickle"; a vendored copy is named
    # by the module that holds its reconstructors.
    if package.__name__ == "cloudpickle":
        return "cloudpickle"
    return f"{package.__name__}.cloudpickle"


def install(workers: str | None = None) -> list[str]:
    """Select skypickle in every copy of loky there is, writing for ``workers``
    (``"skypickle"``, ``"cloudpickle"`` or ``None`` for the default, ``"skypickle"``: see the
    module documentation). Returns the loky packages changed. Call it before the first
    ``Parallel`` or executor: workers already running keep the pickler they have."""
    global Pickler, _mode
    if workers is None:
        workers = "skypickle"
    elif workers not in WORKER_MODES:
        raise ValueError(f"workers must be one of {WORKER_MODES} or None, not {workers!r}")
    if workers == "cloudpickle" and os.environ.get("LOKY_PICKLER", "") not in ("", "cloudpickle"):
        raise ValueError(
            f"LOKY_PICKLER={os.environ['LOKY_PICKLER']} makes every loky worker import that "
            "module when it starts; unset it for workers='cloudpickle'"
        )
    from skypickle.compat import for_target

    changed = []
    for reduction in _reductions():
        if workers == "skypickle":
            reduction.set_loky_pickler("skypickle")
        else:
            Pickler = for_target(_workers_cloudpickle(reduction)).Pickler
            reduction.set_loky_pickler(__name__)
            # The name each call item carries to its worker, which selects that pickler there
            # before running the call: the workers' own cloudpickle, which loads anything.
            reduction._loky_pickler_name = "cloudpickle"
        changed.append(reduction.__name__.rsplit(".backend.", 1)[0])
    _mode = workers
    return changed


def workers_mode() -> str | None:
    """``"skypickle"`` or ``"cloudpickle"``: what the last ``install()`` wrote for; ``None``
    before ``install()`` and after ``uninstall()``."""
    return _mode


def uninstall() -> None:
    """Give every copy of loky its default pickler back (``LOKY_PICKLER``, or cloudpickle)."""
    global _mode
    for reduction in _reductions():
        # set_loky_pickler does nothing when the recorded name already matches, which it may
        # after install(workers="cloudpickle") while the class is still skypickle's.
        reduction._loky_pickler_name = None
        reduction.set_loky_pickler()
    _mode = None
