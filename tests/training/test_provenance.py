"""Provenance: the commit a result names, inside and outside a git checkout."""

import subprocess
from pathlib import Path

from kdkeras.training.provenance import git_commit


def test_inside_this_checkout_it_is_head():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit().split("+")[0] == head


def test_outside_git_it_is_the_commit_the_wheel_was_built_from(tmp_path, monkeypatch):
    monkeypatch.setenv("KDKERAS_GIT_COMMIT", "c72e8544a680cf51d264e99028bf2e30e3b93ed5")
    assert git_commit(tmp_path) == "c72e8544a680cf51d264e99028bf2e30e3b93ed5"
    monkeypatch.delenv("KDKERAS_GIT_COMMIT")
    assert git_commit(tmp_path) == "unknown"
