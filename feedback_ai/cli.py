"""`feedback-ai`: serve, worker, ingest, search, themes, keys, requeue.

The server and worker commands import `api` / `workers` lazily; the rest runs the core library.
Options fall back to `FEEDBACK_AI_*` environment variables (see `Settings`).
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from feedback_ai.config import Mode, Settings


class WorkerPool(StrEnum):
    """Celery execution pools `feedback-ai worker` offers."""

    prefork = "prefork"
    threads = "threads"
    solo = "solo"


app = typer.Typer(help="feedback_ai: feedback intelligence.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
themes_app = typer.Typer(help="Themes: refit, list.", no_args_is_help=True)
app.add_typer(themes_app, name="themes")
db_app = typer.Typer(help="The records database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the embedded store and database live.")
]
Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace to act in.")]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    settings = Settings(**values)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    data_dir: DataDir = None,
    auth: Annotated[
        bool | None, typer.Option("--auth/--no-auth", help="--no-auth: anyone is admin.")
    ] = None,
) -> None:
    """Run the HTTP API (embedded mode: the queue and the vector engine run in this process)."""
    import uvicorn

    from api.app import create_app

    settings = _settings(data_dir, host=host, port=port, auth=auth)
    console.print(f"feedback_ai {settings.mode} mode, data in {settings.data_dir.resolve()}")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Pool processes (or threads).")] = 1,
    pool: Annotated[
        WorkerPool, typer.Option(help="prefork: a process per task slot; threads: one process.")
    ] = WorkerPool.prefork,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker (distributed mode) consuming ingest batches from the broker. Models
    load as it starts (in each pool process, or in the worker's own for threads and solo)."""
    from workers.celery_app import celery_app

    args = [f"--concurrency={concurrency}", f"--pool={pool.value}", f"--loglevel={loglevel}"]
    celery_app.worker_main(["worker", *args, "-Q", "feedback_ai"])


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSONL file.")],
    format: Annotated[str | None, typer.Option(help="csv or jsonl (default: from name).")] = None,
    mapping: Annotated[str | None, typer.Option(help="JSON field->column map.")] = None,
    source: Annotated[str | None, typer.Option(help="Source for rows without one.")] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
) -> None:
    """Ingest a file with a progress bar. Embedded mode processes it here (stop `serve` first:
    the embedded engine has one writer); distributed mode sends it to the Celery workers."""
    from feedback_ai.factory import bootstrap, build_service
    from feedback_ai.importers import guess_format, parse_mapping, read_rows

    settings = _settings(data_dir)
    service = build_service(settings)
    bootstrap(settings, service.records)
    batches: list[tuple[str, list[str]]] = []
    dispatch = _celery_dispatch() if settings.mode == Mode.distributed else None
    with file.open("rb") as fh:
        rows = read_rows(fh, guess_format(file.name, format), parse_mapping(mapping), source)
        result = service.submit_rows(
            workspace, rows, dispatch or (lambda job, ids: batches.append((job, ids)))
        )
    for err in result.rejected[:20]:
        console.print(f"[yellow]row {err.index}: {err.field or ''} {err.reason}")
    if len(result.rejected) > 20:
        console.print(f"[yellow]... and {len(result.rejected) - 20} more rejected rows")
    console.print(
        f"accepted {result.accepted}, rejected {len(result.rejected)}; job {result.job_id}"
    )
    if batches:
        _run_batches(service, batches, result.accepted)
        if service.themes is not None:
            service.themes.detect_emerging(workspace)
    service.close()
    if result.job_id is None:
        raise typer.Exit(1)


def _celery_dispatch() -> Any:
    from workers.dispatch import CeleryDispatcher

    return CeleryDispatcher()


def _run_batches(service: Any, batches: list[tuple[str, list[str]]], total: int) -> None:
    columns = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn())
    stored = failed = 0
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("embedding + storing", total=total)
        for job_id, ids in batches:
            counts = service.process(job_id, ids)
            stored, failed = stored + counts["stored"], failed + counts["failed"]
            progress.advance(task, len(ids))
    service.store.flush()
    console.print(f"stored {stored}, failed {failed}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="Number of items.")] = 5,
    source: Annotated[list[str] | None, typer.Option(help="Only these sources.")] = None,
    collapse: Annotated[bool, typer.Option(help="Fold near-duplicates.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
) -> None:
    """Semantic search of stored feedback (embedded data dir or the configured Qdrant)."""
    from feedback_ai.factory import build_service
    from feedback_ai.schemas import Filters, SearchRequest

    service = build_service(_settings(data_dir))
    filters = Filters(source=source) if source else None
    req = SearchRequest(query=query, k=k, filters=filters, collapse_duplicates=collapse)
    result = service.search(workspace, req)
    table = Table("score", "source", "created", "text", title=f"“{query}”")
    for hit in result.hits:
        dup = f" (+{hit.duplicate_count} similar)" if hit.duplicate_count else ""
        table.add_row(
            f"{hit.score:.3f}", hit.source, f"{hit.created_at:%Y-%m-%d}", hit.text[:160] + dup
        )
    Console().print(table)
    service.close()


@themes_app.command("refit")
def themes_refit(workspace: Workspace = "default", data_dir: DataDir = None) -> None:
    """Refit the workspace's themes over its stored mentions (embedded: here, with progress;
    distributed: queued for the Celery workers)."""
    from feedback_ai.factory import build_service

    settings = _settings(data_dir)
    service = build_service(settings)
    themes = service.themes
    assert themes is not None
    job_id = themes.start_refit(workspace)
    if settings.mode == Mode.distributed:
        _celery_dispatch().refit(job_id, workspace)
        console.print(f"refit queued: job {job_id} (GET /v1/jobs/{job_id})")
        return
    with Progress(*Progress.get_default_columns(), console=console) as progress:
        task = progress.add_task("refit", total=None)

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total or None)

        result = themes.run_refit(workspace, job_id, progress=report)
    service.close()
    run = themes.db.run(workspace, job_id)
    if run.state != "succeeded":
        console.print(f"[red]refit failed: {run.error}")
        raise typer.Exit(1)
    console.print(" ".join(f"{k}={v}" for k, v in result.items()))


@themes_app.command("list")
def themes_list(
    window: Annotated[str, typer.Option(help="'30d', '12w' or days.")] = "30d",
    sort: Annotated[str, typer.Option(help="volume|growth|accounts|revenue|rating|sentiment")] = (
        "volume"
    ),
    n: Annotated[int, typer.Option("-n", help="How many.")] = 20,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
) -> None:
    """Themes ranked over a window."""
    from feedback_ai.factory import build_service
    from feedback_ai.themes import read

    service = build_service(_settings(data_dir))
    assert service.themes is not None
    listing = read.themes(service.themes, workspace, window, sort, 0, n)
    table = Table("id", "items", "growth", "accounts", "label", title=f"themes, last {window}")
    for t in listing.themes:
        table.add_row(t.id, str(t.items), f"{t.growth:+.0%}", str(t.accounts), t.label)
    Console().print(table)
    service.close()


@keys_app.command("create")
def keys_create(
    workspace: Workspace = "default",
    scopes: Annotated[str, typer.Option(help="Comma-separated: ingest,read,admin")] = "ingest,read",
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key (printed once; only its hash is kept)."""
    from feedback_ai.records import Records

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        key = Records(settings.resolved_database_url).create_key(workspace, scopes.split(","), name)
    except ValueError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    sys.stdout.write(key + "\n")


def _database_url(data_dir: Path | None) -> str:
    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the SQLite default lives there
    return settings.resolved_database_url


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the records database to the newest schema (every process also does it on start)."""
    from sqlalchemy import create_engine

    from feedback_ai.records import migrate

    engine = create_engine(_database_url(data_dir))
    before = migrate.current(engine)
    migrate.upgrade(engine)
    console.print(f"records schema: {before or 'none'} -> {migrate.current(engine)}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the change is.")],
    data_dir: DataDir = None,
) -> None:
    """Write a new migration from the difference between the models and a database at the
    newest revision (for developers: review the generated file before committing it)."""
    from alembic import command
    from sqlalchemy import create_engine

    from feedback_ai.records import migrate

    engine = create_engine(_database_url(data_dir))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        command.revision(migrate.config(conn), message=message, autogenerate=True)


@app.command()
def requeue(older_than: Annotated[float, typer.Option(help="Seconds pending.")] = 900.0) -> None:
    """Distributed mode: re-send batches pending for long (e.g. after the broker lost them)."""
    from workers.tasks import requeue_pending

    _settings()
    console.print(f"re-sent {requeue_pending(older_than)} batches")


if __name__ == "__main__":
    app()
