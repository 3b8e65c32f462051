"""Classes by value: class tracking.

A tracker id makes one class of all the copies loaded in a process, sends a class loaded
elsewhere back to the original, and lets a class sent again update the copy a worker has.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import pickle

import cloudpickle
import skypickle
from byvalue_class_corpus import (
    make_class_corpus,
    make_data_corpus,
    make_enum_corpus,
    make_typing_corpus,
)
from byvalue_helpers import ALL_PROTOCOLS, make_namespace, pack, run_child

THIS_MODULE = __name__


# --------------------------------------------------------------------------------------------
# Class tracking
# --------------------------------------------------------------------------------------------

TRACKING_SOURCE = """
class Thing:
    def __init__(self, n):
        self.n = n

    def version(self):
        return "v1"
"""

TRACKING_SOURCE_REDEFINED = TRACKING_SOURCE.replace('"v1"', '"v2"')


def test_loading_twice_gives_one_class_in_process():
    corpus = make_class_corpus()
    for proto in ALL_PROTOCOLS:
        for cls in corpus.values():
            assert pickle.loads(skypickle.dumps(cls, protocol=proto)) is cls
        instance = pickle.loads(skypickle.dumps(corpus["Sub"](1, 2), protocol=proto))
        assert type(instance) is corpus["Sub"]


def test_loading_twice_gives_one_class_in_child(run_in_subprocess):
    corpus = make_class_corpus()
    base, sub = corpus["Base"], corpus["Sub"]
    got = run_child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        a = pickle.loads(p["class"])
        b = pickle.loads(p["class"])
        instances = pickle.loads(p["instances"])
        sub_cls = pickle.loads(p["sub"])
        result = (
            a is b,
            type(instances[0]) is a,
            type(instances[1]) is sub_cls,
            sub_cls.__bases__[0] is a,
            isinstance(instances[1], a),
        )
        """,
        pack(
            **{
                "class": skypickle.dumps(base),
                "instances": skypickle.dumps([base(1), sub(2, 3)], protocol=2),
                "sub": skypickle.dumps(sub, protocol=4),
            }
        ),
    )
    assert got == (True, True, True, True, True)


def test_class_sent_back_is_the_original(run_in_subprocess):
    """A class loaded in a worker and sent back (with instances) is the original class."""
    corpus = make_class_corpus()
    enums = make_enum_corpus()
    data = make_data_corpus()
    typed = make_typing_corpus()
    sent = {
        "base": corpus["Base"](1),
        "sub": corpus["Sub"](2, "y"),
        "meta": corpus["WithMeta"](3),
        "color": enums["Color"].GREEN,
        "perm": enums["Perm"].R | enums["Perm"].W,
        "letter": enums["Letter"].B,
        "item": data["Item"]("pen", 2.0),
        "frozen": data["Frozen"](1),
        "pair": typed["Pair"](1, "x"),
        "box": typed["Box"](5),
        "classes": (corpus["Tagged"], typed["Box"], typed["T"]),
    }
    returned = run_child(
        run_in_subprocess,
        """
        import skypickle

        received = pickle.loads(PAYLOAD)
        received["base"].value += 100
        received["item"].tags.append("from-child")

        class ChildOnly:  # defined in the child: goes back by value, a new class there
            def where(self):
                return "child"

        received["child_only"] = ChildOnly()
        result = skypickle.dumps(received)
        """,
        skypickle.dumps(sent),
    )
    back = pickle.loads(returned)
    assert type(back["base"]) is corpus["Base"] and back["base"].value == 101
    assert type(back["sub"]) is corpus["Sub"] and isinstance(back["sub"], corpus["Base"])
    assert type(back["meta"]) is corpus["WithMeta"] and back["meta"].via_meta == "WithMeta"
    assert back["color"] is enums["Color"].GREEN
    assert back["perm"] == enums["Perm"].R | enums["Perm"].W
    assert type(back["perm"]) is enums["Perm"]
    assert back["letter"] is enums["Letter"].B
    assert type(back["item"]) is data["Item"] and back["item"].tags == ["from-child"]
    assert type(back["frozen"]) is data["Frozen"] and back["frozen"] == data["Frozen"](1)
    assert type(back["pair"]) is typed["Pair"] and back["pair"] == typed["Pair"](1, "x")
    assert type(back["box"]) is typed["Box"] and back["box"].get() == 5
    assert back["classes"][0] is corpus["Tagged"]
    assert back["classes"][1] is typed["Box"]
    assert back["classes"][2] is typed["T"]
    child_only = type(back["child_only"])
    assert child_only.__name__ == "ChildOnly" and child_only.__module__ == "__main__"
    assert back["child_only"].where() == "child"


def test_redefined_class_is_a_new_class(run_in_subprocess):
    """Redefining a class in the sender gives it a new identity: instances the worker received
    before are not instances of the new class, and each goes back to its own class."""
    old_ns = make_namespace(TRACKING_SOURCE, "byvalue_tracking_main")
    new_ns = make_namespace(TRACKING_SOURCE_REDEFINED, "byvalue_tracking_main")
    old, new = old_ns["Thing"](1), new_ns["Thing"](2)
    returned = run_child(
        run_in_subprocess,
        """
        import skypickle

        p = pickle.loads(PAYLOAD)
        old = pickle.loads(p["old"])
        new = pickle.loads(p["new"])
        again = pickle.loads(p["old_again"])
        checks = (
            type(old) is type(new),
            isinstance(old, type(new)),
            type(again) is type(old),
            old.version(),
            new.version(),
            type(old).__name__ == type(new).__name__,
        )
        result = (checks, skypickle.dumps((old, new)))
        """,
        pack(
            old=skypickle.dumps(old),
            new=skypickle.dumps(new),
            old_again=skypickle.dumps(old_ns["Thing"](3)),
        ),
    )
    checks, data = returned
    assert checks == (False, False, True, "v1", "v2", True)
    back_old, back_new = pickle.loads(data)
    assert type(back_old) is old_ns["Thing"] and type(back_new) is new_ns["Thing"]


def test_changes_in_the_sender_reach_the_tracked_class(run_in_subprocess):
    """Sending a class again updates the copy the worker already has (cloudpickle's tracking:
    the state is set on the class found by its tracker id)."""
    ns = make_namespace(TRACKING_SOURCE)
    cls = ns["Thing"]
    first = skypickle.dumps(cls(1))
    cls.added = "patched"
    cls.version = lambda self: "patched-v"
    second = skypickle.dumps(cls(2))
    got = run_child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        one = pickle.loads(p["first"])
        before = (one.version(), hasattr(type(one), "added"))
        two = pickle.loads(p["second"])
        result = (before, type(one) is type(two), one.version(), type(one).added)
        """,
        pack(first=first, second=second),
    )
    assert got == (("v1", False), True, "patched-v", "patched")


# Subclasses seen by Base.__init_subclass__: a list in this (importable) module, so that it is
# pickled by reference and the copies of Base's methods that a load brings write to it too.
REGISTERED = []

REGISTRY_SOURCE = f"""
import {THIS_MODULE} as registry_home


class Base:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry_home.REGISTERED.append(cls.__name__)


class Child(Base):
    pass
"""


def test_loading_a_known_class_builds_no_throwaway_copy():
    """A class the process already has (same tracker id) is returned before any skeleton is
    built, so a base's ``__init_subclass__`` does not see a throwaway copy on every load (it
    does with cloudpickle 3.1.2, whose skeleton is built and then discarded)."""
    REGISTERED.clear()
    ns = make_namespace(REGISTRY_SOURCE)
    assert REGISTERED == ["Child"]
    payload = skypickle.dumps(ns["Child"])
    for _ in range(3):
        assert pickle.loads(payload) is ns["Child"]
    assert REGISTERED == ["Child"]
    cloudpickle_payload = cloudpickle.dumps(ns["Child"])
    for _ in range(3):
        assert pickle.loads(cloudpickle_payload) is ns["Child"]
    assert REGISTERED == ["Child"] * 4


def test_a_class_loaded_where_it_was_defined_keeps_its_own_namespace():
    """A class sent away and back (or loaded where it was pickled) is the original class, and
    its methods stay the original functions: cloudpickle 3.1.2 replaces them with by-value
    copies (with their own globals), so the class's later pickles and its behaviour under
    patched globals change."""
    ns = make_namespace(TRACKING_SOURCE)
    cls = ns["Thing"]
    method = cls.version
    payload = skypickle.dumps(cls)
    assert pickle.loads(payload) is cls
    assert cls.version is method
    assert skypickle.dumps(cls) == payload
    # cloudpickle's round trip swaps the method for a copy.
    assert pickle.loads(cloudpickle.dumps(cls)) is cls
    assert cls.version is not method
