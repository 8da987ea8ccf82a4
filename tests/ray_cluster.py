"""A real two-node Ray cluster for tests, in a network namespace with only loopback.

Ray advertises the machine's network address even when told ``--node-ip-address
127.0.0.1``, so the cluster, the ``experiment`` commands that drive it and any local
Ray they start all run inside one network namespace that has nothing but loopback: no
test traffic leaves the machine. The namespace is held open by one process; a command
enters it with ``nsenter``. The cluster's own processes run in a PID namespace of
their own as well (so ``ray stop --force`` there sees only them, never another Ray on
the machine, and when the holding process ends the kernel ends every one of them,
whatever a test did); a driver enters the network namespace alone, so that it is the
child the test signals. Ray's session files go to a temporary folder of the cluster's.

Needs root (``unshare``); elsewhere the fixtures skip, saying so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import superparams

RAY = Path(sys.executable).with_name("ray")
ADDRESS = "127.0.0.1:6380"

# Ray turns on token authentication by default; a test cluster on loopback needs none.
# Its processes import the superparams under test, and none of the experiment's own files.
SOURCE = str(Path(superparams.__file__).parents[1])
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": SOURCE}

HOLD = "ip link set lo up && exec sleep 1d"


@dataclass
class Namespace:
    """A network and PID namespace with only loopback, open while ``holder`` runs."""

    holder: subprocess.Popen[bytes]
    init: int  # the namespace's first process, as this machine's PID namespace knows it
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, **ENV})

    @property
    def prefix(self) -> list[str]:
        """What runs a command in the namespace's network (the command's PID is its own)."""
        return ["nsenter", "-t", str(self.init), "--net", "--"]

    def run(self, *command: str, log: Path, timeout: float = 120) -> None:
        """Run a command wholly inside, its processes in the namespace's PID namespace."""
        inside = ["nsenter", "-t", str(self.init), "--net", "--pid", "--mount", "--"]
        with open(log, "a") as out:
            subprocess.run(
                [*inside, *command],
                env=self.env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=True,
            )

    def members(self) -> list[int]:
        """The processes in the namespace's network, but the two that hold it open."""
        mine = os.readlink(f"/proc/{self.init}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) not in (self.init, self.holder.pid):
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "ns/net") == mine:
                        found.append(int(entry.name))
        return found

    def close(self) -> None:
        """End every process in the namespace: its PID namespace's, and drivers left."""
        left = self.members()
        self.holder.kill()  # unshare --kill-child: the PID namespace goes with it
        self.holder.wait()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def open_namespace() -> Namespace:
    """A fresh namespace; skips the test where one cannot be made (not root)."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("the Ray tests need root, unshare and nsenter (a namespace of their own)")
    holder = subprocess.Popen(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", HOLD],
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # a killed test run leaves no cluster
    )
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
        init = children.read_text().split() if children.exists() else []
        if init and _holding(int(init[0])):
            return Namespace(holder, int(init[0]))
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            pytest.skip(f"could not make a namespace for Ray (unshare exit {holder.poll()})")
        time.sleep(0.02)


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _holding(pid: int) -> bool:
    """The namespace's first process is ready: loopback is up, and it sleeps."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    except OSError:
        return False


@dataclass
class Cluster:
    """A running two-node cluster: where it is, and the namespace to drive it from."""

    namespace: Namespace
    address: str
    log: Path


def start_cluster(folder: Path) -> Iterator[Cluster]:
    """A head and a worker node of one CPU each, in a namespace; stopped at the end."""
    namespace = open_namespace()
    log = folder / "ray.log"
    # Ray's sockets live in its session folder: a short path, under the limit of 107.
    sessions = tempfile.mkdtemp(prefix="sp-ray-")
    try:
        head = ["--head", "--port", ADDRESS.rpartition(":")[2], "--temp-dir", sessions]
        node = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
        namespace.run(str(RAY), "start", *head, "--include-dashboard=false", *node, log=log)
        namespace.run(str(RAY), "start", "--address", ADDRESS, *node, log=log)
        namespace.run(sys.executable, "-c", WAIT_FOR_NODES, log=log)
        yield Cluster(namespace, ADDRESS, log)
    finally:
        try:
            namespace.run(str(RAY), "stop", "--force", log=log, timeout=60)
        finally:
            namespace.close()
            shutil.rmtree(sessions, ignore_errors=True)


# Run inside the namespace: wait until both nodes have joined.
WAIT_FOR_NODES = f"""
import time, ray
ray.init(address={ADDRESS!r}, log_to_driver=False)
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.monotonic() < deadline, ray.nodes()
    time.sleep(0.1)
"""
