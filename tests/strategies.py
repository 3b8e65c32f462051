"""Hypothesis strategies for object graphs, shared by the differential and hook tests."""

from __future__ import annotations

import objects
from hypothesis import strategies as st

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

BOUNDARY_INTS = [
    0,
    1,
    -1,
    127,
    128,
    255,
    256,
    -255,
    -256,
    -257,
    65535,
    65536,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    2**127,
    -(2**127),
    2**255 - 1,
    2**2048,
    -(2**2048) + 1,
]

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    5e-324,
    -5e-324,
    1.0 / 3,
    1e16,
    123456789.0,
]

SPECIAL_CHARS = [
    "\x00",
    "\n",
    "\r",
    "\\",
    "\x1a",
    "\x7f",
    "\x80",
    "\xff",
    "\u0100",
    "\u20ac",
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\udc80",
    "\U0001f600",  # non-BMP
    "\U0010ffff",
    "é",
    "'",
    '"',
]

ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(BOUNDARY_INTS),
    st.integers(),
)
floats = st.one_of(st.floats(), st.sampled_from(SPECIAL_FLOATS))
texts = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(st.characters(), st.sampled_from(SPECIAL_CHARS)), max_size=20).map("".join),
    st.sampled_from([0, 1, 255, 256, 65536]).map(lambda n: "s" * n),
)
binaries = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([0, 1, 255, 256, 70000]).map(lambda n: b"b" * n),
)

atoms = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    texts,
    binaries,
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.sampled_from([Ellipsis, NotImplemented, len, objects.Color.GREEN, objects.Perm.R]),
)

hashables = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, floats, texts, binaries),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(inner, max_size=4),
    ),
    max_leaves=8,
)


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(hashables, children, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
        st.binary(max_size=20).map(bytearray),
        # builtin subclasses
        st.lists(children, max_size=4).map(objects.MyList),
        st.dictionaries(texts, children, max_size=3).map(objects.MyDict),
        st.lists(children, max_size=3).map(objects.MyTuple),
        st.sets(hashables, max_size=3).map(objects.MySet),
        st.frozensets(hashables, max_size=3).map(objects.MyFrozenSet),
        texts.map(objects.MyStr),
        binaries.map(objects.MyBytes),
        ints.map(objects.MyInt),
        floats.map(objects.MyFloat),
        # instances using each reduce hook
        children.map(objects.Plain),
        st.just(None).map(lambda _: objects.Empty()),
        children.map(objects.WithGetState),
        st.tuples(children, children).map(lambda ab: objects.WithNonDictState(*ab)),
        children.map(objects.WithGetNewArgs),
        st.tuples(st.lists(children, max_size=2), st.dictionaries(st.just("kw"), children)).map(
            lambda ak: objects.WithGetNewArgsEx(*ak[0], **ak[1])
        ),
        st.tuples(children, st.one_of(st.none(), children)).map(lambda xy: objects.WithSlots(*xy)),
        st.tuples(children, children).map(lambda xy: objects.WithSlotsAndDict(xy[0], a=xy[1])),
        children.map(objects.WithReduce),
        children.map(objects.ReduceWithState),
        children.map(objects.ReduceStateNoSetstate),
        children.map(objects.WithStateSetter),
        st.lists(children, max_size=4).map(objects.ListItemsReduce),
        st.dictionaries(texts, children, max_size=4).map(objects.DictItemsReduce),
    )


trees = st.recursive(atoms, _containers, max_leaves=25)


def _walk(root):
    """All non-atom nodes reachable from root (each once), for wiring extra references."""
    seen = set()
    out = []
    stack = [root]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        out.append(x)
        if isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
        if hasattr(x, "__dict__") and not isinstance(x, type):
            try:
                stack.extend(vars(x).values())
            except TypeError:
                pass
        for name in ("x", "y", "a", "b", "items", "args", "kwargs"):
            if name in getattr(type(x), "__slots__", ()) and hasattr(x, name):
                stack.append(getattr(x, name))
    return out


def _mutable_targets(nodes):
    # Objects we can add a reference to after construction without breaking hashing or
    # the object's own reduce hook.
    return [
        n
        for n in nodes
        if type(n) in (list, dict, objects.MyList, objects.MyDict, objects.Plain)
        or (type(n) is objects.WithSlotsAndDict)
    ]


@st.composite
def graphs(draw):
    """A tree plus extra edges: shared references (DAGs) and back edges (cycles)."""
    root = draw(st.lists(trees, min_size=1, max_size=3))  # a list root is always mutable
    nodes = _walk(root)
    targets = _mutable_targets(nodes)
    for _ in range(draw(st.integers(0, 4))):
        holder = draw(st.sampled_from(targets))
        ref = draw(st.sampled_from(nodes))
        if isinstance(holder, list):
            holder.append(ref)
        elif isinstance(holder, dict):
            holder[f"ref{len(holder)}"] = ref
        else:
            holder.ref = ref
    return root
