"""A reference OpenShell gateway with a Podman driver and a sandbox supervisor.

It follows the Podman mTLS contract so that the acceptance suite runs without
building OpenShell. Run it as ``openshell-reference-gateway``.
"""

from __future__ import annotations

from . import errors
from .errors import *  # noqa: F403 - every error, as errors.__all__ lists them

__version__ = "0.1.0"

__all__ = ["__version__"]
__all__ += errors.__all__
