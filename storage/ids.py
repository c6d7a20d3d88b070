"""The ranges of our id columns. Row ids are INTEGER (32 bits on PostgreSQL), Discord ids BIGINT (64 bits).
A number beyond them names no row and cannot even be bound in a query (PostgreSQL refuses it for the
column's type, SQLite beyond 64 bits), so ids that come from outside (typed by a moderator, carried in a
custom_id) are checked against these first."""

MAX_ROW_ID = 2**31 - 1
MAX_DISCORD_ID = 2**63 - 1
