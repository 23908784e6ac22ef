"""The Typer application and what every command group shares: the consoles, the settings."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from movieflix_lab.config import Settings, get_settings
from movieflix_lab.exceptions import ConfigError
from movieflix_lab.logs import configure_logging

console = Console()
err_console = Console(stderr=True)


#: Set by the root callback; read by :func:`main` when an error reaches it.
cli_options = {"debug": False}


app = typer.Typer(
    help="MovieFlix Lab: streaming analytics and ML research on MovieFlix's Kafka events.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
broker_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft, one node).", no_args_is_help=True
)
topics_app = typer.Typer(help="The topic catalog on the cluster.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
eval_app = typer.Typer(help="Score models and detectors against labels.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Fit models and save them as versions.", no_args_is_help=True)
app.add_typer(train_app, name="train")
import_app = typer.Typer(help="Bring public datasets in.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors, and the log from INFO up.")
    ] = False,
) -> None:
    cli_options["debug"] = debug
    configure_logging(debug=debug, console=err_console)


def settings() -> Settings:
    """The process settings; an invalid environment variable becomes a one-line error."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MOVIEFLIX_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None
