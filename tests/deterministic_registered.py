"""A module that ``tests/deterministic_corpus.py`` registers with ``register_pickle_by_value``.

The test copies this file next to each copy of the corpus script (a temporary directory), so
it is imported from there; the loader child has neither.
"""

import enum

UNITS = {"mm", "cm", "m", "km"}
SCALE = {"mm": 1, "cm": 10, "m": 1000, "km": 1_000_000}


class Length:
    """A length in millimetres."""

    def __init__(self, value, unit="mm"):
        if unit not in UNITS:
            raise ValueError(unit)
        self.mm = value * SCALE[unit]

    def to(self, unit):
        return self.mm / SCALE[unit]

    def __eq__(self, other):
        return isinstance(other, Length) and self.mm == other.mm

    def __hash__(self):
        return hash(self.mm)

    def __repr__(self):
        return f"Length({self.mm}mm)"


class Axis(enum.Enum):
    X = "x"
    Y = "y"


def total(*lengths):
    return Length(sum(length.mm for length in lengths))


def units():
    return sorted(UNITS)
