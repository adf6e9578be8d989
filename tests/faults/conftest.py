"""Shared fixtures of the fault tests."""

from __future__ import annotations

import subprocess
import uuid

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs of the given size (``tmpfs("256k")``); skipped where mounting is not allowed."""
    mounts = []

    def mount(size: str):
        folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)
