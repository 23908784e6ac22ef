"""The project's own files agree with each other: packaging, conda env, Makefile, README."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

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


#: What each part of ``movieflix_lab/`` never imports (README "Architecture"): imports run
#: down the layers contracts/config → kafka, ML cores, sinks, simulate → streams, serve,
#: lab, reports → jobs → cli; nobody imports the jobs but the CLI, nobody imports the CLI.
ABOVE_ALL = {"jobs", "cli", "__main__"}
NEVER_IMPORTS = {
    "logs": {"config", "events", "kafka", "simulate", "streams", "fraud", "recs", "sinks",
             "serve", "lab", "reports"},
    "config": {"events", "kafka", "simulate", "streams", "fraud", "recs", "sinks", "serve",
               "lab", "reports"},
    "events": {"kafka", "simulate", "streams", "fraud", "recs", "sinks", "serve", "lab",
               "reports"},
    "kafka": {"simulate", "streams", "fraud", "recs", "sinks", "serve", "lab", "reports"},
    "simulate": {"streams", "fraud", "recs", "sinks", "serve", "lab", "reports"},
    "fraud": {"kafka", "simulate", "streams", "sinks", "serve", "lab", "reports"},
    "recs": {"kafka", "simulate", "streams", "sinks", "serve", "lab", "reports"},
    "sinks": {"simulate", "streams", "fraud", "recs", "serve", "lab", "reports"},
    "streams": {"serve", "lab", "reports"},
    "serve": {"streams", "lab", "reports"},
    "lab": {"serve"},
    "reports": {"streams", "serve"},
    "jobs": set(),
}  # fmt: skip


def _kit_imports(path: Path) -> set[str]:
    """The parts of the kit a module imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    parts = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "movieflix_lab" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


def test_imports_run_down_the_layers() -> None:
    package = PROJECT_ROOT / "movieflix_lab"
    wrong = []
    for path in sorted(package.rglob("*.py")):
        part = path.relative_to(package).parts[0].removesuffix(".py")
        if part in ("__init__", "exceptions", "provenance"):
            continue
        forbidden = NEVER_IMPORTS.get(part, set()) | (
            ABOVE_ALL - {part} if part != "cli" else set()
        )
        if part == "__main__":
            forbidden = set()
        found = _kit_imports(path) & forbidden
        if found:
            wrong.append(f"{path.relative_to(PROJECT_ROOT)} imports {sorted(found)}")
    assert not wrong, wrong
    assert set(NEVER_IMPORTS) | ABOVE_ALL >= {
        p.name.removesuffix(".py")
        for p in package.iterdir()
        if p.name not in ("__init__.py", "exceptions.py", "provenance.py", "py.typed", "schemas")
        and not p.name.startswith("__pycache__")
    }, "a new part of the package: add it to NEVER_IMPORTS"


def test_a_command_starts_without_building_the_iri_grammar_and_the_check_still_works() -> None:
    """``movieflix_lab`` defers ``rfc3987_syntax``'s Lark grammar (jsonschema imports it for
    one format check, through Quix Streams): a command's imports leave Lark out, and
    jsonschema's ``iri`` check, once asked, answers as the real module does."""
    probe = (
        "import sys, movieflix_lab.cli, movieflix_lab.streams.runner, quixstreams\n"
        "assert 'lark' not in sys.modules, 'the grammar was built at import'\n"
        "from jsonschema import FormatChecker\n"
        "checker = FormatChecker()\n"
        "print(checker.conforms('https://example.com/ü', 'iri'),"
        " checker.conforms('no iri ::', 'iri'), 'lark' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]
