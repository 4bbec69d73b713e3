"""Every example in examples/ is run here, with its own commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.lock import RunLock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def env(isolated_cache: Path) -> dict[str, str]:
    """The environment of a user who installed harken: its script on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HARKEN_CACHE_DIR": str(isolated_cache),
    }


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Real clips the default model labels right: music and speech."""
    root = tmp_path / "dataset"
    root.mkdir()
    for clip in sorted(EXAMPLES.glob("audio/*.ogg")):
        if clip.name.startswith(("music", "speech")):
            shutil.copy(clip, root / clip.name)
    return root


def shell(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cron_script(
    dataset: Path, tmp_path: Path, env: dict[str, str], isolated_cache: Path
) -> None:
    env = {
        **env,
        "ARCHIVE": str(dataset),
        "OUT_DIR": str(tmp_path / "out"),
        "LOG": str(tmp_path / "harken.log"),
    }
    done = shell(f"sh {EXAMPLES / 'cron.sh'}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    (output,) = (tmp_path / "out").glob("*.jsonl")
    assert len(output.read_text().splitlines()) == 6
    log = (tmp_path / "harken.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 6 files in", log, re.M), log
    time.sleep(1.1)  # outputs are named by the second
    done = shell(f"sh {EXAMPLES / 'cron.sh'}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    # The second run of a day writes a file of its own: the first's results stay.
    assert len(output.read_text().splitlines()) == 6
    (second,) = set((tmp_path / "out").glob("*.jsonl")) - {output}
    assert second.read_text() == ""  # nothing new
    with RunLock(str(isolated_cache)):  # a run still going: the next one steps aside
        done = shell(f"sh {EXAMPLES / 'cron.sh'}", cwd=tmp_path, env=env)
    assert done.returncode == 75
    assert "previous run still going" in (tmp_path / "harken.log").read_text()


def test_systemd_service(dataset: Path, tmp_path: Path, env: dict[str, str]) -> None:
    service = (EXAMPLES / "harken-scan.service").read_text()
    timer = (EXAMPLES / "harken-scan.timer").read_text()
    assert "OnCalendar=" in timer and "WantedBy=timers.target" in timer
    command = re.search(r"^ExecStart=(.*)$", service, re.M)
    assert command is not None
    run = (
        command[1]
        .replace("/srv/recordings", str(dataset))
        .replace("/var/lib/harken/latest.jsonl", str(tmp_path / "latest.jsonl"))
    )
    done = shell(run, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "latest.jsonl").read_text().splitlines()) == 6


def test_github_actions_workflow(dataset: Path, tmp_path: Path, env: dict[str, str]) -> None:
    workflow = (EXAMPLES / "github-actions.yml").read_text()
    command = re.search(r"- run: (harken scan .*)$", workflow, re.M)
    assert command is not None
    shell("harken scan dataset/ -q -o labels.jsonl", cwd=tmp_path, env=env)  # last time's
    done = shell(command[1], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "harken-junit.xml").exists() and (tmp_path / "labels.new.jsonl").exists()
    shutil.copy(EXAMPLES / "audio" / "noise-openarena-data.ogg", dataset / "new-noise.ogg")
    done = shell(command[1], cwd=tmp_path, env=env)
    assert done.returncode == 1  # a noise file, and a change against the baseline
    assert "new-noise.ogg" in done.stderr


def test_gitlab_ci_job(dataset: Path, tmp_path: Path, env: dict[str, str]) -> None:
    job = (EXAMPLES / "gitlab-ci.yml").read_text()
    command = re.search(r"^\s+- (harken scan .*)$", job, re.M)
    assert command is not None
    done = shell(command[1], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "<testsuites" in (tmp_path / "harken-junit.xml").read_text()


def test_pre_commit_hook(dataset: Path, tmp_path: Path, env: dict[str, str]) -> None:
    config = (EXAMPLES / "pre-commit-config.yaml").read_text()
    entry = re.search(r"entry: (.*)$", config, re.M)
    pattern = re.search(r"files: '(.*)'$", config, re.M)
    assert entry is not None and pattern is not None
    staged = [p for p in sorted(dataset.iterdir()) if re.search(pattern[1], p.name)]
    assert len(staged) == 6
    done = shell(f"{entry[1]} {' '.join(map(str, staged))}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    quiet = shutil.copy(EXAMPLES / "audio" / "silence-nexuiz-music.ogg", dataset / "quiet.ogg")
    done = shell(f"{entry[1]} {quiet}", cwd=tmp_path, env=env)
    assert done.returncode == 1 and "quiet.ogg" in done.stderr


def test_python_api_script(dataset: Path, tmp_path: Path, env: dict[str, str]) -> None:
    done = shell(f"{sys.executable} {EXAMPLES / 'api.py'} {dataset}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "{'music': 3, 'speech': 3}" in done.stdout
