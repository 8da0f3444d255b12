"""A fresh PostgreSQL database per test, on the real server.

The server's URL is `KLING_TEST_POSTGRES` (default: the `kling` superuser on 127.0.0.1:5432,
database `kling_test`, which `.ci/run` creates); each test gets its own database, created
through it and dropped afterwards (its connections terminated first). With `CI` set an
unreachable server fails the test; elsewhere it skips, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_URL = "postgresql://kling:kling@127.0.0.1:5432/kling_test"


def server_url() -> str:
    return os.environ.get("KLING_TEST_POSTGRES", DEFAULT_URL)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    url = server_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {url.rsplit('@', 1)[-1]} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: these tests must run)")
        pytest.skip("SKIPPED LOUDLY — " + message + "; start it (.ci/run does) or set "
                    "KLING_TEST_POSTGRES")


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new empty database, dropped when the block ends."""
    name = f"kb_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_url())
    params["dbname"] = name
    try:
        yield make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    finally:
        with _admin() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "datname = %s AND pid <> pg_backend_pid()", (name,))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def url_form(conninfo: str) -> str:
    """The database as a postgresql:// URL (what `--ledger` takes)."""
    p = conninfo_to_dict(conninfo)
    return (f"postgresql://{p.get('user', '')}:{p.get('password', '')}@{p.get('host')}:"
            f"{p.get('port', 5432)}/{p['dbname']}")
