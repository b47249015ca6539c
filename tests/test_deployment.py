"""The deployment files: contrib/digestd.service and config.example.toml, as an operator
follows the unit's install steps on a fresh server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from processes import DEADLINE_SECONDS

from digestd.cli import cli
from digestd.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "digestd.service"
EXAMPLE = ROOT / "config.example.toml"
SERVER_URL_LINE = '# url = "sqlite:////var/lib/digestd/digestd.sqlite3"'


def unit_settings() -> dict[str, list[str]]:
    """The unit's `Key=value` lines (a key may repeat), comments left out."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def install_steps() -> list[str]:
    return [line.removeprefix("#").strip() for line in UNIT.read_text().splitlines() if line.startswith("#   ")]


def verify(unit: Path) -> list[str]:
    """What `systemd-analyze verify` says about `unit` (it exits 0 on mere warnings, such as
    an unknown key or a bad value, so these are read from its output)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (not a systemd system)")
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False
    )
    problems = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    return problems if problems or done.returncode == 0 else [f"exit code {done.returncode}: {done.stderr}"]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed, except for ExecStart's program: verify insists it exists, and
    /opt/digestd is not here, so the copy runs this checkout's own `digestd` script."""
    here = Path(sys.executable).with_name("digestd")
    assert here.exists(), f"{here} is missing: install digestd in this venv (pip install -e .)"
    text = UNIT.read_text()
    assert "ExecStart=/opt/digestd/bin/digestd run\n" in text and "UMask=0077\n" in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("ExecStart=/opt/digestd/bin/digestd ", f"ExecStart={here} "))
    assert verify(copy) == []
    copy.write_text(text.replace("UMask=0077", "UMask=0999"))  # what a mistake looks like
    assert any("UMask" in line or "mode" in line for line in verify(copy))


def test_the_unit_and_the_example_config_name_the_same_absolute_paths(tmp_path: Path) -> None:
    unit = unit_settings()
    (config_path,) = [value.split("=", 1)[1] for value in unit["Environment"] if value.startswith("DIGESTD_CONFIG=")]
    (data,) = unit["ReadWritePaths"]
    assert unit["WorkingDirectory"] == [data]
    assert unit["UMask"] == ["0077"]
    steps = install_steps()
    made = [i for i, step in enumerate(steps) if step.startswith("sudo install -d") and step.endswith(" /etc/digestd")]
    copied = [i for i, step in enumerate(steps) if step.endswith(f"config.example.toml {config_path}")]
    assert made and copied and made[0] < copied[0], "the config's folder is made before the config is copied there"
    assert any(step.startswith("sudo -u digestd ") and f"--config {config_path} init" in step for step in steps)
    assert SERVER_URL_LINE.removeprefix("# ") in " ".join(steps), "the steps say which line to uncomment"
    lines = EXAMPLE.read_text().splitlines()
    assert SERVER_URL_LINE in lines, "config.example.toml has the server's database line, commented"
    server_config = tmp_path / "digestd.toml"  # the example with that line uncommented
    server_config.write_text("\n".join(line.removeprefix("# ") if line == SERVER_URL_LINE else line for line in lines))
    database = Path(load_settings(server_config, environ={}).database_url.removeprefix("sqlite:///"))
    assert database.is_absolute() and database.parent == Path(data)


def test_init_then_the_service_open_the_same_database_from_any_folder(tmp_path: Path) -> None:
    """The example config copied as it is: `init` run in the admin's folder and the service
    run in its working directory find one database (in the user's data folder), not two."""
    home, admin, service = tmp_path / "home", tmp_path / "admin", tmp_path / "service"
    for folder in (home, admin, service):
        folder.mkdir()
    config = tmp_path / "digestd.toml"
    shutil.copy(EXAMPLE, config)
    env = {"HOME": str(home), "XDG_DATA_HOME": None, "DIGESTD_CONFIG": str(config), "DIGESTD_DATABASE_URL": None}

    def init_in(folder: Path) -> str:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            result = CliRunner().invoke(cli, ["init"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "migrated from empty" in init_in(admin)
    assert "is up to date" in init_in(service)
    assert list(admin.iterdir()) == list(service.iterdir()) == []
    assert (home / ".local" / "share" / "digestd" / "digestd.sqlite3").exists()
