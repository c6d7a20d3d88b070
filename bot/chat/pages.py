"""Splitting a long model reply into Discord-sized messages."""

from __future__ import annotations


def split_pages(text: str, limit: int = 2000) -> list[str]:
    """Pages of at most `limit` characters, broken at a paragraph, line or word boundary when one
    lies in the last quarter of the page, so a streamed reply never needs to rewrite earlier pages."""
    if limit < 8:
        raise ValueError("limit too small")
    pages: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position >= limit * 3 // 4:
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = limit
        pages.append(rest[:cut].rstrip() or rest[:cut])
        rest = rest[cut:]
    pages.append(rest)
    return pages
