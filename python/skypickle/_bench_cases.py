"""The benchmark's cases by name: each one a builder, a strict check and how it is pickled.

``python -m skypickle bench --cases`` takes these names, or the groups ``data`` (compared with
stdlib ``pickle`` too) and ``code`` (by value: skypickle and cloudpickle only).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

from . import _bench_code as codecases
from ._bench_data import (
    make_bytes_1mb,
    make_dicts_20k,
    make_instances_10k,
    make_ints_floats,
    make_nested,
    make_numpy_8mb,
    make_partials_1k,
    make_str_list,
    same,
    same_arrays,
    same_nested,
    same_partials,
)


class Case(NamedTuple):
    name: str
    description: str
    build: Callable[[], Any]
    check: Callable[[Any, Any], bool]
    out_of_band: bool = False
    # A module the case needs; the case is skipped where it cannot be imported.
    requires: str | None = None
    # Code by value: stdlib pickle cannot take part; skypickle is compared with cloudpickle.
    code: bool = False


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("dicts_20k", "20,000 small dicts (4 keys)", make_dicts_20k, same),
        Case("instances_10k", "10,000 instances of a plain class", make_instances_10k, same),
        Case("partials_1k", "1,000 partial(operator.add, i)", make_partials_1k, same_partials),
        Case(
            "numpy_8mb",
            "float64 array, 8 MB, in-band",
            make_numpy_8mb,
            same_arrays,
            requires="numpy",
        ),
        Case(
            "numpy_8mb_oob",
            "float64 array, 8 MB, buffer_callback",
            make_numpy_8mb,
            same_arrays,
            out_of_band=True,
            requires="numpy",
        ),
        Case("bytes_1mb", "one 1 MiB bytes object", make_bytes_1mb, same),
        Case("str_list", "50,000 short str (some non-ASCII)", make_str_list, same),
        Case("nested", "deep dict/list tree, shared leaf", make_nested, same_nested),
        Case("ints_floats", "100,000 mixed ints and floats", make_ints_floats, same),
        *[
            Case(name, description, build, check, code=True)
            for name, description, build, check in (
                ("lambda", "a __main__ lambda", codecases.make_lambda, codecases.check_lambda),
                (
                    "closure",
                    "closure over globals and modules",
                    codecases.make_closure,
                    codecases.check_closure,
                ),
                (
                    "class",
                    "__main__ class with methods",
                    codecases.make_class,
                    codecases.check_class,
                ),
                (
                    "dataclass_enum",
                    "__main__ dataclass + enum",
                    codecases.make_dataclass_enum,
                    codecases.check_dataclass_enum,
                ),
                (
                    "task_graph",
                    "2,000 tasks, one lambda each",
                    codecases.make_task_graph,
                    codecases.check_task_graph,
                ),
                (
                    "dyn_instances_10k",
                    "10,000 instances of a __main__ class",
                    codecases.make_dynamic_instances,
                    codecases.check_dynamic_instances,
                ),
            )
        ],
        # The same closure over a package whose submodule it reaches by attribute, and over
        # plain modules: what the search for imported submodules costs.
        *[
            Case(
                f"closure_{module}",
                f"closure over {module} ({reached})",
                functools.partial(codecases.make_module_closure, module),
                codecases.check_module_closure,
                code=True,
                requires=None if module == "sys" else module,
            )
            for module, reached in (
                ("numpy", "np.linalg"),
                ("pandas", "pd.api.types"),
                ("sys", "os.path"),
            )
        ],
    ]
}

DATA_CASES = [name for name, case in CASES.items() if not case.code]
CODE_CASES = [name for name, case in CASES.items() if case.code]
