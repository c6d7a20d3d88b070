"""Text as every database can store it."""

from __future__ import annotations

import re

# C0 controls except tab, newline and carriage return, DEL, and lone surrogates: PostgreSQL refuses
# NUL in text and neither database can encode a surrogate; none of them carries meaning in a chat.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without the characters a database cannot hold (NUL, other controls, surrogates)."""
    return _UNSTORABLE.sub("", text)
