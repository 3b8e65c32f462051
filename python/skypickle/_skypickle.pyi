"""Type stubs for skypickle's compiled core."""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

class _Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...

__version__: str
DEFAULT_PROTOCOL: int
HIGHEST_PROTOCOL: int

def dumps(
    obj: Any,
    protocol: int | None = None,
    buffer_callback: Callable[[Any], Any] | None = None,
) -> bytes: ...
def dump(
    obj: Any,
    file: _Writable,
    protocol: int | None = None,
    buffer_callback: Callable[[Any], Any] | None = None,
) -> None: ...

class Pickler:
    dispatch_table: ClassVar[Mapping[type, Callable[[Any], Any]]]
    dispatch: ClassVar[Mapping[type, Callable[[Any], Any]]]
    _dispatch_table: ClassVar[dict[type, Callable[[Any], Any]]]
    def __init__(
        self,
        file: _Writable,
        protocol: int | None = None,
        buffer_callback: Callable[[Any], Any] | None = None,
    ) -> None: ...
    @property
    def proto(self) -> int: ...
    def dump(self, obj: Any, /) -> None: ...
    def clear_memo(self) -> None: ...
    def reducer_override(self, obj: Any, /) -> Any: ...
