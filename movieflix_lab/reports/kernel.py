"""The ``movieflix-lab`` Jupyter kernel: this environment's Python, installed into it once.

JupyterLab (``make lab``) opens notebooks on it and the report runner runs them with it, so
a notebook imports the same kit, from the same interpreter, in both.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

__all__ = ["DISPLAY_NAME", "KERNEL_NAME", "ensure_kernel"]

KERNEL_NAME = "movieflix-lab"
DISPLAY_NAME = "MovieFlix Lab"


def ensure_kernel(*, prefix: Path | None = None) -> str:
    """Install the ``movieflix-lab`` kernelspec into ``prefix`` (default ``sys.prefix``),
    unless one is there already that runs ``sys.executable``; returns the kernel's name."""
    root = Path(sys.prefix if prefix is None else prefix)
    spec = root / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    try:
        installed = json.loads(spec.read_text())
        if installed["argv"][0] == sys.executable and installed["display_name"] == DISPLAY_NAME:
            return KERNEL_NAME
    except (OSError, ValueError, LookupError, TypeError):
        pass  # missing or unreadable: install it
    from ipykernel.kernelspec import install

    try:
        install(kernel_name=KERNEL_NAME, display_name=DISPLAY_NAME, prefix=str(root))
    except PermissionError:
        if prefix is not None:
            raise
        install(kernel_name=KERNEL_NAME, display_name=DISPLAY_NAME, user=True)  # a shared env
    return KERNEL_NAME


def _ipc_manager() -> type:
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import CaselessStrEnum, default

    class LocalKernelManager(AsyncKernelManager):
        """A kernel spoken to over Unix sockets in the runtime folder, not localhost TCP:
        nothing else on the machine can reach it, and ipykernel has nothing to warn about."""

        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self) -> str:
            # Absolute, beside the connection file: the kernel runs in the notebooks folder,
            # the runner elsewhere, and both must name the same sockets.
            runtime = jupyter_runtime_dir()
            os.makedirs(runtime, mode=0o700, exist_ok=True)
            base = self.connection_file or os.path.join(runtime, f"kernel-{uuid.uuid4().hex}.json")
            return os.path.splitext(os.path.abspath(base))[0] + "-ipc"

    return LocalKernelManager


#: The kernel manager the report runner gives papermill (see :func:`_ipc_manager`).
LocalKernelManager = _ipc_manager() if sys.platform != "win32" else None
