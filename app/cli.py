"""The ``scoregate`` command: serve, migrate, keys create."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from app.api_keys import service as api_keys
from app.config import get_settings
from app.db import create_db_engine, migrate, session_factory
from app.logs import configure_logging
from app.main import create_app
from app.models import Role
from app.runtime import Runtime

__all__ = ["main"]

cli = typer.Typer(
    help="scoregate: the fair gateway between score APIs and CRMs.", no_args_is_help=True
)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(keys, name="keys")


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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
