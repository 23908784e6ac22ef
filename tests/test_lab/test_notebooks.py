"""The notebooks as a reviewer reads them: each paired with a py:percent script (jupytext)
that says the same, on the movieflix-lab kernel, committed without outputs, and linted."""

from __future__ import annotations

import subprocess
import sys

import jupytext
import nbformat
import pytest

from movieflix_lab.config import PROJECT_ROOT
from movieflix_lab.reports.kernel import KERNEL_NAME

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) == 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_paired_and_in_sync(path) -> None:  # type: ignore[no-untyped-def]
    script = path.with_suffix(".py")
    assert script.is_file(), f"{script.name} missing: run `jupytext --sync {path.name}`"
    notebook, paired = jupytext.read(path), jupytext.read(script)
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"

    def cells(nb):  # type: ignore[no-untyped-def]
        return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", [])))
                for c in nb.cells]  # fmt: skip

    assert cells(notebook) == cells(paired), (
        f"{path.name} and {script.name} differ: run `jupytext --sync notebooks/{script.name}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_committed_clean_on_the_kit_kernel(path) -> None:  # type: ignore[no-untyped-def]
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        f"{path.name} holds outputs: clear them before committing"
    )
    assert any("parameters" in c.metadata.get("tags", []) for c in code)
    headings = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert headings and all(not h.lstrip().startswith("md ") for h in headings)


def test_the_paired_scripts_pass_ruff() -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "notebooks"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
