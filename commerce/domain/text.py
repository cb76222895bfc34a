"""Free text people type that ends up stored and printed: an address line, a refund reason."""

from __future__ import annotations

import unicodedata

from commerce.domain.errors import InvalidInput


def one_line(value: object, label: str, longest: int, *, required: bool) -> str:
    """``value`` as one line of printable text (runs of whitespace made one space), or
    InvalidInput naming ``label``. Control and format characters are refused, not dropped:
    a NUL cannot be stored on PostgreSQL, an escape or a zero-width character cannot be
    printed on a label or read in a list, and quietly changing what someone typed hides it."""
    text = " ".join(str(value or "").split())
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        raise InvalidInput(label, "contains characters that cannot be printed")
    if required and not text:
        raise InvalidInput(label, "is required")
    if len(text) > longest:
        raise InvalidInput(label, f"is longer than {longest} characters")
    return text
