"""The documentation: its examples run as written, and its site builds with no warning.

Each page's code blocks run in order, in one namespace, from an empty folder of their own
(``tests/docs_examples.py`` says how); a block that needs a cluster host, or that the
tests cannot run as it stands, says so in a comment before it and is counted, not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.docs_examples import Block, blocks

from superparams._cli._options import OPTIONS

ROOT = Path(__file__).parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES = [page for page in PAGES if "_build" not in page.parts]
IGNORED = shutil.ignore_patterns("progress", "__pycache__")


def examples() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


class TestExamples:
    @pytest.mark.slow
    @pytest.mark.parametrize(
        "page", [p for p in PAGES if any(not b.skip for b in blocks(p))], ids=page_id
    )
    def test_each_page_s_examples_run_as_written(self, page, tmp_path):
        """Every unmarked code block of the page runs, and every doctest prints what it shows."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "docs_examples.py"), str(page)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "SUPERPARAMS_PROGRESS": ""},
        )
        assert done.returncode == 0, done.stderr

    def test_a_block_not_run_says_why(self):
        """A block is left out only for a cluster host, or with a reason of a few words."""
        for block in examples():
            if block.skip and block.skip.startswith("not run: "):
                assert len(block.skip.split()) >= 5, f"{block.name}: {block.skip!r} says too little"
                assert "\n" not in block.skip, f"{block.name}: {block.skip!r} is not one comment"
            elif block.skip:
                assert block.skip == "needs a cluster host", f"{block.name}: {block.skip!r}"

    def test_the_examples_are_found(self):
        """The reader of the pages finds their code: the guide's, the README's, the engines'."""
        found = {(block.page.name, block.language, bool(block.skip)) for block in examples()}
        assert ("README.md", "python", False) in found
        assert ("guide.md", "python", False) in found
        assert ("slurm.md", "bash", True) in found

    @pytest.mark.slow
    def test_the_quick_start_runs_the_example(self, tmp_path):
        """The README's first command, run from a copy of examples/, runs both settings."""
        readme = (ROOT / "README.md").read_text()
        command = next(b for b in blocks(ROOT / "README.md") if "cd examples" in b.text).text
        assert command.strip().endswith("../.venv/bin/experiment params.Hyperparams --num_proc 2")
        assert "experiment params.Hyperparams --num_proc 2" in readme
        shutil.copytree(ROOT / "examples", tmp_path, dirs_exist_ok=True, ignore=IGNORED)
        args = command.strip().rsplit("../.venv/bin/experiment ", 1)[1].split()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("experiment")), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "2 completed, 0 failed" in done.stderr + done.stdout


class TestOptions:
    def test_the_pages_name_every_option_as_help_spells_it(self):
        """Each option of the command's table is named in the manual under the spelling
        --help gives it, so an option added to the command is added to the manual."""
        text = "\n".join(page.read_text() for page in PAGES)
        spellings = [option.spelling or option.names[0] for option in OPTIONS]
        unnamed = [
            n for n in spellings if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)
        ]
        assert unnamed == []


def build(out: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    """Build the site into ``out`` with every warning an error, as .ci/run does."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("sphinx", reason="the docs extra is not installed")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    return subprocess.run(
        [*prefix, *command, str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )


class TestTheSite:
    @pytest.mark.slow
    def test_builds_with_no_warning(self, tmp_path):
        """sphinx-build -W builds a page of the site for every page of docs/."""
        done = build(tmp_path)
        assert done.returncode == 0, done.stderr
        built = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
        for page in PAGES:
            if page.parent != ROOT:
                assert page.relative_to(ROOT / "docs").with_suffix(".html").as_posix() in built

    @pytest.mark.slow
    def test_builds_with_no_network(self, tmp_path):
        """The site builds in a network namespace of its own, where no address can be reached."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            if os.environ.get("CI") == "true":
                pytest.fail("CI runs as root, with unshare: this test must run there")
            pytest.skip("needs root and unshare to take the network away")
        done = build(tmp_path, "unshare", "--net")
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "index.html").is_file()
