"""Schema migrations (Alembic): whoever opens the records database brings it to the newest
revision first, so an upgraded service keeps the data an older version stored.

- An empty database gets every revision in order (`migrations/versions/`).
- A database created before migrations existed (its tables made from the models, no
  `alembic_version` table) is stamped with `BASELINE`, the schema such databases have, then
  upgraded.
- The API, workers and CLI may start together: SQLite upgrades under a file lock beside the
  database file, PostgreSQL under a transaction-level advisory lock.

A change to the models needs a new revision (`feedback-ai db revision -m "..."` writes one from
the difference); `tests/records/test_migrations.py` fails while the models and the migrated
schema differ.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the schema of databases created before migrations existed
VERSION_TABLE = "alembic_version"  # Alembic's default
_PG_LOCK = 0x66_61_69_31  # "fai1": the advisory lock key upgrades hold on PostgreSQL


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for this package's migrations, on `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:  # read directly: a MigrationContext logs on every open
        if VERSION_TABLE not in inspect(conn).get_table_names():
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the database to `head()`, in one transaction (see the module docstring)."""
    if current(engine) == head():
        return  # the common case: one read, no lock
    with _file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        cfg = config(conn)
        tables = set(inspect(conn).get_table_names())
        if tables and VERSION_TABLE not in tables:
            log.info("records: stamping a database made before migrations as %s", BASELINE)
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with FileLock(database + ".migrate.lock"):
        yield
