"""Write environment.yml from pyproject.toml, so the two name the same packages.

python scripts/write_environment_yml.py        (or: make environment.yml)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
# Conda environment for MovieFlix Lab (conda-forge). Generated from pyproject.toml by
# scripts/write_environment_yml.py (make environment.yml); tests/test_project.py checks that
# the two agree.
#   conda env create -f environment.yml && conda activate movieflix-lab
# `make` targets use a plain .venv instead; both work.
name: movieflix-lab
channels:
  - conda-forge
dependencies:
  - python=3.11
  - openjdk=17
  - maven
  - pip
  - pip:
"""


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = ["      # runtime (pyproject [project.dependencies])"]
    lines += [f'      - "{spec}"' for spec in project["dependencies"]]
    lines += ["      # development (pyproject [project.optional-dependencies] dev)"]
    lines += [f'      - "{spec}"' for spec in project["optional-dependencies"]["dev"]]
    lines += ["      # the package itself, editable", "      - -e ."]
    (ROOT / "environment.yml").write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
