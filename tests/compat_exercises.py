"""Exercises for the cases of tests/compat_corpus.py. Never imported: read as source text.

Both children execute this file in a namespace of its own: the loading child on each object
loaded from a payload (in a worker env that has no skypickle and no corpus), the dumping child
on the originals. Each exercise takes the object and returns plain data (numbers, strings,
tuples, lists, dicts, booleans) computed by using it: calling, instantiating, reading
members. Steps that may legitimately raise are wrapped in ``step`` so that one failure shows
as data next to the other results. Only the standard library is used, and nothing returned
depends on addresses, hash seeds or paths of the machine.
"""

import asyncio
import dataclasses
import logging
import os


def step(fn, *args, **kwargs):
    """("ok", value) or ("raise", exception type name, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))


def is_empty_cell(cell):
    try:
        _ = cell.cell_contents
    except ValueError:
        return True
    return False


def names(classes):
    return [c.__name__ for c in classes]


def ex_func_full(f):
    return (
        f(1),
        f(1, 1, 1, c=0, z=2),
        f.__defaults__,
        f.__kwdefaults__,
        {k: v.__name__ for k, v in f.__annotations__.items()},
        f.__doc__,
        (f.__name__, f.__qualname__, f.__module__),
        f.tag,
        f.history,
        sorted(vars(f)),
    )


def ex_globals_and_modules(f):
    return f(3, 4), f(0, 0)


def ex_global_recursion(obj):
    fib, is_even = obj
    return fib(15), is_even(10), is_even(7), fib.__globals__["fib"] is fib


def ex_lambda(f):
    return f(4), f(4, 5), f.__name__, f.__defaults__


def ex_closure(f):
    return f(10), f.__closure__[0].cell_contents, f.__code__.co_freevars


def ex_shared_nonlocal(obj):
    increment, current = obj
    # Shared cell: current() follows increment(). With a copy per function it stays at 1.
    return current(), increment(), increment(), current()


def ex_recursive_closure(fact):
    return fact(6), fact.__closure__[0].cell_contents is fact


def ex_empty_cell(f):
    return is_empty_cell(f.__closure__[0]), step(f)[:2]


def ex_decorated(f):
    first, second = f("hi"), f("yo")
    return (first, second, f.calls, f.__name__, f.__doc__, f.__wrapped__("a"))


def ex_generator(obj):
    countdown, chained = obj
    return list(countdown(3)), list(chained(2)), type(countdown(1)).__name__


def ex_coroutine(obj):
    double_later, ticks, gather_all = obj

    async def drain(agen):
        return [item async for item in agen]

    return (
        asyncio.run(double_later(21)),
        asyncio.run(drain(ticks(3))),
        asyncio.run(gather_all(4)),
    )


def ex_class_full(C):
    return (
        C(3).area(),
        C.unit().size,
        C.describe(4),
        C(2).perimeter,
        repr(C(5)),
        C(2) == C(2),
        len({C(2), C(2), C(3)}),
        C.__doc__,
        (C.__name__, C.__qualname__, C.__module__),
        C.sides,
        C.unit_name,
        sorted(k for k in vars(C) if not k.startswith("__")),
        isinstance(C(1), C),
    )


def ex_subclass(C):
    base = C.__mro__[1]
    return (
        C(3).area(),
        repr(C(2)),
        C(2).perimeter,
        C.unit().size,
        names(C.__mro__),
        isinstance(C(1), base),
        base(3).area(),
        base.sides,
    )


def ex_nested_class(C):
    return C().where(), C.__qualname__, C.__name__


def ex_metaclass(C):
    return C.created_by, C.describe(), C().run(), type(C).__name__, names(type(C).__mro__)


def ex_exception_class(C):
    try:
        raise C(4, "bad")
    except ValueError as exc:
        caught = (str(exc), exc.code, type(exc).__name__)
    return caught, names(C.__mro__)


def ex_slots(obj):
    C, inst = obj
    fresh = C(3, 4)
    return (
        fresh.total(),
        inst.total(),
        hasattr(fresh, "__dict__"),
        hasattr(inst, "__dict__"),
        C.__slots__,
        type(vars(C).get("x")).__name__,
        step(setattr, fresh, "z", 1)[:2],
    )


def ex_abc_registered(obj):
    Sized, Crate, Loose = obj
    return (
        step(Sized)[:2],
        Crate().doubled(),
        issubclass(Crate, Sized),
        issubclass(Loose, Sized),
        isinstance(Loose(), Sized),
        issubclass(tuple, Sized),
        issubclass(list, Sized),
        sorted(Sized.__abstractmethods__),
        type(Sized).__name__,
    )


def ex_enum(obj):
    E, member = obj
    return (
        [repr(m) for m in E],
        member is E.GREEN,
        E(3).name,
        E.RED.describe(),
        E.default() is E.GREEN,
        E["BLUE"].value,
        list(E.__members__),
    )


def ex_int_enum(E):
    return [repr(m) for m in E], E.HIGH + 1, E(3).name, isinstance(E.LOW, int), E.LOW < E.HIGH


def ex_flag(P):
    return (
        [m.name for m in P],
        repr(P.R | P.W),
        repr(P(3)),
        repr(~P.X),
        bool(P(0)),
        P.RW is (P.R | P.W),
        P.X in P(3),
    )


def ex_enum_own_init(P):
    return (
        [m.name for m in P],
        [m.value for m in P],
        step(lambda: P.EARTH.mass),
        step(P.MERCURY.gravity),
        P((3.303e23, 2.4397e6)).name,
    )


def ex_dataclass(obj):
    C, F = obj
    a = C("a", 2, scale=3)
    return (
        repr(a),
        C("b") < C("c"),
        C("x").tags is not C("x").tags,
        [f.name for f in dataclasses.fields(C)],
        C.kind,
        dataclasses.asdict(a),
        repr(F(1)),
        hash(F(1, 2)) == hash(F(1, 2)),
        step(setattr, F(1), "x", 2)[:2],
        dataclasses.is_dataclass(C),
    )


def ex_namedtuple(C):
    return (
        repr(C(1)),
        C(1, "x").swap(),
        C._fields,
        C._field_defaults,
        repr(C(1)._replace(left=2)),
        repr(C._make([3, "y"])),
        isinstance(C(1), tuple),
        C(5).left,
    )


def ex_typevar_generic(obj):
    T, N, Box = obj
    return (
        repr(T),
        repr(N),
        N.__constraints__,
        Box[int](3).get(),
        repr(Box.__parameters__),
        Box.__parameters__[0] is T,
        repr(Box[int]),
        [repr(b) for b in Box.__orig_bases__],
    )


def ex_module_by_value(obj):
    module, scale, Meter, meter = obj
    return (
        module.__name__,
        module.RATE,
        scale(3),
        Meter(5).read(),
        meter.read(),
        module.scale is scale,
        module.Meter is Meter,
        type(meter) is Meter,
        (scale.__module__, Meter.__module__),
    )


def ex_dict_views(views):
    return [type(v).__name__ for v in views], [list(v) for v in views]


def ex_text_file(f):
    return os.path.basename(f.name), f.tell(), f.read(), f.closed


def ex_loggers(obj):
    named, root = obj
    return (
        named.name,
        root.name,
        named is logging.getLogger("compat.worker"),
        root is logging.getLogger(),
    )


def ex_bound_method(m):
    first, second = m(2), m(3)
    return (first, second, m.__self__.total, type(m.__self__).__name__, m.__name__)


def ex_partial_lambda(p):
    return p(4), p.args, p.keywords, p.func(2, 2)


def ex_instances(obj):
    a, b = obj
    return (
        a.owner,
        a.balance(),
        b.balance(),
        a.partner is b,
        b.partner is a,
        type(a) is type(b),
        type(a.entries).__name__,
        type(a).__name__,
    )


def ex_lru_cache(f):
    first, second = f(4), f(4)
    info = f.cache_info()
    return (
        first,
        second,
        (info.hits, info.misses, info.maxsize, info.currsize),
        f.__wrapped__(3),
        f.__name__,
    )


def ex_singledispatch(f):
    return (
        f(1),
        f("a"),
        f([1, "b"]),
        sorted(t.__name__ for t in f.registry),
        f.dispatch(bool).__name__,
    )


def ex_cached_property(C):
    o = C(2)
    first, second = o.heavy, o.heavy
    prop = vars(C)["heavy"]
    return first, second, o.calls, type(prop).__name__, prop.attrname, "heavy" in vars(o)


def ex_init_subclass_kwargs(C):
    return C.flavor, C().taste(), names(C.__mro__)


EXERCISES = {
    "FUNC_FULL": ex_func_full,
    "GLOBALS_AND_MODULES": ex_globals_and_modules,
    "GLOBAL_RECURSION": ex_global_recursion,
    "LAMBDA": ex_lambda,
    "CLOSURE": ex_closure,
    "SHARED_NONLOCAL": ex_shared_nonlocal,
    "RECURSIVE_CLOSURE": ex_recursive_closure,
    "EMPTY_CELL": ex_empty_cell,
    "DECORATED": ex_decorated,
    "GENERATOR": ex_generator,
    "COROUTINE": ex_coroutine,
    "CLASS_FULL": ex_class_full,
    "SUBCLASS": ex_subclass,
    "NESTED_CLASS": ex_nested_class,
    "METACLASS": ex_metaclass,
    "EXCEPTION_CLASS": ex_exception_class,
    "SLOTS": ex_slots,
    "ABC_REGISTERED": ex_abc_registered,
    "ENUM": ex_enum,
    "INT_ENUM": ex_int_enum,
    "FLAG": ex_flag,
    "ENUM_OWN_INIT": ex_enum_own_init,
    "DATACLASS": ex_dataclass,
    "NAMEDTUPLE": ex_namedtuple,
    "TYPEVAR_GENERIC": ex_typevar_generic,
    "MODULE_BY_VALUE": ex_module_by_value,
    "DICT_VIEWS": ex_dict_views,
    "TEXT_FILE": ex_text_file,
    "LOGGERS": ex_loggers,
    "BOUND_METHOD": ex_bound_method,
    "PARTIAL_LAMBDA": ex_partial_lambda,
    "INSTANCES": ex_instances,
    "LRU_CACHE": ex_lru_cache,
    "SINGLEDISPATCH": ex_singledispatch,
    "CACHED_PROPERTY": ex_cached_property,
    "INIT_SUBCLASS_KWARGS": ex_init_subclass_kwargs,
}
