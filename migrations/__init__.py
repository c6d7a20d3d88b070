"""Alembic environment and revisions; shipped inside the package so `oabot db upgrade` works installed."""
