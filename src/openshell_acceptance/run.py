"""What one run of the suite shares across scenarios, and how it is torn down."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from . import bridge, leftovers
from .deployment import Deployment
from .image import ensure_sandbox_image
from .podman import (
    MANAGED_LABEL,
    NETWORK_PREFIX,
    OWNER_LABEL,
    RUN_LABEL,
    PodmanService,
    owner_id,
)
from .targets import Target, select_target


class SuiteRun:
    """The Podman service, sandbox image, network and target of one run."""

    def __init__(
        self,
        userdata: Mapping[str, str],
        *,
        log: Callable[[str], None] = print,
    ) -> None:
        self.userdata = dict(userdata)
        self.log = log
        self.id = uuid.uuid4().hex
        self.root = Path(tempfile.mkdtemp(prefix=leftovers.ROOT_PREFIX))
        leftovers.claim_root(self.root, self.id)
        self.network_name = f"{NETWORK_PREFIX}{self.id[:12]}"
        self.podman: PodmanService | None = None
        self.target: Target | None = None
        self.anchor: bridge.Anchor | None = None
        self._scenarios = 0

    def start(self) -> SuiteRun:
        """Bring up Podman, the image and the network; raise PreflightError if not."""
        target = select_target(self.userdata)
        stale = leftovers.stale_runs(self.root.parent, keep=lambda run: run == self.id)
        ended = leftovers.end_processes(p for run in stale for p in run.processes)
        self.podman = PodmanService(self.root / "podman", log=self.log).start()
        removed = self.podman.remove_leftovers(current_run=self.id)
        for run in stale:
            leftovers.remove_root(run.root)
        if stale or removed:
            self._log_leftovers(stale, ended, removed)
        for parameter, image in target.named_images:
            self.podman.ensure_image_present(image, named_by=parameter)
        if target.sandbox_image is None:
            target = target.with_sandbox_image(
                ensure_sandbox_image(self.podman, log=self.log)
            )
        self.target = target
        self.podman.create_network(
            self.network_name,
            labels={MANAGED_LABEL: "true", RUN_LABEL: self.id, OWNER_LABEL: owner_id()},
        )
        assert target.sandbox_image is not None
        self.anchor = bridge.anchor_network(
            self.podman,
            self.network_name,
            image=target.sandbox_image,
            name=f"{self.network_name}-anchor",
            labels={RUN_LABEL: self.id, OWNER_LABEL: owner_id()},
        )
        return self

    def deployment(self) -> Deployment:
        """A fresh working directory and deployment for the next scenario."""
        assert self.podman is not None and self.target is not None
        self._scenarios += 1
        workdir = self.root / f"scenario-{self._scenarios:03d}"
        workdir.mkdir(mode=0o700)
        return Deployment(
            target=self.target,
            podman=self.podman,
            workdir=workdir,
            network_name=self.network_name,
            run_id=self.id,
        )

    def close(self) -> None:
        """Remove everything this run created, whatever state it is in.

        Each part is attempted even when an earlier one fails or is
        interrupted; the first failure is raised at the end. A process that
        still names the run's directory on its command line (one that a
        cut-short cleanup did not reach) is ended before the directory goes.
        """
        podman = self.podman
        steps: list[Callable[[], object]] = []
        if podman is not None:
            steps += [
                lambda: podman.remove_containers(label=f"{RUN_LABEL}={self.id}"),
                lambda: podman.remove_containers(network=self.network_name),
                lambda: podman.remove_network(self.network_name),
            ]
            steps.append(podman.stop)
        steps.append(
            lambda: leftovers.end_processes(leftovers.marked_processes(self.root))
        )
        steps.append(lambda: leftovers.remove_root(self.root))
        failures: list[BaseException] = []
        for step in steps:
            try:
                step()
            except BaseException as exc:  # the later parts still run, then raise
                failures.append(exc)
        if failures:
            raise failures[0]

    def _log_leftovers(
        self,
        stale: list[leftovers.StaleRun],
        ended: list[leftovers.MarkedProcess],
        removed: list[str],
    ) -> None:
        parts = [*removed, *(p.describe() for p in ended)]
        parts += [f"directory {run.root}" for run in stale]
        self.log(f"leftovers of killed runs removed: {', '.join(parts)}")
