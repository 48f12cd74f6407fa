"""What can go wrong while the suite drives a gateway and its sandboxes."""

from __future__ import annotations


class AcceptanceError(Exception):
    """Base class: something the suite could not do, said in one line."""


# Before any scenario runs


class PreflightError(AcceptanceError):
    """The host or the parameters cannot run the suite; the message names the fix."""


class ParameterError(PreflightError):
    """A ``-D name=value`` parameter is missing or wrong."""


# The gateway process


class GatewayError(AcceptanceError):
    """The gateway did not do what the scenario needed."""


class GatewayExited(GatewayError):
    """The gateway process ended while it was expected to serve."""

    def __init__(self, message: str, *, returncode: int, output: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class GatewayNotHealthy(GatewayError):
    """The gateway kept running but its health endpoint never answered."""


# Sandboxes


class SandboxError(AcceptanceError):
    """A sandbox did not reach the state the scenario needed."""


class SandboxNotReady(SandboxError):
    """A sandbox never became ready; the message carries the cause seen."""
