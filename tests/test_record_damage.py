"""A damaged record is read, never a crash: garbage lines among intact ones are skipped
and counted, and every intact outcome is still read, before and after compaction.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superparams._api import store_of
from superparams._identity import setting_id
from superparams._store._writer import Store

FIELDS = ("x",)


def intact(x: int) -> list[bytes]:
    """The started and outcome lines a run writes for setting x."""
    sid = setting_id({"x": str(x)})
    about = {"label": f"x={x}", "params": {"x": x}, "enc": {"x": str(x)}}
    started = {"event": "started", "id": sid, "attempt": 1, "worker": 0, **about}
    outcome = {
        "event": "outcome",
        "id": sid,
        "status": "completed",
        "attempt": 1,
        "started": 1_700_000_000.0 + x,
        "seconds": 0.5,
        "worker": 0,
        "log": None,
        "rows": [{"y": x * 10}],
        **about,
    }
    return [json.dumps(started).encode() + b"\n", json.dumps(outcome).encode() + b"\n"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
# Keys of the lines the store writes; "x" is left out of encodings, so no garbage line
# is ever the intact line of a real setting.
KEYS = [
    "id",
    "attempt",
    "worker",
    "label",
    "params",
    "enc",
    "status",
    "started",
    "seconds",
    "log",
    "rows",
    "cause",
    "error",
    "traceback",
    "code_version",
    "git_commit",
    "git_dirty",
    "keyed",
]
shaped = st.fixed_dictionaries(
    {"event": st.sampled_from(["outcome", "started", "other", 5])},
    optional={
        **dict.fromkeys(KEYS, json_values),
        "enc": st.dictionaries(st.text(max_size=3).filter(lambda k: k != "x"), json_values),
        "rows": st.lists(json_values, max_size=3),
        "params": st.dictionaries(st.sampled_from(["x", "y", "z"]), json_values, max_size=2),
    },
)
garbage_line = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.binary(min_size=1, max_size=20).map(lambda b: b"\0" * 64 + b.replace(b"\n", b"")),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()),
)


def y_of(value: Any) -> float:
    """y as a number, whether the table holds it as a number or as text."""
    return float(value)


class TestGarbageAmongIntactLines:
    @settings(
        max_examples=int(os.environ.get("DAMAGE_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        xs=st.lists(st.integers(0, 50), min_size=1, max_size=6, unique=True),
        garbage=st.lists(st.tuples(st.integers(0, 100), garbage_line), min_size=1, max_size=6),
    )
    def test_every_intact_outcome_is_read(self, xs, garbage):
        """Reading never crashes, and each intact outcome line is read, before and after
        the record is compacted into results.parquet."""
        lines = [line for x in xs for line in intact(x)]
        for at, raw in garbage:
            lines.insert(at % (len(lines) + 1), raw + b"\n")
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "record.jsonl").write_bytes(b"".join(lines))
            store = Store(folder, FIELDS)
            for _ in ("read", "compacted"):
                table = store.table()
                rows = {r["id"]: r for r in table.to_dicts()}
                for x in xs:
                    row = rows[setting_id({"x": str(x)})]
                    assert row["status"] == "completed"
                    assert y_of(row["y"]) == x * 10
                assert store.damaged() <= len(garbage)
                with store:  # compacts into results.parquet
                    pass


EPOCHS = """
from superparams import Experiment, derived, search


class Inner(Experiment):
    w: int = search(1, 2)


class Epochs(Experiment):
    model: Inner = search(Inner())
    x: int = search(1, 2, 3)
    tags: list = [1, 2]
    twice: int = derived(lambda s: s.x * 2)

    def run(self):
        if self.x == 3:
            raise ValueError("three")
        return [{"epoch": e, "loss": 1.0 / (e + 1), "nested": {"a": e}} for e in range(3)]
"""


class TestRestoredOutcomes:
    def test_the_table_is_the_same_after_the_record_is_emptied(self, workspace):
        """Outcomes written to an emptied record again come back as they were stored:
        several rows each, nested and derived columns, failures with their errors."""
        import polars as pl
        from polars.testing import assert_frame_equal

        module = workspace.load("epochs", EPOCHS)
        module.Epochs().run_all()
        folder = workspace.folder("epochs", "Epochs")
        before = pl.read_parquet(folder / "results.parquet")
        (folder / "record.jsonl").write_bytes(b"")
        store = store_of(module.Epochs())
        with store:
            pass
        assert store.restored == 6
        (folder / "results.parquet").unlink()  # the record alone holds them all
        after = module.Epochs().results().drop("outdated")  # worked out when read
        order = ["id", "epoch"]
        assert_frame_equal(before.sort(order), after.sort(order))


class TestAFlippedBitInTheRecordsStart:
    """A bit flipped in the record's first 4 KiB, which results.parquet holds a hash of,
    costs nothing: the stored value wins over the damaged line, before and after the next
    run, and after results.parquet is gone; the damage is counted."""

    @settings(max_examples=int(os.environ.get("DAMAGE_EXAMPLES", "60")), deadline=None)
    @given(where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
    def test_the_stored_value_wins(self, where, bit):
        """Whichever bit of the start is flipped, every setting reads as it was stored."""
        xs = range(1, 9)
        with tempfile.TemporaryDirectory() as folder:
            record = Path(folder, "record.jsonl")
            record.write_bytes(b"".join(line for x in xs for line in intact(x)))
            store = Store(folder, FIELDS)
            with store:  # compacts into results.parquet
                pass
            data = bytearray(record.read_bytes())
            at = int(where * min(4096, len(data)))
            data[at] ^= 1 << bit
            record.write_bytes(bytes(data))

            def check() -> None:
                rows = {r["id"]: r for r in store.table().to_dicts()}
                for x in xs:
                    row = rows[setting_id({"x": str(x)})]
                    assert (row["status"], y_of(row["y"])) == ("completed", x * 10), (at, bit)

            check()
            assert store.damaged() >= 1
            with store:  # the next run
                pass
            check()
            # counted; or, the record's last newline flipped, cut as a torn line and
            # its outcome written again, which the run says
            assert store.damaged() >= 1 or store.restored == 1
            Path(folder, "results.parquet").unlink()  # the record alone
            check()
