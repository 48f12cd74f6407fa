"""Every error the reference gateway raises, in one small hierarchy.

The command line turns a ``GatewayError`` into one ``error:`` line: exit code 2
while the gateway is starting (nothing is listening yet), 1 once it runs.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigFileError",
    "ContainerError",
    "DriverError",
    "GatewayError",
    "ImageUnavailableError",
    "ListenError",
    "NetworkError",
    "PartialGuestTLSError",
    "PartialPKIError",
    "PKIError",
    "PodmanUnavailableError",
    "TLSMaterialError",
    "UnknownKeyError",
    "UnsupportedVersionError",
]


class GatewayError(Exception):
    """Base class for every error of the reference gateway."""


# Configuration: flags, environment variables and the TOML file.


class ConfigError(GatewayError):
    """A flag, environment variable or TOML key has a value the gateway refuses."""


class ConfigFileError(ConfigError):
    """The TOML configuration file cannot be read or parsed."""


class UnknownKeyError(ConfigError):
    """The TOML configuration file holds a key the gateway does not know."""


class UnsupportedVersionError(ConfigError):
    """The TOML configuration file declares a version the gateway does not know."""


class PartialGuestTLSError(ConfigError):
    """One or two of the three guest TLS paths are set, not all three."""


class TLSMaterialError(ConfigError):
    """A certificate or key file is missing, unreadable, malformed or mismatched."""


# Certificate generation.


class PKIError(GatewayError):
    """The ``generate-certs`` subcommand cannot write the PKI."""


class PartialPKIError(PKIError):
    """The output directory already holds some, but not all, of the PKI files."""


# Start-up.


class ListenError(GatewayError):
    """A listener cannot bind its address, usually because the port is in use."""


# The Podman driver.


class DriverError(GatewayError):
    """A Podman operation of the compute driver failed."""


class PodmanUnavailableError(DriverError):
    """The Podman API socket does not answer."""


class NetworkError(DriverError):
    """The sandbox network cannot be found, created or understood."""


class ImageUnavailableError(DriverError):
    """The sandbox image is not present and the pull policy forbids or fails a pull."""


class ContainerError(DriverError):
    """A sandbox container cannot be created, started, stopped or removed."""
