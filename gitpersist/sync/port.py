"""`StorePort`: what a sync needs of the store it syncs.

`gitpersist.store.Store` implements it; the sync package never imports the
store (it sits below it), and reaches no further into it than this."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..history import History
    from ..options import Options


class StorePort(Protocol):
    """What a sync needs of the store it syncs: `gitpersist.store.Store`
    implements it.  A sync never reaches further into the store."""
    root: str
    options: Options

    @property
    def history(self) -> History | None: ...

    def flush(self) -> None: ...

    def exclusive(self) -> AbstractContextManager[None]: ...

    def apply_received(self, relpath: str, data: bytes | None) -> None: ...

    def adopt_format(self) -> dict[str, list[str]]: ...
