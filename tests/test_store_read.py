"""The store's lock-free reader: the rows recorded since a position of the record.

Made with a real run into a results folder; the reader is what ``experiment view``
follows a run with, so it must neither lock, cut nor write anything.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

from superparams._api import store_of
from superparams._store._lock import held
from superparams._store._read import Follower, reader

TRAIN = """
from superparams import Experiment, search

class Train(Experiment):
    lr: float = search(0.1, 0.01)

    def run(self):
        for epoch in range(3):
            self.report(epoch=epoch, loss=self.lr / (1 + epoch))
        return {"acc": 1 - self.lr}
"""

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def run(workspace, folder: Path):
    space = workspace.load("train", TRAIN).Train()
    space.run_all(display=False, folder=folder)
    return space


class TestFollower:
    def test_the_first_poll_has_every_setting_then_only_what_is_new(self, workspace, tmp_path):
        """From the record's start, a poll gives each setting's rows (3 reported, 1
        returned); the next poll, with nothing written since, gives nothing."""
        folder = tmp_path / "out"
        space = run(workspace, folder)
        follower = Follower(reader(store_of(space, folder)))
        follower.position = 0
        rows, replaced = follower.poll()
        assert not replaced
        assert sorted(rows) == sorted(s.id for s in space)
        for found in rows.values():
            assert [r.get("epoch") for r in found] == [0, 1, 2, None]
            assert {r["status"] for r in found} == {"completed"}
        assert follower.poll() == ({}, False)

    def test_a_second_run_shows_as_new_rows(self, workspace, tmp_path):
        """A follower that read a finished store sees a fresh run's rows, and only the
        settings it ran, the rows of each replaced (not added to the earlier ones)."""
        folder = tmp_path / "out"
        space = run(workspace, folder)
        follower = Follower(reader(store_of(space, folder)))
        follower.poll()
        first = next(iter(space))
        first.run_all(display=False, folder=folder, fresh=True)
        rows, _ = follower.poll()
        assert list(rows) == [first.id]
        assert len(rows[first.id]) == 4

    def test_a_torn_tail_is_left_as_it_is(self, workspace, tmp_path):
        """A line without its newline is not read, nor cut: the record is unchanged."""
        folder = tmp_path / "out"
        space = run(workspace, folder)
        record = folder / "record.jsonl"
        with open(record, "ab") as f:
            f.write(b'{"event":"started","id":"x","att')
        before = record.read_bytes()
        follower = Follower(reader(store_of(space, folder)))
        follower.poll()
        assert follower.poll() == ({}, False)
        assert record.read_bytes() == before
        assert held(folder) is False

    def test_a_record_cut_short_asks_for_a_fresh_read(self, workspace, tmp_path):
        """A record shorter than the position read says so, rather than reading garbage."""
        folder = tmp_path / "out"
        space = run(workspace, folder)
        follower = Follower(reader(store_of(space, folder)))
        follower.poll()
        (folder / "record.jsonl").write_bytes(b"")
        assert follower.poll() == ({}, True)


class TestHeld:
    def test_a_run_holding_the_lock_is_seen_without_taking_it(self, workspace, tmp_path):
        """held() is True while another process holds the lock, False once it let go;
        the lock it reads is never taken by the reader (an exclusive flock by a third
        party still succeeds at once after the holder leaves)."""
        folder = tmp_path / "out"
        run(workspace, folder)
        lock = folder / "lock"
        assert held(folder) is False
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(lock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        try:
            assert held(folder) is True
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(10)
            holder.stdout.close()
        deadline = time.monotonic() + 5
        while held(folder) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held(folder) is False
        with open(lock) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
