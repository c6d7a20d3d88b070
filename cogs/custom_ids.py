"""Pieces of the custom_id templates that carry numbers. ASCII digits only and a bounded length, so a
forged or damaged custom_id (letters, a minus sign, a number beyond 64 bits) matches no template and gets
the "out of date" answer instead of reaching the database, which cannot bind such a number."""

# A row id or a Discord id: at most 18 digits, or 19 starting with 1-8, which always fits a signed
# 64-bit column (Discord ids stay below that bound until about 2083).
ID = r"(?:[0-9]{1,18}|[1-8][0-9]{18})"
# A page of a paged list: its offset (page times page size) stays far inside 64 bits.
PAGE = r"[0-9]{1,9}"
