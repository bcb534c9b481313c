"""The ``scoregate`` command: serve, migrate, keys create, sync run, worker."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.api_keys import service as api_keys
from app.config import get_settings
from app.db import create_db_engine, migrate, session_factory
from app.logs import configure_logging
from app.main import create_app
from app.models import Role, SyncRun, SyncRunState
from app.runtime import Runtime
from app.sync_runs import service as sync_runs

__all__ = ["main"]

cli = typer.Typer(
    help="scoregate: the fair gateway between score APIs and CRMs.", no_args_is_help=True
)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(keys, name="keys")
sync = typer.Typer(help="Sync runs between CRMs and scoregate.", no_args_is_help=True)
cli.add_typer(sync, name="sync")


@cli.command("migrate")
def migrate_command() -> None:
    """Upgrade the database to the newest schema."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    typer.echo("database migrated to the newest schema")


@keys.command("create")
def create_key(
    role: Annotated[Role, typer.Option(help="read < sync < admin")] = Role.READ,
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "cli",
) -> None:
    """Create an API key and print it once (it is stored only as a hash)."""
    settings = get_settings()
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    with session_factory(engine)() as session:
        created = api_keys.create_key(session, role=role, name=name, actor="scoregate keys create")
    engine.dispose()
    typer.echo(f"{created.role.value} key {created.id} ({created.name}): {created.secret}")
    typer.echo("store it now: it is not shown again")


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Migrate, create the first admin key on an empty database, and serve the API."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    runtime.start()
    with runtime.sessions() as session:
        created = api_keys.bootstrap_admin_key(session)
    if created is not None:
        typer.echo(f"first admin key (shown once, store it now): {created.secret}")
    if runtime.sandbox is not None:
        typer.echo(
            f"sandbox: Klout emulator at {runtime.sandbox.klout_url}, "
            f"Twitter emulator at {runtime.sandbox.twitter_url}"
        )
    try:
        uvicorn.run(create_app(runtime=runtime), host=host, port=port, log_level="warning")
    finally:
        runtime.close()


@sync.command("run")
def sync_run(
    connector: Annotated[str, typer.Argument(help="a connector configured under [connectors]")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="compute and report, write nothing")
    ] = False,
) -> None:
    """Run one sync of CONNECTOR in this process, with a progress bar; exit 1 if it fails."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    # this process runs its own run; it does not take queued ones
    settings = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"worker": False})}
    )
    runtime = Runtime(settings)
    runtime.start()
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, transient=False) as bar:
            label = f"sync {connector}" + (" (dry run)" if dry_run else "")
            task = bar.add_task(label, total=None, detail="starting")

            def show(run: SyncRun) -> None:
                bar.update(
                    task,
                    completed=run.read,
                    detail=(
                        f"read {run.read}, skipped {run.skipped}, written {run.written}, "
                        f"errors {run.errors}, batches {run.batches}"
                    ),
                )

            run = sync_runs.run_now(
                runtime, connector, dry_run=dry_run, actor="scoregate sync run", progress=show
            )
    finally:
        runtime.close()
    counts = ", ".join(f"{status} {n}" for status, n in sorted(run.counts.items())) or "none"
    typer.echo(f"run {run.id}: {run.state}; statuses: {counts}")
    if run.state != SyncRunState.SUCCEEDED:
        typer.echo(f"failed: {run.message}", err=True)
        raise typer.Exit(code=1)


@cli.command("worker")
def worker() -> None:
    """Work queued sync runs, webhook events and erasures until interrupted (no HTTP)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    settings = settings.model_copy(
        update={"sync": settings.sync.model_copy(update={"worker": True})}
    )
    runtime = Runtime(settings)
    stop = threading.Event()

    def _stop(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime.start()
    typer.echo(f"worker running ({len(runtime.workers)} threads); Ctrl-C stops it")
    try:
        stop.wait()
    finally:
        runtime.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
