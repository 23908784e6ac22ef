"""The project's own files agree with each other: packaging, conda env, Makefile, README."""

import re
import subprocess
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from movieflix_lab.config import PROJECT_ROOT


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


def _requirements(specs: list[str]) -> dict[str, str]:
    parsed = [Requirement(spec) for spec in specs]
    return {canonicalize_name(r.name): str(r.specifier) for r in parsed}


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    project = _pyproject()
    declared = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_specs = [spec for spec in pip_section if not spec.startswith("-e")]

    assert _requirements(pip_specs) == declared, "regenerate it: make environment.yml"
    assert "python=3.11" in conda_pins
    assert "openjdk=17" in conda_pins
    assert "maven" in conda_pins
    assert "-e ." in pip_section, "regenerate it: make environment.yml"


def test_required_runtime_packages_are_declared() -> None:
    runtime = _requirements(_pyproject()["dependencies"])
    for name in (
        "quixstreams", "confluent-kafka", "pandas", "polars", "implicit", "river", "papermill",
        "altair", "vl-convert-python", "jupyterlab", "fastapi", "uvicorn", "typer", "rich",
    ):  # fmt: skip
        assert name in runtime, name
    assert runtime["quixstreams"] == "<3.29,>=3.28"


def test_kafka_pom_pins_4_3_1() -> None:
    pom = (PROJECT_ROOT / "kafka" / "pom.xml").read_text()
    assert "<kafka.version>4.3.1</kafka.version>" in pom
    assert "<artifactId>kafka_2.13</artifactId>" in pom


def test_make_help_lists_every_documented_target() -> None:
    out = subprocess.run(
        ["make", "-s", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    for target in ("demo", "test", "lab", "check", "setup", "kafka"):
        assert re.search(rf"make {target}\s+\S", out), out


def test_readme_gives_the_two_commands_and_ci_calls_make_test() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "MOVIEFLIX_KAFKA_BOOTSTRAP" in readme
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_layout() -> None:
    for folder in (
        "movieflix_lab",
        "notebooks",
        "data",
        "models",
        "reports",
        "tests",
        "benchmarks",
    ):
        assert (PROJECT_ROOT / folder).is_dir(), folder
    assert "raw/" in (PROJECT_ROOT / "data" / "README.md").read_text()
