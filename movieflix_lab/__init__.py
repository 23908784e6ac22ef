"""MovieFlix Lab: streaming analytics and ML research kit for MovieFlix's Kafka events."""

import contextlib
import importlib
import importlib.util
import sys
import types
import warnings
from typing import Any

# quixstreams imports authlib's httpx integration, which warns on import about its own
# rename (not actionable for users of this kit). authlib installs an "always" filter for its
# warnings when imported, so import it first and put ours in front of it.
with contextlib.suppress(ImportError):
    import authlib.deprecate  # noqa: F401
warnings.filterwarnings("ignore", message="The httpx module is deprecated")


def _defer_rfc3987_grammar() -> None:
    """Let ``rfc3987_syntax`` build its grammar when it is first used, not when imported.

    Quix Streams imports confluent-kafka's schema-registry client, which imports jsonschema,
    which imports ``rfc3987_syntax.is_valid_syntax`` for its ``iri`` format check; that
    module compiles a Lark grammar as it is imported: about three seconds of every
    ``movieflix-lab`` command's and stream app's start on these 2-core machines, for a check
    the kit never makes. A stand-in module hands jsonschema a function of the same name that
    imports the real module on its first call and answers as it does, so the check still
    works wherever it is asked for (``tests/test_project.py``: a command imports no Lark).
    """
    name = "rfc3987_syntax"
    if name in sys.modules or importlib.util.find_spec(name) is None:
        return
    stand_in = types.ModuleType(name)

    def is_valid_syntax(term: str, value: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        stand_in.is_valid_syntax = real.is_valid_syntax  # type: ignore[attr-defined]
        return real.is_valid_syntax(term, value)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[name] = stand_in


_defer_rfc3987_grammar()

__all__ = ["__version__"]

__version__ = "0.1.0"
