"""Schema migrations of the records database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from feedback_ai.config import Settings
from feedback_ai.records import Records, migrate
from feedback_ai.records.models import Base
from tests.records.test_records import _pg_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path).resolved_database_url
        return
    gen = _pg_schema()
    yield next(gen)
    next(gen, None)


def test_a_new_database_is_migrated_to_the_models(url: str) -> None:
    """Every revision applied in order gives exactly the schema the models describe: a model
    change without its migration fails here."""
    records = Records(url)
    assert migrate.current(records.engine) == migrate.head()
    with records.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    records.engine.dispose()


def test_a_database_made_before_migrations_keeps_its_data(url: str) -> None:
    """Tables an older version created from its models (the baseline schema) and no
    alembic_version: stamped as the baseline, upgraded, and what was stored is still there."""
    engine = create_engine(url)
    with engine.begin() as conn:  # the schema those versions made: the baseline, unversioned
        command.upgrade(migrate.config(conn), migrate.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
        stamp = {"t": datetime(2026, 1, 1, tzinfo=UTC)}
        conn.execute(text("INSERT INTO workspaces (id, created_at) VALUES ('old', :t)"), stamp)
    assert migrate.current(engine) is None
    records = Records(url)
    assert migrate.current(records.engine) == migrate.head()
    key = records.create_key("old", ["read"])
    principal = records.authenticate(key)
    assert principal is not None and principal.workspace == "old"
    with records.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workspaces WHERE id = 'old'")).scalar() == 1
    records.engine.dispose()
    engine.dispose()


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    """API, workers and CLI may open a new database at once: each open succeeds and the schema is
    created once (the upgrade runs under a lock beside the SQLite file). Before, four threads
    failed at once ("table workspaces already exists" from concurrent `create_all`), and then
    now and again with "database is locked" (the WAL switch meeting a writer)."""
    url = Settings(data_dir=tmp_path).resolved_database_url
    errors: list[BaseException] = []

    def open_records() -> None:
        try:
            Records(url).engine.dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_records) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            migrate.head()
        ]
    assert "items" in inspect(engine).get_table_names()
    engine.dispose()
