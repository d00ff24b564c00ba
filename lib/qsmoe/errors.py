"""The one exception type the library raises for bad input or impossible requests."""
from __future__ import annotations


class QsError(ValueError):
    """A user-facing error: one readable line naming the source, the field and the value.

    The CLI prints ``str(err)`` and exits with status 2; it never shows a traceback.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.source = source
        self.field = field
        parts = []
        if source:
            parts.append(str(source))
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
