"""One process at a time in a run directory: a lock file naming its holder.

Two processes writing one run directory mix their files (a second run with
`--overwrite` rewrote `config.json` and emptied `history.csv` under a run still
training; a `--resume` into a running run failed on a file the first one had
just replaced, issue 21). `RunLock(run_dir)` takes `<run_dir>/.run.lock` with
`fcntl.flock` before the run directory is read or changed, and writes the
holder into it (pid, host, start time, command). A second process finds the
lock taken and is refused with `RunLockedError` naming the holder.

The operating system releases a `flock` when its process dies, however it dies
(SIGKILL included), so a lock file left by a killed process is stale by
construction: the next process takes the lock and replaces the holder record.
Two processes racing for a stale lock cannot both win: `flock` gives it to one.
The file is removed on release; a process that took the lock on a file another
one was removing checks that its file is still the one at the path, else
tries again.

`flock` locks are local to a machine on some network file systems (older NFS):
there, run one process per run directory yourself. Windows has no `flock`:
runs there are not locked.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

from kdkeras.training.checkpoints import RunDirError

try:
    import fcntl
except ImportError:   # Windows: no flock; runs there are not locked
    fcntl = None

LOCK_FILE = ".run.lock"


class RunLockedError(RunDirError):
    """Another live process holds the run directory's lock."""


def holder_record() -> dict:
    """Who this process is, as the lock file records it."""
    return {"pid": os.getpid(), "host": platform.node(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}


def describe_holder(record: dict) -> str:
    if not record:
        return "another process (it has not written its name yet)"
    return (f"process {record.get('pid', '?')} on host {record.get('host', '?')}, started "
            f"{record.get('started', '?')} ({record.get('command', '?')})")


def read_holder(run_dir) -> dict:
    """The holder recorded in `run_dir`'s lock file, or {}."""
    try:
        record = json.loads((Path(run_dir) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class RunLock:
    """Holds `<run_dir>/.run.lock` from `acquire()` (or `with`) until `release()`.

    Re-entrant within one process: a run that trains its teachers in
    sub-directories takes their locks too, and taking the same directory's
    lock twice in one process (e.g. `train_model` inside `distill_model`)
    succeeds without a second file handle.
    """

    _held: dict = {}   # resolved run_dir -> (RunLock, depth), this process's locks

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd = None

    def acquire(self) -> "RunLock":
        key = str(self.run_dir.resolve())
        if key in RunLock._held:
            owner, depth = RunLock._held[key]
            RunLock._held[key] = (owner, depth + 1)
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLockedError(
                    f"{self.run_dir} is in use by {describe_holder(read_holder(self.run_dir))}. "
                    "Wait for it to finish or stop it, or choose another --workdir. (A lock "
                    "left by a process that died is released by the system and taken over "
                    "without a word.)") from None
            # The holder we replaced may have removed the file between our open and
            # our lock: then our lock is on a file no one else will open. Retry.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder_record()) + "\n").encode())
        self._fd = fd
        RunLock._held[key] = (self, 1)
        return self

    def release(self) -> None:
        key = str(self.run_dir.resolve())
        owner, depth = RunLock._held.get(key, (None, 0))
        if owner is None:
            return
        if depth > 1:
            RunLock._held[key] = (owner, depth - 1)
            return
        del RunLock._held[key]
        fd, owner._fd = owner._fd, None
        if fd is None:
            return
        try:
            owner.path.unlink(missing_ok=True)   # still ours: we hold the lock
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
