"""Classes by value: ABCs, ``__slots__`` and ``__init_subclass__`` keywords.

ABC registries and caches, real slots (beyond cloudpickle), and bases whose
``__init_subclass__`` requires keyword arguments (beyond cloudpickle).

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import pickle
import textwrap

import cloudpickle
import pytest
import skypickle
from byvalue_class_corpus import make_abc_corpus
from byvalue_helpers import CHILD_TOOLS, make_namespace, pack, run_child

# --------------------------------------------------------------------------------------------
# ABCs
# --------------------------------------------------------------------------------------------


def test_abcs_in_fresh_interpreter(run_in_subprocess):
    corpus = make_abc_corpus()
    shape = corpus["Shape"]
    # Fill the isinstance/issubclass caches here: they must not travel.
    assert isinstance((1,), shape) and not isinstance(1, shape)
    assert not issubclass(list, shape) and isinstance(corpus["Square"](2), shape)
    assert issubclass(list, corpus["HasLen"]) and not issubclass(int, corpus["HasLen"])
    payload = skypickle.dumps(corpus)
    got = run_child(
        run_in_subprocess,
        """
        import abc

        C = pickle.loads(PAYLOAD)
        Shape, Square, Half, HasLen = C["Shape"], C["Square"], C["Half"], C["HasLen"]
        def names(refs):
            return sorted(r().__name__ for r in refs)

        # (The negative cache may hold ``tuple``: registering it at load first asks
        # ``issubclass(tuple, Shape)``. Nothing the sender cached may be there.)
        before = [names(refs) for refs in abc._get_dump(Shape)[:3]]
        before_hooks = [names(refs) for refs in abc._get_dump(HasLen)[:3]]
        Shape.register(list)
        result = {
            "caches_at_load": (before, before_hooks),
            "abstract": (outcome(Shape)[:2], outcome(Half)[:2]),
            "abstractmethods": (
                sorted(Shape.__abstractmethods__),
                sorted(Half.__abstractmethods__),
                sorted(Square.__abstractmethods__),
            ),
            "concrete": (Square(3).describe(), isinstance(Square(1), Shape)),
            "registered": (
                issubclass(tuple, Shape), isinstance((1,), Shape), issubclass(int, Shape)
            ),
            "register_in_child": issubclass(list, Shape),
            "subclasshook": (issubclass(list, HasLen), issubclass(int, HasLen)),
            "meta": type(Shape) is abc.ABCMeta,
        }
        """,
        payload,
    )
    assert got == {
        "caches_at_load": got["caches_at_load"],
        "abstract": (("raise", "TypeError"), ("raise", "TypeError")),
        "abstractmethods": (["area", "name"], ["name"], []),
        "concrete": ("square:9", True),
        "registered": (True, True, False),
        "register_in_child": True,
        "subclasshook": (True, False),
        "meta": True,
    }
    registry, positive, negative = got["caches_at_load"][0]
    assert registry == ["tuple"] and positive == [] and negative in ([], ["tuple"])
    assert got["caches_at_load"][1] == [[], [], []]
    assert b"_abc_cache" not in payload and b"_abc_negative_cache" not in payload


# --------------------------------------------------------------------------------------------
# __slots__ and required __init_subclass__ keywords (beyond cloudpickle)
# --------------------------------------------------------------------------------------------

SLOTS_SOURCE = """
import dataclasses
import sys


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x=1):
        self.x = x

    def total(self):
        return self.x + getattr(self, "y", 0)


class SlottedChild(Slotted):
    __slots__ = ("z",)


class OneSlot:
    __slots__ = "only"


class OnlyWeakref:
    __slots__ = "__weakref__"


class WithWeakref:
    __slots__ = ("a", "__weakref__")


class WithDict:
    __slots__ = ("a", "__dict__")


class Private:
    __slots__ = ("__hidden", "visible")

    def __init__(self):
        self.__hidden = "hidden value"

    def hidden(self):
        return self.__hidden


if sys.version_info >= (3, 10):

    @dataclasses.dataclass(slots=True)
    class SlotsData:
        a: int = 1
        b: str = "b"
"""

SLOTS_PROBE = """
import weakref


def probe_slots(classes, instance):
    def check(cls):
        obj = cls()
        return {
            "has_dict": hasattr(obj, "__dict__"),
            "undeclared": outcome(setattr, obj, "undeclared_attribute", 1)[:2],
            "weakref": outcome(lambda: weakref.ref(obj)() is obj)[:2],
            "slot_descriptors": sorted(
                k for k, v in vars(cls).items() if type(v).__name__ == "member_descriptor"
            ),
        }

    result = {name: check(cls) for name, cls in classes.items()}
    result["behaviour"] = (
        classes["Slotted"](5).total(),
        (instance.x, instance.y, instance.z, instance.total()),
        classes["Private"]().hidden(),
        outcome(setattr, classes["OneSlot"](), "only", 1)[0],
    )
    if "SlotsData" in classes:
        result["behaviour"] += (repr(classes["SlotsData"](2)),)
    return result
"""


def make_slots_objects():
    ns = make_namespace(SLOTS_SOURCE)
    names = ["Slotted", "SlottedChild", "OneSlot", "OnlyWeakref", "WithWeakref", "WithDict"]
    names += ["Private"] + (["SlotsData"] if "SlotsData" in ns else [])
    instance = ns["SlottedChild"](1)
    instance.y, instance.z = 2, 3
    return {name: ns[name] for name in names}, instance


def test_slots_are_real_slots(run_in_subprocess):
    """BEYOND cloudpickle: a class with ``__slots__`` comes back with real slots, as in the
    original: its instances have no ``__dict__`` (unless ``"__dict__"`` is a slot) and refuse
    undeclared attributes, weak references work only with a ``__weakref__`` slot, and private
    (mangled) slot names work. cloudpickle 3.1.2 (its payload checked in the same child) rebuilds
    a plain class: instances get a ``__dict__`` and accept anything; it cannot dump
    ``__slots__ = "__weakref__"`` (KeyError) and its payload with a private slot fails to load."""
    classes, instance = make_slots_objects()
    here = {}
    exec(CHILD_TOOLS + SLOTS_PROBE, here)
    expected = here["probe_slots"](classes, instance)
    assert expected["Slotted"] == {
        "has_dict": False,
        "undeclared": ("raise", "AttributeError"),
        "weakref": ("raise", "TypeError"),
        "slot_descriptors": ["x", "y"],
    }
    with pytest.raises(KeyError):
        cloudpickle.dumps(classes["OnlyWeakref"])
    cp_classes = {k: v for k, v in classes.items() if k not in ("OnlyWeakref", "Private")}
    got = run_child(
        run_in_subprocess,
        SLOTS_PROBE + "result = {'sky': probe_slots(*pickle.loads(PAYLOAD))}\n",
        skypickle.dumps((classes, instance)),
    )
    # cloudpickle's payloads in a child of their own: they carry the same class tracker ids as
    # skypickle's (the two agree on them), so in one process they would be skypickle's classes.
    got.update(
        run_child(
            run_in_subprocess,
            SLOTS_PROBE
            + textwrap.dedent(
                """
                def probe_plain(classes):
                    return {
                        name: {
                            "has_dict": hasattr(cls(), "__dict__"),
                            "undeclared": outcome(setattr, cls(), "undeclared_attribute", 1)[:2],
                        }
                        for name, cls in classes.items()
                    }

                p = pickle.loads(PAYLOAD)
                result = {
                    "cp": probe_plain(pickle.loads(p["cp"])),
                    "cp_private": outcome(pickle.loads, p["cp_private"])[:2],
                }
                """
            ),
            pack(
                cp=cloudpickle.dumps(cp_classes),
                cp_private=cloudpickle.dumps(classes["Private"]),
            ),
        )
    )
    assert got["sky"] == expected
    assert got["cp"] == {
        name: {"has_dict": True, "undeclared": ("ok", None)} for name in cp_classes
    }
    assert got["cp_private"] == ("raise", "AttributeError")


def test_empty_slots_are_kept(run_in_subprocess):
    ns = make_namespace(
        """
        class Mixin:
            __slots__ = ()

            def name(self):
                return "mixin"

        class Point(Mixin):
            __slots__ = ("x", "y")
        """
    )
    for cls in (ns["Mixin"], ns["Point"]):
        assert not hasattr(cls(), "__dict__")
    got = run_child(
        run_in_subprocess,
        """
        result = [
            (cls().name(), hasattr(cls(), "__dict__"), outcome(setattr, cls(), "z", 1)[0])
            for cls in pickle.loads(PAYLOAD)
        ]
        """,
        skypickle.dumps((ns["Mixin"], ns["Point"])),
    )
    assert got == [("mixin", False, "raise"), ("mixin", False, "raise")]


PLUGIN_SOURCE = """
class Plugin:
    registry = []  # a list: a second run of the hook would show

    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key
        Plugin.registry.append((key, cls.__name__))

    def run(self):
        return f"{type(self).__name__}:{self.key}"


class Mine(Plugin, key="mine"):
    def run(self):
        return "mine+" + super().run()


class Yours(Mine, key="yours"):  # a by-value base with the same hook
    pass
"""


def test_required_init_subclass_keywords(run_in_subprocess):
    """BEYOND cloudpickle: a class whose base's ``__init_subclass__`` REQUIRES keyword arguments
    (``class Mine(Plugin, key="mine")``) loads; the hook is not run again at load (it ran in the
    sender, and the keywords are kept nowhere). cloudpickle 3.1.2's payload raises TypeError at
    load (asserted in the same child)."""
    ns = make_namespace(PLUGIN_SOURCE)
    obj = (ns["Mine"], ns["Yours"](), ns["Plugin"])
    got = run_child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        Mine, yours, Plugin = pickle.loads(p["sky"])
        result = {
            "sky": (
                Mine().run(),
                yours.run(),
                Mine.__bases__ == (Plugin,),
                [c.__name__ for c in type(yours).__mro__],
                isinstance(yours, Plugin) and isinstance(yours, Mine),
                (Mine.key, type(yours).key),
                Plugin.registry,
            ),
            "cp": outcome(pickle.loads, p["cp"]),
        }
        """,
        pack(sky=skypickle.dumps(obj), cp=cloudpickle.dumps(obj)),
    )
    assert got["sky"] == (
        "mine+Mine:mine",
        "mine+Yours:yours",
        True,
        ["Yours", "Mine", "Plugin", "object"],
        True,
        ("mine", "yours"),
        [("mine", "Mine"), ("yours", "Yours")],
    )
    assert got["cp"][:2] == ("raise", "TypeError")
    assert "key" in got["cp"][2]


PLUGIN_GAPS = {
    "abc_base": """
import abc

class Plugin(abc.ABC):
    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

    @abc.abstractmethod
    def run(self): ...

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
    "slotted_base": """
class Plugin:
    __slots__ = ("state",)

    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
    "dict_base": """
class Plugin(dict):
    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
}


_SLOTTED_GAP = pytest.mark.xfail(
    strict=True,
    reason="The required-keyword fallback builds the skeleton on a stand-in base and then "
    "assigns __bases__; for a base with non-empty __slots__ CPython refuses ('object layout "
    "differs') and the original TypeError (missing keyword 'key') is raised at load.",
)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=_SLOTTED_GAP) if c == "slotted_base" else c for c in PLUGIN_GAPS],
)
def test_required_init_subclass_keywords_with_other_layouts(run_in_subprocess, case):
    mine = make_namespace(PLUGIN_GAPS[case])["Mine"]
    assert mine().run() == "mine"
    # Here the tracker gives back the original class without building anything: only a
    # fresh interpreter builds the skeleton.
    assert pickle.loads(skypickle.dumps(mine)) is mine
    got = run_child(
        run_in_subprocess,
        """
        result = outcome(lambda: pickle.loads(PAYLOAD)().run())
        """,
        skypickle.dumps(mine),
    )
    assert got == ("ok", "mine")
