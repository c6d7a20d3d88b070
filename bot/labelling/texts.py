"""What a written text (a prompt, a reply, a moderator's correction) must be to be stored: something
visible, and no control codes."""

from __future__ import annotations

import unicodedata

# Line breaks and tabs are part of a text. Other control codes (NUL, ESC, BEL...) come from a terminal
# or a broken paste and mean nothing in training data (PostgreSQL cannot even store NUL).
_KEPT_CONTROLS = frozenset("\t\n\r")


def text_refusal(text: str) -> str | None:
    """Why a (stripped) text cannot be stored, as a reason code, or None when it can:
    ``control_characters`` (control codes), ``empty_text`` (nothing visible: empty,
    spaces, or only zero-width and other format characters)."""
    if any(unicodedata.category(ch) == "Cc" and ch not in _KEPT_CONTROLS for ch in text):
        return "control_characters"
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        return "empty_text"
    return None
