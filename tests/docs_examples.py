"""The code examples of the README and of docs/, read from their pages and run as written.

``blocks(page)`` reads a page's fenced blocks. Code (``python``, ``bash`` and their
aliases) runs unless the comment just before its fence says why not: ``<!-- needs:
cluster -->`` for a block that needs a cluster host, ``<!-- not run: REASON -->`` for
one the tests cannot run as it stands (a synopsis, an install). Blocks with no language
(a folder's layout) and directives (``{toctree}``) are not code.

``python tests/docs_examples.py PAGE``, from an empty folder, runs the page's examples in
order, in one namespace, as a user would in that folder:

* a python block that starts with a file's name (``# experiments/params.py``) is that
  file: it is written there, imported as a module, and its names join the namespace;
* any other python block runs in the namespace, as a script's ``__main__`` (so its
  experiments travel to worker processes by value, and store beside the page's script);
* a block of ``>>>`` lines is a doctest in the namespace: what it shows must be printed;
* a bash block's lines are ``experiment ...`` commands, run by bash from the folder with
  the real command first on the ``PATH``, each of which must exit with 0; any other
  command needs the block marked.

It exits with 1 at the first example that fails, saying which and why.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

# A block in one of these languages is code: it runs, or says why not.
LANGUAGES = {"python": "python", "py": "python", "pycon": "python"}
LANGUAGES |= dict.fromkeys(("bash", "sh", "shell", "console"), "bash")
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!--\s*(needs|not run):\s*((?:(?!-->).)*?)\s*-->\s*\Z", re.DOTALL)
FILE = re.compile(r"\A# ([\w./-]+\.py)\n")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, its text, its line, and why it is not run."""

    page: Path
    language: str
    text: str
    line: int
    skip: str | None  # None: the block runs

    @property
    def name(self) -> str:
        return f"{self.page.name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The page's code blocks, in order (blocks that are not code are left out)."""
    source = page.read_text()
    found = []
    for match in FENCE.finditer(source):
        language = LANGUAGES.get(match.group(1))
        if language is None:
            continue
        mark = MARK.search(source, 0, match.start())
        skip = None
        if mark and not source[mark.end() : match.start()].strip():
            kind, reason = mark.groups()
            skip = f"needs a {reason} host" if kind == "needs" else f"not run: {reason}"
        line = source.count("\n", 0, match.start()) + 2  # the block's first line
        found.append(Block(page, language, match.group(2), line, skip))
    return found


def run_page(page: Path, folder: Path) -> None:
    """Run the page's examples in order, from ``folder``; raise AssertionError at a failure."""
    script = folder / f"{page.stem.replace('-', '_')}_examples.py"
    namespace = types.ModuleType("__main__")
    namespace.__file__ = str(script)
    sys.modules["__main__"] = namespace
    sources: list[str] = []
    for block in blocks(page):
        if block.skip:
            continue
        where = f"{page}:{block.line}"
        if block.language == "bash":
            run_commands(block, folder, where)
        elif block.text.lstrip().startswith(">>>"):
            run_doctest(block, vars(namespace), where)
        elif name := FILE.match(block.text):
            write_module(folder / name.group(1), block.text, namespace)
        else:
            sources.append(block.text)
            script.write_text("\n".join(sources))  # the source a class's code is read from
            start = sum(text.count("\n") for text in sources[:-1]) + len(sources) - 1
            code = compile("\n" * start + block.text, str(script), "exec")
            try:
                exec(code, vars(namespace))
            except Exception as error:
                raise AssertionError(f"{where}: the example raised {error!r}") from error


def write_module(path: Path, text: str, namespace: types.ModuleType) -> None:
    """Write the file the block shows, import it, and put its names in the namespace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules.pop(path.stem, None)
    module = importlib.import_module(path.stem)
    vars(namespace).update({k: v for k, v in vars(module).items() if not k.startswith("_")})


def run_doctest(block: Block, namespace: dict[str, object], where: str) -> None:
    """Run the block's ``>>>`` lines in the namespace; what they print must be what it shows."""
    test = doctest.DocTestParser().get_doctest(
        block.text, namespace, where, str(block.page), block.line - 1
    )
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert not runner.failures, f"{where}: the doctest failed\n" + "".join(report)


def run_commands(block: Block, folder: Path, where: str) -> None:
    """Run each line of a bash block with the real ``experiment`` command, from ``folder``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "experiment", (
            f"{where}: {line!r} is not an `experiment` command the tests can run; "
            "mark the block with <!-- not run: why --> or <!-- needs: cluster -->"
        )
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=folder,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{where}: {line!r} exited {done.returncode}\n{done.stderr}"


if __name__ == "__main__":
    try:
        run_page(Path(sys.argv[1]).resolve(), Path.cwd())
    except AssertionError as failure:
        print(failure, file=sys.stderr)
        sys.exit(1)
