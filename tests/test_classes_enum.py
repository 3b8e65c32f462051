"""Classes by value: enums, which travel with their members.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import pickle

import cloudpickle
import pytest
import skypickle
from byvalue_class_corpus import make_enum_corpus
from byvalue_helpers import ALL_PROTOCOLS, compare_in_child, make_namespace, pack, run_child
from helpers import reconstructors

PROTOCOLS = (2, 3, 4, 5)


# --------------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------------


ENUM_BODY = """
import skypickle

E = OBJ
Color, Level, Perm, Mode = E["Color"], E["Level"], E["Perm"], E["Mode"]
Letter, Shape, Animal = E["Letter"], E["Shape"], E["Animal"]
result = {
    "members": {name: [(m.name, m.value) for m in cls] for name, cls in E.items()},
    "reprs": {name: [repr(m) for m in cls] for name, cls in E.items()},
    "lookup": (Color(2) is Color.GREEN, Color["BLUE"] is Color.BLUE, outcome(Color, 9)[:2]),
    "methods": (Color.RED.describe(), Color.default() is Color.GREEN, Color.RED.is_warm),
    "int_enum": (
        Level.HIGH > 5,
        Level.LOW + 1,
        isinstance(Level.LOW, int),
        [int(m) for m in sorted(Level, reverse=True)],
    ),
    "flag": (
        repr(Perm.R | Perm.W),
        (Perm.R | Perm.W).value,
        Perm.R in (Perm.R | Perm.X),
        Perm(6) == Perm.R | Perm.W,
        bool(Perm(0)),
        (Perm.R | Perm.W | Perm.X) & ~Perm.W == Perm.R | Perm.X,
    ),
    "int_flag": (Mode.READ | Mode.WRITE == 3, repr(Mode(5)), int(Mode.EXEC | 1)),
    "str_mixin": (Letter.A == "a", Letter("b") is Letter.B, Letter.A.shout(), Letter.B + "c"),
    "functional": (Shape.SQUARE.value, Animal.DOG.value, Animal("meow") is Animal.CAT),
    "auto": [m.value for m in E["Auto"]],
    "types": {name: [b.__name__ for b in cls.__mro__] for name, cls in E.items()},
    "member_identity": all(
        skypickle.loads(skypickle.dumps(m)) is m for cls in E.values() for m in cls
    ),
    "is_instance": all(isinstance(m, cls) for cls in E.values() for m in cls),
}
"""


@pytest.mark.parametrize("proto", [1, *PROTOCOLS])
def test_enums_in_fresh_interpreter(run_in_subprocess, proto):
    expected, got, payload = compare_in_child(
        run_in_subprocess, make_enum_corpus(), ENUM_BODY, protocol=proto
    )
    assert reconstructors(payload)["_make_skeleton_enum"] >= 1
    assert got == expected
    assert got["members"]["Color"] == [("RED", 1), ("GREEN", 2), ("BLUE", 3)]
    assert got["methods"] == ("red=1", True, True)
    assert got["flag"][:2] == ("<Perm.R|W: 6>", 6)
    assert got["str_mixin"] == (True, True, "A!", "bc")
    assert got["functional"] == (2, "woof", True)
    assert got["member_identity"] is True


@pytest.mark.parametrize("proto", ALL_PROTOCOLS)
def test_enum_members_keep_identity_in_process(proto):
    enums = make_enum_corpus()
    for cls in enums.values():
        assert pickle.loads(skypickle.dumps(cls, protocol=proto)) is cls
        for member in cls:
            assert pickle.loads(skypickle.dumps(member, protocol=proto)) is member
    perm, mode = enums["Perm"], enums["Mode"]
    combined = pickle.loads(skypickle.dumps(perm.R | perm.X, protocol=proto))
    assert combined == perm.R | perm.X and type(combined) is perm
    assert pickle.loads(skypickle.dumps(mode.READ | mode.EXEC, protocol=proto)) == 5


def test_enum_members_loaded_alone_in_child(run_in_subprocess):
    """A member pickled on its own brings its enum; members and combinations pickled apart are
    members of ONE enum in the child."""
    enums = make_enum_corpus()
    color, perm = enums["Color"], enums["Perm"]
    got = run_child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        red = pickle.loads(p["red"])
        combo = pickle.loads(p["combo"])
        green = pickle.loads(p["green"])
        cls = pickle.loads(p["cls"])
        result = (
            type(red) is type(green) is cls,
            red is cls.RED,
            [m.name for m in cls],
            combo.value,
            combo == type(combo).R | type(combo).W,
            red.describe(),
        )
        """,
        pack(
            red=skypickle.dumps(color.RED),
            combo=skypickle.dumps(perm.R | perm.W),
            green=skypickle.dumps(color.GREEN, protocol=2),
            cls=skypickle.dumps(color, protocol=3),
        ),
    )
    assert got == (True, True, ["RED", "GREEN", "BLUE"], 6, True, "red=1")


ALIAS_SOURCE = """
import enum


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    CRIMSON = 1  # an alias of RED
"""


def test_enum_alias_in_fresh_interpreter(run_in_subprocess):
    """An alias still finds its member in a fresh interpreter and, beyond cloudpickle 3.1.2
    (whose payload is checked in the same child: there the alias is a plain class attribute,
    missing from ``__members__``), it is still listed in ``__members__``."""
    color = make_namespace(ALIAS_SOURCE)["Color"]
    probe = """
        Color = pickle.loads(PAYLOAD)
        result = (
            Color.CRIMSON is Color.RED,
            Color(1) is Color.RED,
            Color["RED"] is Color.RED,
            [m.name for m in Color],
            list(Color.__members__),
        )
        """
    # One child each: both payloads carry the same class tracker id (skypickle and
    # cloudpickle agree on it), so in one process the second would be the first's class, and
    # cloudpickle's loader then fails setting the alias on it (as it does on its own round
    # trip of such an enum).
    got = {
        "sky": run_child(run_in_subprocess, probe, skypickle.dumps(color)),
        "cp": run_child(run_in_subprocess, probe, cloudpickle.dumps(color)),
    }
    assert got["sky"] == (True, True, True, ["RED", "GREEN"], list(color.__members__))
    assert got["cp"][:4] == got["sky"][:4]
    assert got["cp"][4] == ["RED", "GREEN"]


def test_enum_with_alias_round_trips_in_process():
    color = make_namespace(ALIAS_SOURCE)["Color"]
    assert pickle.loads(skypickle.dumps(color.RED)) is color.RED


def test_enum_with_alias_sent_back_from_child(run_in_subprocess):
    color = make_namespace(ALIAS_SOURCE)["Color"]
    returned = run_child(
        run_in_subprocess,
        """
        import skypickle

        result = skypickle.dumps(pickle.loads(PAYLOAD))
        """,
        skypickle.dumps(color.GREEN),
    )
    assert pickle.loads(returned) is color.GREEN
