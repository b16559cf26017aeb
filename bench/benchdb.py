"""A throwaway PostgreSQL database for a benchmark run, shared by the bench scripts."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def create(url: str, name: str) -> str:
    """Create database ``name`` (dropping any left from a crashed run) on ``url``'s server,
    point DATABASE_URL at it, and return the admin DSN that ``drop`` needs."""
    import psycopg

    url = url.replace("pgsql://", "postgres://", 1)
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    os.environ["DATABASE_URL"] = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    return admin


def drop(admin: str, name: str) -> None:
    """Close Django's connections and drop the database."""
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def skip(reason: str) -> None:
    """End a benchmark that cannot run on the services available, without failing
    ``make bench`` (which runs every benchmark on whatever is there)."""
    import json
    import sys

    print(f"skipped: {reason}")
    print(
        json.dumps({"bench": sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py"), "skipped": reason})
    )
    sys.exit(0)
