"""A user's experiment file type-checks as users need: fields keep their types, calls are checked.

``user_experiment.py`` marks each line with what a checker must say about it. Both mypy
and pyright run; pyright fetches its node package on first use, and is skipped with the
reason when it cannot start.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api as mypy_api

USER_FILE = Path(__file__).with_name("user_experiment.py")
EXPECT = re.compile(r"\S  # (revealed|error): (.+)$")


def _expected() -> tuple[dict[int, str], dict[int, str]]:
    revealed, errors = {}, {}
    for number, line in enumerate(USER_FILE.read_text().splitlines(), start=1):
        found = EXPECT.search(line)
        if found and found[1] == "revealed":
            revealed[number] = found[2].strip()
        elif found:
            errors[number] = found[2].strip()
    return revealed, errors


def _short(type_text: str) -> str:
    """A type without module prefixes: 'superparams._space.Space[m.H]' -> 'Space[H]'."""
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", type_text)


def test_the_expectations_are_read():
    """The user file holds the reveal_type and error lines this test compares."""
    revealed, errors = _expected()
    assert len(revealed) >= 15
    assert len(errors) == 5


def test_mypy():
    """mypy --strict reveals the expected types and reports exactly the expected errors."""
    stdout, stderr, _ = mypy_api.run(
        [str(USER_FILE), "--strict", "--no-error-summary", "--hide-error-context"]
    )
    assert not stderr
    revealed, errors = {}, {}
    for line in stdout.splitlines():
        found = re.match(r".*?:(\d+): (note|error): (.*)$", line)
        assert found, line
        number, kind, message = int(found[1]), found[2], found[3]
        if kind == "note" and message.startswith("Called function defined in"):
            continue  # where a call's target lives, said beside an error on that call
        if kind == "note":
            shown = re.fullmatch(r'Revealed type is "(.*)"', message)
            assert shown, line
            revealed[number] = _short(shown[1])
        else:
            code = re.search(r"\[([\w-]+)\]$", message)
            assert code, line
            errors[number] = code[1]
    assert (revealed, errors) == _expected()


def _pyright() -> str:
    found = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which(
        "pyright"
    )
    if found is None:
        pytest.skip("pyright is not installed (pip install pyright); mypy is checked instead")
    try:
        subprocess.run([found, "--version"], capture_output=True, check=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as error:
        pytest.skip(f"pyright is installed but does not start: {error}")
    return found


def test_pyright():
    """pyright reveals the expected types and reports errors on exactly the expected lines."""
    pyright = _pyright()
    result = subprocess.run(
        [pyright, "--outputjson", "--pythonpath", sys.executable, str(USER_FILE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    revealed, error_lines = {}, set()
    for diagnostic in report["generalDiagnostics"]:
        number = diagnostic["range"]["start"]["line"] + 1
        if diagnostic["severity"] == "information":
            shown = re.fullmatch(r'Type of ".*" is "(.*)"', diagnostic["message"])
            assert shown, diagnostic
            revealed[number] = _short(shown[1])
        else:
            assert diagnostic["severity"] == "error", diagnostic
            error_lines.add(number)
    expected_revealed, expected_errors = _expected()
    assert revealed == expected_revealed
    assert error_lines == set(expected_errors)
