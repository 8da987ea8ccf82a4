"""A setting's log in a results folder, written by the run alone, and kept to a size.

Workers never open these files. An engine whose workers share this machine copies what
a setting prints from the worker's own file into its :class:`SettingLog` while the
setting runs (the file system does the copying, so a large log never passes through
Python); an engine whose workers are elsewhere hands the text back in the outcome, and
the store writes it. Either way the file is opened by the run, never through a link:
by its name in the ``logs/`` folder the run holds open, so a ``logs/`` swapped for a link
during the run is never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time

from superparams._logsize import cut, log_limit

# Opened for reading and writing (cut to the limit in place), never through a link
# planted in its place; not O_APPEND, which the kernel's copies refuse: the run is the
# only writer.
_FLAGS = os.O_RDWR | os.O_CREAT


class SettingLog:
    """One attempt's log file, opened on the first byte written to it.

    Writing never raises: a setting must not fail because its log could not be written
    mid-way. What went wrong is kept in :attr:`error`, for the store to record.
    """

    __slots__ = ("attempt", "error", "fd", "folder", "path", "size")

    def __init__(self, path: str, attempt: int, folder: int | None = None) -> None:
        self.path = path
        self.attempt = attempt
        self.folder = folder  # a descriptor of the folder holding it: opened in there
        self.fd: int | None = None
        self.error: OSError | None = None
        self.size = 0  # where the file ends

    def fileno(self) -> int:
        """The file's descriptor, opening it now if it is not yet.

        Raises:
            OSError: it could not be opened (a link in its place, say).
        """
        if self.fd is not None:
            return self.fd
        if self.error is not None:
            raise self.error
        from superparams._store._layout import open_in_store

        path = self.path if self.folder is None else os.path.basename(self.path)
        try:
            fd = open_in_store(path, _FLAGS, 0o644, dir_fd=self.folder, shown=self.path)
        except OSError as error:
            self.error = error
            raise
        self.fd = fd
        self.size = os.lseek(fd, 0, os.SEEK_END)
        if self.attempt > 1 or self.size:  # a retry, or an earlier run's log
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.write(f"\n----- attempt {self.attempt}, {stamp} -----\n".encode())
        return fd

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        if not data:
            return
        try:
            fd = self.fileno()
            while data:
                written = os.write(fd, data)
                self.size += written
                data = data[written:]
        except OSError as error:
            self.error = self.error or error

    def copy(self, source: int, offset: int, count: int) -> int:
        """Append ``count`` bytes of file ``source`` from ``offset``, copied by the kernel;
        how many were copied (fewer if the source is shorter)."""
        try:
            fd = self.fileno()
        except OSError:
            return 0
        done = 0
        try:
            while done < count:
                copied = _copy(source, fd, offset + done, count - done)
                if not copied:
                    break
                done += copied
        except OSError as error:
            self.error = self.error or error
        self.size += done
        return done

    def close(self) -> bool:
        """Cut the file to :func:`log_limit` and close it; whether this attempt wrote
        anything to it (one that printed nothing leaves an earlier run's log as it is)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return False
        try:
            limit = log_limit()
            if limit and self.size > limit:
                with contextlib.suppress(OSError):  # a log kept whole is no failure
                    self.size = cut(fd, self.size, limit)
        finally:
            os.close(fd)
        return self.size > 0


# Whether the kernel copies between these two kinds of file: cleared at the first refusal.
_COPY_FILE_RANGE = hasattr(os, "copy_file_range")
_CHUNK = 1 << 20  # what a copy without copy_file_range reads at a time


def _copy(source: int, target: int, offset: int, count: int) -> int:
    """Copy up to ``count`` bytes of ``source`` from ``offset`` to where ``target`` is."""
    global _COPY_FILE_RANGE
    count = min(count, 1 << 30)
    if _COPY_FILE_RANGE:
        try:
            return os.copy_file_range(source, target, count, offset)
        except OSError as error:  # another file system, an old kernel
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            _COPY_FILE_RANGE = False
    try:
        return os.sendfile(target, source, offset, count)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    data = os.pread(source, min(count, _CHUNK), offset)
    return os.write(target, data) if data else 0
