"""Classes for the plain-instance fast path tests (importable, so pickle can find them)."""


class Plain:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class PlainChild(Plain):
    pass


class Empty:
    pass


class WithSlots:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


class SlotsAndDict:
    __slots__ = ("s", "__dict__")

    def __init__(self, **kw):
        self.__dict__.update(kw)


class WithGetState(Plain):
    def __getstate__(self):
        return {"state": sorted(self.__dict__)}


class WithReduce(Plain):
    def __reduce__(self):
        return (WithReduce, ())


class WithGetNewArgs(Plain):
    def __new__(cls, *args):
        return super().__new__(cls)

    def __getnewargs__(self):
        return (1, 2)


class WithClassProperty(Plain):
    @property
    def __class__(self):
        return Plain


class WithGetattr(Plain):
    def __getattr__(self, name):
        if name == "__getstate__":
            return lambda: {"from": "getattr"}
        raise AttributeError(name)


class Meta(type):
    pass


class WithMeta(metaclass=Meta):
    def __init__(self, v):
        self.v = v


class DictSubclass(dict):
    pass


class ListChild(list):
    pass
