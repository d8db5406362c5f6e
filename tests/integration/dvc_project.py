"""Helpers for tests that drive real DVC and git on a copy of the repository in a temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import REPO, TINY_SAMPLE

BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    """The Makefile's offline, in-tree settings, with the venv's `pipeline` and `dvc` on PATH."""
    out = dict(os.environ)
    out.update({
        "PATH": f"{BIN}{os.pathsep}{out.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    })
    return out


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_repo(dest: Path, *, params: dict | None = None) -> Path:
    """A git + DVC checkout of this repository's tracked files (tiny sample params), committed."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    data = yaml.safe_load((dest / "params.yaml").read_text())
    data["make_sample"].update(TINY_SAMPLE)
    for section, values in (params or {}).items():
        data[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (dest / ".dvc" / "config.local").unlink(missing_ok=True)
    run(["git", "init", "-q"], dest)
    run(["dvc", "config", "--local", "core.site_cache_dir", str(dest / ".cache" / "dvc-site")], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "test project"], dest)
    return dest


def repro(cwd: Path, *targets: str) -> str:
    return run(["dvc", "repro", *targets], cwd).stdout


def kill_when(cmd: list[str], cwd: Path, ready, timeout: float = 120.0) -> None:
    """Start `cmd` in its own process group and SIGKILL the whole group as soon as `ready()` is true."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"{' '.join(cmd)} finished before it could be killed")
            if time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(cmd)}: condition not reached in {timeout} s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def complete_groups(store: Path) -> list[str]:
    """Sequence groups marked complete, read from the files (no zarr import, safe while a writer runs)."""
    import json

    done = []
    for meta in sorted(store.glob("*/zarr.json")):
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except ValueError:
            continue
        if attrs.get("complete") is True:
            done.append(meta.parent.name)
    return done
