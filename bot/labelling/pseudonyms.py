"""Pseudonymous user ids for public exports, and where their salt comes from.

A user's public id is ``HMAC-SHA256(salt, "discord:<discord user id>")``, its first 16 bytes
written as a UUID string (oasst1's user ids are UUIDs, so tools that parse them keep working).
The Discord id rather than our row id is hashed so that the pseudonym survives a database rebuild.
Without the salt nobody can recompute the mapping from a list of Discord ids; with the same salt
two exports of the same community give every user the same pseudonym, so they can be joined.

The salt, first match wins:
1. an explicit value (``oabot export --salt``, or ``salt=`` of the Python API);
2. the ``OABOT_EXPORT_SALT`` environment variable;
3. the file ``export_salt`` beside the SQLite database (``data/`` for other databases), created
   with 32 random bytes (hex) on the first export and reused afterwards. Keep it secret and keep
   it: a new salt gives everyone new pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url

SALT_ENV = "OABOT_EXPORT_SALT"
SALT_FILE = "export_salt"


def data_dir(database_url: str) -> Path:
    """The directory that holds the SQLite database file; ``data`` for anything else."""
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        return Path(database).expanduser().parent
    return Path("data")


def resolve_salt(explicit: str | None, database_url: str | None) -> bytes:
    if explicit:
        return explicit.encode()
    from_env = os.environ.get(SALT_ENV, "").strip()
    if from_env:
        return from_env.encode()
    directory = data_dir(database_url) if database_url else Path("data")
    path = directory / SALT_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two exports started at once must not each write a different salt.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    salt = path.read_text().strip()
    if not salt:
        raise ValueError(f"{path} is empty; delete it to make a new salt or set {SALT_ENV}")
    return salt.encode()


def pseudonym(salt: bytes, discord_id: int) -> str:
    digest = hmac.new(salt, f"discord:{discord_id}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def user_id_mapper(salt: bytes | None, *, raw: bool = False) -> Callable[[int | None], str | None]:
    """Discord id -> exported user id; raw ids are the Discord ids as strings."""
    if raw:
        return lambda discord_id: None if discord_id is None else str(discord_id)
    if salt is None:
        raise ValueError("a salt is needed for pseudonymous ids")

    # Bounded: memory must not grow with the number of users of a huge export.
    @lru_cache(maxsize=65536)
    def mapped(discord_id: int | None) -> str | None:
        return None if discord_id is None else pseudonym(salt, discord_id)

    return mapped
