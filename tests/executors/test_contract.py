"""What every engine must do, checked on each one: the contract of the executor seam.

The contract's tests live in :class:`superparams.executors.testing.ExecutorContract`, so
an engine of another package runs the same ones; here each built-in engine runs them
with one subclass (``inline``: this process; ``local``: worker processes; ``dask``: a
local Dask cluster made for the run; ``ray``: a real two-node Ray cluster, see
tests/ray_cluster.py; ``slurm``: the Slurm cluster ``sinfo`` answers, see tests/slurm.py).
A new engine adds its subclass and must pass them all.
"""

from __future__ import annotations

import json

import pytest
from tests.slurm import need_slurm

from superparams.executors.testing import EngineUnderTest, ExecutorContract

pytestmark = pytest.mark.slow


class TestInline(ExecutorContract):
    @pytest.fixture
    def engine(self) -> EngineUnderTest:
        return EngineUnderTest("inline")


class TestLocal(ExecutorContract):
    @pytest.fixture
    def engine(self) -> EngineUnderTest:
        return EngineUnderTest("local")


class TestDask(ExecutorContract):
    @pytest.fixture
    def engine(self) -> EngineUnderTest:
        return EngineUnderTest("dask", streams=False)  # rows come with the outcome


class RayEngine(EngineUnderTest):
    """Ray's workers keep their own environment: Ray's job configuration carries it."""

    def environment(self, **settings: str) -> dict[str, str]:
        env = super().environment(**settings)
        if settings:
            job = {"runtime_env": {"env_vars": settings}}
            env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps(job)
        return env


class TestRay(ExecutorContract):
    @pytest.fixture
    def engine(self, ray_cluster) -> EngineUnderTest:
        """Run inside the cluster's namespace, on the cluster."""
        env = {**ray_cluster.namespace.env, "RAY_ADDRESS": ray_cluster.address}
        prefix = tuple(ray_cluster.namespace.prefix)
        return RayEngine("ray", prefix=prefix, env=env, streams=False)  # rows come at the end


class TestSlurm(ExecutorContract):
    @pytest.fixture
    def engine(self) -> EngineUnderTest:
        need_slurm()
        # Each array task is a process of its own: 3 settings to a job, 2 jobs.
        return EngineUnderTest("slurm", options=("--engine-option", "per_job=3"))
