"""Which language a member labels in: an explicit choice, else their saved choice, else their
Discord locale, else the campaign's default."""

from __future__ import annotations

import re

# Discord locales whose region changes the written language; every other locale keeps its primary tag
# (en-US and en-GB are both "en", the way Open-Assistant tags its trees).
REGIONAL = {"pt-br": "pt-BR", "zh-tw": "zh-TW"}
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def normalise_language(tag: str | None) -> str | None:
    """An IETF tag as trees store it ("en-US" -> "en", "pt-BR" stays), or None when it is not a tag."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-")
    if not _TAG.match(tag):
        return None
    lowered = tag.lower()
    if lowered in REGIONAL:
        return REGIONAL[lowered]
    return lowered.split("-")[0]


def effective_language(asked: str | None, chosen: str | None, discord_locale: str | None, default: str) -> str:
    for candidate in (asked, chosen, discord_locale):
        language = normalise_language(candidate)
        if language:
            return language
    return default
