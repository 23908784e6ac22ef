"""``movieflix-lab kafka-tool NAME ARGS…``: Kafka's own tools with the kit's cluster settings."""

from __future__ import annotations

from typing import Annotated

import typer

from movieflix_lab.cli.app import app, console, settings
from movieflix_lab.kafka.tools import TOOLS

_NAMES = "\n\n".join(f"{name}: {tool.about}" for name, tool in TOOLS.items())


@app.command(
    "kafka-tool",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                      "help_option_names": []},
    short_help="Run Kafka's own tools (consumer-groups, transactions, dump-log, topics, …) with "
    "the kit's bootstrap address.",
    help="Run one of Kafka's tools with the kit's bootstrap address: kafka-tool NAME ARGS… "
    "(NAME --help for the tool's own help). The tools:\n\n" + _NAMES,
)  # fmt: skip
def kafka_tool(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="The tool (see above).")] = None,
) -> None:
    from movieflix_lab.kafka.tools import run_tool

    if name is None or name in ("--help", "-h"):
        console.print(ctx.get_help(), highlight=False)
        raise typer.Exit(0 if name else 2)
    done = run_tool(settings(), name, list(ctx.args))
    raise typer.Exit(done.returncode)
