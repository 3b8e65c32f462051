"""Classes by value, differential: skypickle's and cloudpickle's payloads of the same classes
loaded in one fresh interpreter behave the same, and as the originals do here.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import cloudpickle
import skypickle
from byvalue_class_corpus import (
    RenamedClass,
    make_abc_corpus,
    make_class_corpus,
    make_data_corpus,
    make_enum_corpus,
    make_local_classes,
    make_typing_corpus,
)
from byvalue_helpers import pack, plain_call, run_child

# --------------------------------------------------------------------------------------------
# Differential: skypickle and cloudpickle payloads loaded in one fresh interpreter
# --------------------------------------------------------------------------------------------


def make_differential_corpus():
    classes = make_class_corpus()
    enums = make_enum_corpus()
    data = make_data_corpus()
    typed = make_typing_corpus()
    abcs = make_abc_corpus()
    point, point3 = make_local_classes()

    def members(cls):
        return [repr(m) for m in cls]

    return {
        "Base": (
            classes["Base"],
            lambda C: (repr(C(3)), C(3).double(), C.make(2).greet(), C.helper(4), C(1).doubled),
        ),
        "Sub": (classes["Sub"], lambda C: (repr(C(1, 2)), C(1, 2).double(), C.kind)),
        "Inner": (classes["Outer"].Inner, lambda C: (C().where(), C.__name__)),
        "Tagged": (classes["Tagged"], lambda C: (C.tag, [c.__name__ for c in C.__mro__])),
        "WithMeta": (classes["WithMeta"], lambda C: (C(1).via_meta, C.describe())),
        "Words": (classes["Words"], lambda C: C([("z", 1), ("a", 2)]).first()),
        "Tally": (classes["Tally"], lambda C: C("mississippi").top()),
        "Local": (point3, lambda C: (C(1, 2, 2).norm2(), C.dims, C.__mro__[1].dims)),
        "Renamed": (RenamedClass, lambda C: C().hello()),
        "Color": (
            enums["Color"],
            lambda E: (members(E), E.RED.describe(), repr(E(2)), E.default().name),
        ),
        "Level": (enums["Level"], lambda E: (members(E), E.HIGH + 1)),
        "Perm": (
            enums["Perm"],
            lambda E: (members(E), repr(E.R | E.W), repr(E(3)), repr(~E.X)),
        ),
        "Mode": (enums["Mode"], lambda E: (members(E), repr(E.READ | E.EXEC))),
        "Letter": (enums["Letter"], lambda E: (members(E), E.A.shout(), E("b").name)),
        "Shape": (enums["Shape"], lambda E: (members(E), E.SQUARE.value)),
        "Animal": (enums["Animal"], lambda E: members(E)),
        "Item": (
            data["Item"],
            lambda C: (repr(C("a", 2.0, scale=2)), repr(sorted([C("b"), C("a")]))),
        ),
        "Frozen": (data["Frozen"], lambda C: (repr(C(1)), hash(C(1)) == hash(C(1)))),
        "Made": (data["Made"], lambda C: (repr(C(1)), C(2, "q").both())),
        "Pair": (typed["Pair"], lambda C: (repr(C(1)), C(1, "x").swap(), C._fields)),
        "Box": (
            typed["Box"],
            lambda C: (C[int](1).get(), repr(C.__parameters__), repr(C.__orig_bases__)),
        ),
        "Square": (
            abcs["Square"],
            lambda C: (C(3).describe(), issubclass(tuple, C.__mro__[1]), C.__abstractmethods__),
        ),
        "Half": (abcs["Half"], lambda C: sorted(C.__abstractmethods__)),
    }


def test_differential_against_cloudpickle(run_in_subprocess):
    corpus = make_differential_corpus()
    for name, (cls, _) in corpus.items():
        assert skypickle._should_pickle_by_reference(cls) is False, name
    got = run_child(
        run_in_subprocess,
        """
        def evaluate(corpus):
            return {name: outcome(probe, cls) for name, (cls, probe) in corpus.items()}

        p = pickle.loads(PAYLOAD)
        result = {lib: evaluate(pickle.loads(data)) for lib, data in p.items()}
        """,
        pack(sky=skypickle.dumps(corpus), cp=cloudpickle.dumps(corpus)),
    )
    sky, cp = got["sky"], got["cp"]
    assert sorted(sky) == sorted(corpus)
    mismatches = {name: (sky[name], cp[name]) for name in corpus if sky[name] != cp[name]}
    assert not mismatches
    failures = {name: r for name, r in sky.items() if r[0] != "ok"}
    assert not failures
    # Both agree with the originals here, except what loading changes by design (a repr of
    # ``__orig_bases__``/``__parameters__`` names the same things).
    here = {
        name: plain_call(probe, cls) for name, (cls, probe) in make_differential_corpus().items()
    }
    assert {k: v[1] for k, v in sky.items()} == {k: v[1] for k, v in here.items()}
