"""A reference OpenShell gateway with a Podman driver and a sandbox supervisor.

It follows the Podman mTLS contract so that the acceptance suite runs without
building OpenShell. Run it as ``openshell-reference-gateway``.
"""

from __future__ import annotations

from .errors import (
    ConfigError,
    ConfigFileError,
    ContainerError,
    DriverError,
    GatewayError,
    ImageUnavailableError,
    ListenError,
    NetworkError,
    PartialGuestTLSError,
    PartialPKIError,
    PKIError,
    PodmanUnavailableError,
    TLSMaterialError,
    UnknownKeyError,
    UnsupportedVersionError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConfigFileError",
    "ContainerError",
    "DriverError",
    "GatewayError",
    "ImageUnavailableError",
    "ListenError",
    "NetworkError",
    "PKIError",
    "PartialGuestTLSError",
    "PartialPKIError",
    "PodmanUnavailableError",
    "TLSMaterialError",
    "UnknownKeyError",
    "UnsupportedVersionError",
    "__version__",
]
