"""The classes the by-value class tests share (``test_classes_*.py``).

Each ``*_SOURCE`` runs in a namespace named after no module (a script or notebook), so its
classes cannot be imported by the loader and travel by value; each ``make_*`` function runs its
source again and so returns NEW classes (new tracker ids) every time. The local and renamed
classes below are defined in this module, so ``__module__`` names it (``CORPUS_MODULE``).

This module must not be importable in a child interpreter either: it is in
``byvalue_helpers.TEST_MODULES``.
"""

from byvalue_helpers import make_namespace

CORPUS_MODULE = __name__


# --------------------------------------------------------------------------------------------
# Plain classes: properties, class/static methods, nesting, __init_subclass__, a metaclass,
# importable bases
# --------------------------------------------------------------------------------------------

CLASS_SOURCE = '''
import collections

GREETING = "hello"


class Base:
    """A base class."""

    kind = "base"
    limit: int = 10
    tags = ("a", "b")
    label: str

    def __init__(self, value):
        self.value = value
        self._secret = None

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.value == other.value

    def __hash__(self):
        return hash(self.value)

    def double(self):
        return self.value * 2

    def greet(self):
        return f"{GREETING}, {self.value}"

    @property
    def doubled(self):
        """Read-only."""
        return self.double()

    @property
    def secret(self):
        return self._secret

    @secret.setter
    def secret(self, new):
        self._secret = new * 2

    @secret.deleter
    def secret(self):
        self._secret = "deleted"

    @classmethod
    def make(cls, value):
        return cls(value)

    @staticmethod
    def helper(x):
        return x + 1


class Sub(Base):
    kind = "sub"

    def __init__(self, value, extra):
        super().__init__(value)
        self.extra = extra

    def double(self):
        return ("sub", super().double())

    def __repr__(self):
        return f"Sub({self.value!r}, {self.extra!r})"


class Outer:
    class Inner:
        """Nested."""

        def where(self):
            return "inner"


class Registered:
    created = []

    def __init_subclass__(cls, tag="default", **kwargs):
        super().__init_subclass__(**kwargs)
        cls.tag = tag
        Registered.created.append((cls.__name__, tag, sorted(kwargs)))


class Tagged(Registered, tag="custom"):
    pass


class Meta(type):
    made = []

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        mcs.made.append(name)
        return cls

    def __call__(cls, *args, **kwargs):
        instance = super().__call__(*args, **kwargs)
        instance.via_meta = cls.__name__
        return instance

    def describe(cls):
        return "meta:" + cls.__name__


class WithMeta(metaclass=Meta):
    def __init__(self, a):
        self.a = a


class Words(collections.OrderedDict):
    def first(self):
        return next(iter(self))


class Tally(collections.Counter):
    def top(self):
        return self.most_common(1)[0]


class AppError(ValueError):
    def __init__(self, code):
        super().__init__(f"code {code}")
        self.code = code
'''

CLASS_NAMES = ("Base", "Sub", "Outer", "Registered", "Tagged", "Meta", "WithMeta", "Words")
CLASS_NAMES += ("Tally", "AppError")


def make_class_corpus():
    ns = make_namespace(CLASS_SOURCE)
    return {name: ns[name] for name in CLASS_NAMES}


def make_local_classes():
    class Point:
        """A local class."""

        dims = 2

        def __init__(self, x, y):
            self.x, self.y = x, y

        def norm2(self):
            return self.x**2 + self.y**2

    class Point3(Point):
        dims = 3

        def __init__(self, x, y, z):
            super().__init__(x, y)
            self.z = z

        def norm2(self):
            return super().norm2() + self.z**2

    return Point, Point3


# --------------------------------------------------------------------------------------------
# Classes of this module whose names do not lead back to them
# --------------------------------------------------------------------------------------------


class _Renamed:
    def hello(self):
        return "renamed"


_Renamed.__qualname__ = "NoSuchClassHere"


class _InMain:
    def hello(self):
        return "main"


_InMain.__module__ = "__main__"  # the test runner's __main__ has no such class

# Kept under other names only: neither the classes' nor their methods' qualnames resolve (a
# method whose ``Class.method`` qualname still resolves here would go by reference).
RenamedClass, MainModuleClass = _Renamed, _InMain
del _Renamed, _InMain


# --------------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------------

ENUM_SOURCE = """
import enum


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3

    def describe(self):
        return f"{self.name.lower()}={self.value}"

    @classmethod
    def default(cls):
        return cls.GREEN

    @property
    def is_warm(self):
        return self is Color.RED


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Mode(enum.IntFlag):
    READ = 1
    WRITE = 2
    EXEC = 4


class Letter(str, enum.Enum):
    A = "a"
    B = "b"

    def shout(self):
        return self.value.upper() + "!"


class Auto(enum.Enum):
    FIRST = enum.auto()
    SECOND = enum.auto()


Shape = enum.Enum("Shape", "CIRCLE SQUARE")
Animal = enum.Enum("Animal", [("CAT", "meow"), ("DOG", "woof")])
"""

ENUM_NAMES = ("Color", "Level", "Perm", "Mode", "Letter", "Auto", "Shape", "Animal")


def make_enum_corpus():
    ns = make_namespace(ENUM_SOURCE)
    return {name: ns[name] for name in ENUM_NAMES}


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------

DATA_SOURCE = """
import dataclasses
import typing


@dataclasses.dataclass(order=True)
class Item:
    name: str
    price: float = 0.0
    tags: list = dataclasses.field(default_factory=list, compare=False)
    count: typing.ClassVar[int] = 0
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        self.price = self.price * scale
        type(self).count += 1

    def label(self):
        return f"{self.name}:{self.price}"


@dataclasses.dataclass
class Special(Item):
    extra: int = 0


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int
    y: int = 2


Made = dataclasses.make_dataclass(
    "Made",
    [("a", int), ("b", str, dataclasses.field(default="b"))],
    namespace={"both": lambda self: (self.a, self.b)},
)
"""


def make_data_corpus():
    ns = make_namespace(DATA_SOURCE)
    return {name: ns[name] for name in ("Item", "Special", "Frozen", "Made")}


# --------------------------------------------------------------------------------------------
# namedtuple, typing.NamedTuple, Generic with a by-value TypeVar, self-referencing hints
# --------------------------------------------------------------------------------------------

TYPING_SOURCE = """
import collections
import typing

Point = collections.namedtuple("Point", "x y", defaults=[0])


class Pair(typing.NamedTuple):
    left: int
    right: str = "r"

    def swap(self):
        return (self.right, self.left)


T = typing.TypeVar("T")
N = typing.TypeVar("N", bound=int)


class Box(typing.Generic[T]):
    def __init__(self, item: T):
        self.item = item

    def get(self) -> T:
        return self.item


class IntBox(Box[int]):
    pass


class Mapping2(typing.Generic[T, N]):
    pass


class Node:
    value: int

    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)

    def total(self):
        return self.value + sum(c.total() for c in self.children)


Node.__annotations__["children"] = typing.List[Node]
Node.__annotations__["parent"] = typing.Optional[Node]
Node.__annotations__["index"] = typing.Dict[str, typing.Tuple[Node, int]]
"""


def make_typing_corpus():
    ns = make_namespace(TYPING_SOURCE)
    return {name: ns[name] for name in ("Point", "Pair", "T", "N", "Box", "IntBox", "Mapping2")}


def make_node_class():
    return make_namespace(TYPING_SOURCE)["Node"]


# --------------------------------------------------------------------------------------------
# ABCs
# --------------------------------------------------------------------------------------------

ABC_SOURCE = """
import abc


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    @property
    @abc.abstractmethod
    def name(self): ...

    def describe(self):
        return f"{self.name}:{self.area()}"


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side**2

    @property
    def name(self):
        return "square"


class Half(Shape):  # still abstract: ``name`` is missing
    def area(self):
        return 0.5


class HasLen(abc.ABC):
    @classmethod
    def __subclasshook__(cls, other):
        return True if hasattr(other, "__len__") else NotImplemented


Shape.register(tuple)
"""


def make_abc_corpus():
    ns = make_namespace(ABC_SOURCE)
    return {name: ns[name] for name in ("Shape", "Square", "Half", "HasLen")}
