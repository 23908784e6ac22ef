"""MovieFlix Lab: streaming analytics and ML research kit for MovieFlix's Kafka events."""

import contextlib
import warnings

# quixstreams imports authlib's httpx integration, which warns on import about its own
# rename (not actionable for users of this kit). authlib installs an "always" filter for its
# warnings when imported, so import it first and put ours in front of it.
with contextlib.suppress(ImportError):
    import authlib.deprecate  # noqa: F401
warnings.filterwarnings("ignore", message="The httpx module is deprecated")

__all__ = ["__version__"]

__version__ = "0.1.0"
