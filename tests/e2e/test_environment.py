"""The environment a setting ran in is on its row, and a change of it is a state of its
own: the `experiment` command.

The tests make a small package of their own, ``mylib``, as two wheels (1.0 and 2.0)
installed into two folders with pip; a run sees one or the other through PYTHONPATH,
as it would after ``pip install -U mylib``. The experiment imports it and returns a
number that depends on its version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import experiment, write

pytestmark = pytest.mark.slow

FIT = """
import mylib
from superparams import Experiment, search


class Fit(Experiment):
    lr: int = search(1, 2, 3)

    def run(self):
        return {"score": self.lr * float(mylib.__version__)}
"""

FOLDER = Path("progress/params/Fit")


def _wheel(folder: Path, version: str) -> Path:
    """A wheel of ``mylib`` at ``version``, made here (pip installs a wheel with no
    build backend)."""
    info = f"mylib-{version}.dist-info"
    files = {
        "mylib/__init__.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: mylib\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/top_level.txt": "mylib\n",
    }
    record = []
    for name, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{name},sha256={encoded},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = folder / f"mylib-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """mylib 1.0 and 2.0, each installed by pip into a folder of its own; for each, the
    environment a run needs to see it."""
    root = tmp_path_factory.mktemp("mylib")
    out = {}
    for version in ("1.0", "2.0"):
        target = root / f"v{version}"
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q"),
                *("--target", str(target), str(_wheel(root, version))),
            ],
            check=True,
        )
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(target)) if p)
        env = {"PYTHONPATH": path}
        seen = subprocess.run(
            [sys.executable, "-c", "import importlib.metadata as m; print(m.version('mylib'))"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert seen.stdout.strip() == version
        out[version] = env
    return out


@pytest.fixture
def project(tmp_path: Path, versions: dict[str, dict[str, str]]) -> Path:
    """Fit's lr 1 and 2 run with mylib 1.0; then, with 2.0 installed, lr 3."""
    write(tmp_path / "params.py", FIT)
    first = experiment("params", "--lr", "1,2", "-q", cwd=tmp_path, **versions["1.0"])
    assert first.returncode == 0, first.stderr
    then = experiment("params", "-q", cwd=tmp_path, **versions["2.0"])
    assert then.returncode == 0, then.stderr
    return tmp_path


def scores(project: Path) -> dict[int, float]:
    table = pl.read_parquet(project / FOLDER / "results.parquet")
    return dict(zip(table["lr"].to_list(), table["score"].to_list(), strict=True))


def environments(project: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = json.loads(
        (project / FOLDER / "environments.json").read_text()
    )
    return found


CHANGED = "2 settings ran with mylib 1.0, now 2.0"


class TestEnvironmentOnRows:
    def test_each_row_names_its_environment(self, project: Path) -> None:
        """results.parquet has a column `environment`; the settings run with mylib 1.0
        share one, the one run with 2.0 has another, and environments.json holds both
        with mylib's version."""
        table = pl.read_parquet(project / FOLDER / "results.parquet")
        by_lr = dict(zip(table["lr"].to_list(), table["environment"].to_list(), strict=True))
        assert by_lr[1] == by_lr[2] != by_lr[3]
        held = environments(project)
        assert held[by_lr[1]]["packages"] == {"mylib": "1.0"}  # type: ignore[comparison-overlap]
        assert held[by_lr[3]]["packages"] == {"mylib": "2.0"}  # type: ignore[comparison-overlap]
        python = ".".join(map(str, sys.version_info[:3]))
        assert held[by_lr[3]]["python"] == python

    def test_the_tools_own_packages_are_not_counted(self, project: Path) -> None:
        """What superparams imports in a local worker (cloudpickle) or in the driver
        (rich, polars) is not in the environment: only what the experiment imported."""
        for details in environments(project).values():
            assert set(details["packages"]) == {"mylib"}  # type: ignore[call-overload]

    @pytest.mark.parametrize("engine", ["inline", "dask"])
    def test_other_engines_count_the_experiments_imports_alone(
        self, tmp_path: Path, versions: dict[str, dict[str, str]], engine: str
    ) -> None:
        """With the inline engine the setting runs in the command's own process, which
        loaded rich and polars; on Dask, in a worker that loaded dask and distributed:
        the environment names mylib alone, as a local worker's does."""
        write(tmp_path / "params.py", FIT)
        done = experiment("params", "--engine", engine, "-q", cwd=tmp_path, **versions["1.0"])
        assert done.returncode == 0, done.stderr
        [details] = environments(tmp_path).values()
        assert details["packages"] == {"mylib": "1.0"}

    def test_the_record_names_each_environment_once(self, project: Path) -> None:
        """record.jsonl holds one environment line per distinct environment."""
        lines = (project / FOLDER / "record.jsonl").read_text().splitlines()
        found = [json.loads(line) for line in lines if '"event":"environment"' in line]
        assert len(found) == 2
        assert {line["id"] for line in found} == set(environments(project))


class TestOutdatedByEnvironment:
    def test_status_says_what_changed(
        self, project: Path, versions: dict[str, dict[str, str]]
    ) -> None:
        """`status` names the package, its version then and now, and how many settings."""
        done = experiment("status", "params", cwd=project, **versions["2.0"])
        assert done.returncode == 0, done.stderr
        assert CHANGED in done.stdout
        assert "--rerun-outdated=env" in done.stdout

    def test_run_and_dry_run_say_it_and_rerun_nothing(
        self, project: Path, versions: dict[str, dict[str, str]]
    ) -> None:
        """A plain run keeps the settings as stored, saying why; --dry-run says the same;
        --rerun-outdated alone (the code's) reruns none of them."""
        dry = experiment("params", "--dry-run", cwd=project, **versions["2.0"])
        assert dry.returncode == 0, dry.stderr
        assert CHANGED in dry.stderr
        for args in ((), ("--rerun-outdated",)):
            done = experiment("params", *args, cwd=project, **versions["2.0"])
            assert done.returncode == 0, done.stderr
            assert CHANGED in done.stderr
            assert scores(project) == {1: 1.0, 2: 2.0, 3: 6.0}

    def test_rerun_outdated_env_reruns_exactly_those(
        self, project: Path, versions: dict[str, dict[str, str]]
    ) -> None:
        """--rerun-outdated=env runs again the two settings made with mylib 1.0, and
        their new rows carry the environment of 2.0."""
        done = experiment("params", "--rerun-outdated=env", cwd=project, **versions["2.0"])
        assert done.returncode == 0, done.stderr
        assert "running 2 settings" in done.stderr
        assert scores(project) == {1: 2.0, 2: 4.0, 3: 6.0}
        table = pl.read_parquet(project / FOLDER / "results.parquet")
        assert table["environment"].n_unique() == 1
        assert environments(project)[table["environment"][0]]["packages"] == {"mylib": "2.0"}
        status = experiment("status", "params", cwd=project, **versions["2.0"])
        assert "ran with" not in status.stdout

    def test_rerun_outdated_all_takes_both_kinds(
        self, project: Path, versions: dict[str, dict[str, str]]
    ) -> None:
        """--rerun-outdated=all runs the settings made by earlier code and those made in
        another environment."""
        path = project / "params.py"
        path.write_text(path.read_text().replace("self.lr *", "10 * self.lr *"))
        done = experiment("params", "--rerun-outdated=all", cwd=project, **versions["2.0"])
        assert done.returncode == 0, done.stderr
        assert "running 3 settings" in done.stderr
        assert scores(project) == {1: 20.0, 2: 40.0, 3: 60.0}

    def test_the_same_from_python(self, project: Path, versions: dict[str, dict[str, str]]) -> None:
        """plan().env_outdated lists the settings; run_all(rerun_outdated="env") runs
        them again; a kind it does not know is a UsageError naming the choices."""
        code = (
            "import sys; sys.path.insert(0, '.')\n"
            "from params import Fit\n"
            "from superparams.errors import UsageError\n"
            "print(len(Fit().plan().env_outdated))\n"
            "try:\n"
            "    Fit().run_all(rerun_outdated='foo', display=False)\n"
            "except UsageError as error:\n"
            "    print(error)\n"
            "frame = Fit().run_all(rerun_outdated='env', display=False)\n"
            "print(sorted(frame['score'].to_list()), len(Fit().plan().env_outdated))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=project,
            env={**os.environ, **versions["2.0"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "2",
            "rerun_outdated takes True, False, 'code', 'env' or 'all', got 'foo'",
            "[2.0, 4.0, 6.0] 0",
        ]

    def test_a_bad_kind_is_a_usage_error(
        self, project: Path, versions: dict[str, dict[str, str]]
    ) -> None:
        """--rerun-outdated=foo exits 2 with one line naming the choices."""
        done = experiment("params", "--rerun-outdated=foo", cwd=project, **versions["2.0"])
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "error: --rerun-outdated takes code, env or all (alone: code), got 'foo'"
        ]
