"""What ``test_deterministic.py`` does with each case of ``deterministic_corpus``: run on the
originals by the corpus script, and on the loaded payloads by an interpreter that has neither
the corpus nor its registered module (this file is copied next to each). Results are plain
data (the stdlib pickles them back), compared between the two.
"""

import dataclasses


def outcome(fn, *args, **kwargs):
    """("ok", value) or ("raise", exception type name)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raise", type(exc).__name__)


def drain(generator):
    """The items a generator yields and the value it returns."""
    items = []
    while True:
        try:
            items.append(next(generator))
        except StopIteration as stop:
            return items, stop.value


def canon(value):
    """A text for ``value`` that does not depend on the iteration order of its sets."""
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({sorted(map(canon, value))})"
    if isinstance(value, tuple):
        return f"({', '.join(map(canon, value))})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (canon(getattr(value, f.name)) for f in dataclasses.fields(value))
        return f"{type(value).__name__}({', '.join(fields)})"
    return repr(value)


def _classes(base, child, instance):
    return {
        "describe": instance.describe(),
        "doubled": instance.doubled,
        "make": child.make(4).describe(),
        "base_make": base.make(5).describe(),
        "helper": child.helper(1),
        "isinstance": (isinstance(instance, child), isinstance(instance, base)),
        "subclass": issubclass(child, base) and type(instance) is child,
        "mro": [c.__qualname__ for c in child.__mro__],
        "flags": sorted(map(repr, child.FLAGS)),
        "allowed": sorted(base.ALLOWED),
        "tags": sorted(instance.tags),
        "module": (base.__module__, child.__qualname__),
    }


def _abc(shape, square, instance, circleish):
    return {
        "area": instance.area(),
        "describe": instance.describe(),
        "isinstance": isinstance(instance, shape),
        "registered": (
            issubclass(circleish, shape),
            issubclass(tuple, shape),
            issubclass(list, shape),
            isinstance(circleish(), shape),
        ),
        "abstract": outcome(shape),
        "abstractmethods": sorted(shape.__abstractmethods__),
        "square_is_shape": issubclass(square, shape),
    }


def _dataclasses(point, p, inventory, inv):
    return {
        # (Sets of several items have no repr that holds under every hash seed.)
        "repr": (repr(point(1, 2, frozenset({"one"}))), repr(inventory("ann", [3, 1], {"k"}))),
        "eq": (p == point(1, 2), p == point(2, 1), inv == inventory("ann", [3, 1])),
        "hash": hash(p) == hash(point(1, 2)),
        "frozen": outcome(setattr, p, "x", 5),
        "fields": [f.name for f in dataclasses.fields(point)],
        "default_factory": (inventory("bob").items, sorted(inventory("bob").kinds)),
        "order": [i.owner for i in sorted([inventory("zed"), inv, inventory("amy")])],
        "norm": p.norm1(),
        "labels": sorted(p.labels),
        "isinstance": (isinstance(p, point), dataclasses.is_dataclass(inv)),
    }


def _enum(color, green, level, high):
    return {
        "members": [(m.name, m.value) for m in color],
        "identity": (green is color.GREEN, color("red") is color.RED, color["BLUE"].value),
        "describe": color.RED.describe(),
        "isinstance": isinstance(green, color),
        "int_enum": (high is level.HIGH, high + 1, level(1).name, high > level.LOW),
    }


def _flag(perm, combined):
    return {
        "value": combined.value,
        "contains": (perm.R in combined, perm.W in combined, perm.X in combined),
        "members": [m.name for m in perm],
        "or": (combined | perm.X).value,
        "isinstance": isinstance(combined, perm),
        "readable": (combined.readable(), perm.X.readable()),
    }


def _namedtuple(pair, p):
    return {
        "fields": pair._fields,
        "defaults": pair._field_defaults,
        "p": (tuple(p), p.a, p.b, p == (1, "x")),
        "replace": tuple(p._replace(a=3)),
        "default": tuple(pair(7)),
        "swapped": p.swapped(),
        "isinstance": isinstance(p, pair),
        "repr": repr(p),
    }


def _generic(t, n, box, instance):
    return {
        "get": instance.get(),
        "isinstance": isinstance(instance, box),
        "parameters": box.__parameters__[0] is t,
        "alias": box[int].__origin__ is box,
        "typevars": (t.__name__, n.__name__, n.__constraints__),
        "new": box("x").get(),
    }


def _registered_class(length, axis, two_cm):
    return {
        "to": (length(2, "m").to("cm"), two_cm.to("mm")),
        "eq": two_cm == length(20),
        "bad_unit": outcome(length, 1, "inch"),
        "axis": [(m.name, m.value) for m in axis],
        "isinstance": isinstance(two_cm, length),
        "module": length.__module__,
    }


def _registered_module(module):
    return {
        "name": module.__name__,
        "units": module.units(),
        "total": repr(module.total(module.Length(1, "km"), module.Length(5))),
        "axis": module.Axis("y").name,
    }


def _mixed_set(items):
    tokens = [item for item in items if type(item).__name__ == "Token"]
    return {
        "reprs": canon(items),
        "tokens": sorted(t.name for t in tokens),
        "one_token_class": len({type(t) for t in tokens}) == 1,
        "token_eq": tokens[0] == type(tokens[0])(tokens[0].name),
        "token_in_set": type(tokens[0])("first") in items,
    }


def _everything(everything):
    base, child, instance = everything["classes"]
    return {
        "same_class": type(instance) is child,
        "classes": _classes(base, child, instance),
        "functions": (
            everything["function"](2),
            everything["recursive"](5),
            everything["mutually_recursive"](9),
            everything["uses_sets"]("beta"),
        ),
        "sets": (
            everything["set_global"] == everything["set_global"].copy(),
            sorted(everything["set_global"]),
        ),
        "mixed": _mixed_set(everything["mixed_set"]),
        "enum_shared": everything["enum"][1] is everything["enum"][0].GREEN,
    }


def _more_classes(outer, inner, local, slotted, supports_area, square, registered):
    # (Deterministic payloads keep a class's qualified name: the normal mode's, like
    # cloudpickle's, come back with __qualname__ equal to __name__.)
    return {
        "inner": (inner.where(), isinstance(inner, outer.Inner), outer.Inner.__qualname__),
        "local": (local().greet("ann"), local.__qualname__),
        "slotted": (slotted.total(), type(slotted).__slots__, outcome(lambda: slotted.c)),
        "protocol": (isinstance(square, supports_area), isinstance(3, supports_area)),
        "enum_sets": [(m.name, sorted(m.value)) for m in registered],
        "enum_lookup": registered(frozenset({"s", "xs"})).name,
    }


def _function_sets(with_set_default, check, functions, members):
    by_name = {f.__name__: f for f in functions}
    return {
        "default": (with_set_default("maybe"), with_set_default("x"), with_set_default("z")),
        "closure": (check("three"), check("five")),
        "functions": sorted(by_name),
        "calls": (by_name["factorial"](4), by_name["is_odd"](3), by_name["<lambda>"]("a")),
        "members": sorted(f"{type(m).__name__}.{m.name}" for m in members),
    }


def exercise(name, obj):
    """The behaviour of one case, as plain data."""
    if name == "function":
        return (obj(4), obj(4, 5), obj(1, z=()), obj.__defaults__, obj.__kwdefaults__, obj.__name__)
    if name == "lambda":
        return (obj("hi"), obj("a", end="?"), obj.__name__)
    if name == "closure":
        return (obj(), obj(5), obj())
    if name == "nested_closure":
        return (obj(300), obj(-21), [c.cell_contents for c in obj.__closure__])
    if name == "recursive":
        return [obj(n) for n in range(8)]
    if name == "mutually_recursive":
        return [obj(n) for n in range(6)]
    if name == "generator":
        return (drain(obj(5)), drain(obj(0)))
    if name == "generator_send":
        gen = obj()
        first = next(gen)
        sent = [gen.send(value) for value in (5, 7, -2)]
        try:
            gen.send(None)
        except StopIteration as stop:
            return (first, sent, stop.value)
        return (first, sent, "did not stop")
    if name == "classes":
        return _classes(*obj)
    if name == "abc":
        return _abc(*obj)
    if name == "dataclasses":
        return _dataclasses(*obj)
    if name == "enum":
        return _enum(*obj)
    if name == "flag":
        return _flag(*obj)
    if name == "namedtuple":
        return _namedtuple(*obj)
    if name == "typevar_generic":
        return _generic(*obj)
    if name == "registered_function":
        length = obj.__globals__["Length"]
        return (repr(obj(length(1, "cm"), length(5))), obj(length(3, "m")).to("m"))
    if name == "registered_class":
        return _registered_class(*obj)
    if name == "registered_module":
        return _registered_module(obj)
    if name in ("set_global", "frozenset_global", "nested_sets", "dict_of_sets"):
        return obj
    if name == "mixed_set":
        return _mixed_set(obj)
    if name == "uses_sets":
        return (obj("beta"), obj("east"), obj("nothing"))
    if name == "more_classes":
        return _more_classes(*obj)
    if name == "function_sets":
        return _function_sets(*obj)
    if name == "functools":
        partial, cached = obj
        return (
            partial(3),
            partial(),
            [cached(n) for n in (2, 3, 2)],
            cached.cache_info()[:2],
        )
    if name == "everything":
        return _everything(obj)
    raise KeyError(name)
