"""Pieces of the custom_id templates that carry numbers. ASCII digits only, and never more than the column
they name can hold (storage/ids.py), so a forged or damaged custom_id (letters, a minus sign, a number too
big) matches no template and gets the "out of date" answer instead of reaching the database."""

# One of our row ids: at most 10 digits starting with 1, below MAX_ROW_ID (2**31 - 1).
ROW_ID = r"(?:[0-9]{1,9}|1[0-9]{9})"
# A Discord id: at most 18 digits, or 19 starting with 1-8, below MAX_DISCORD_ID (Discord ids stay below
# that bound until about 2083).
DISCORD_ID = r"(?:[0-9]{1,18}|[1-8][0-9]{18})"
# A page of a paged list: its offset (page times page size) stays far inside 64 bits.
PAGE = r"[0-9]{1,9}"
