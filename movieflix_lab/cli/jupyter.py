"""``movieflix-lab lab``: JupyterLab on the notebooks folder with the movieflix-lab kernel."""

from __future__ import annotations

from typing import Annotated

import typer

from movieflix_lab.cli.app import (
    app,
    console,
    settings,
)
from movieflix_lab.exceptions import MovieflixError


@app.command("lab")
def lab(
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port (0: a free one).")] = 8888,
    ip: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open a web browser on it.")
    ] = False,
) -> None:
    """JupyterLab on notebooks/, the movieflix-lab kernel the default, until Ctrl-C."""
    from movieflix_lab.jobs.jupyter import run_lab

    def ready(url: str) -> None:
        console.print(f"JupyterLab: {url}", highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops it", highlight=False)

    code = run_lab(settings(), port=port, ip=ip, browser=browser, on_ready=ready)
    if code != 0:
        raise MovieflixError(f"JupyterLab exited with code {code} (its messages are above)")
    console.print("JupyterLab stopped")
