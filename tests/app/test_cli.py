"""The ``scoregate`` command, run as a real process, also from an installed wheel."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import repo_root

KEY = re.compile(r"(sg_[A-Za-z0-9_-]{20,})")


def scoregate_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREGATE_")}
    env.update(
        SCOREGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestCommands:
    def test_migrate(self, tmp_path):
        result = run(["migrate"], scoregate_env(tmp_path), tmp_path)
        assert result.returncode == 0, result.stderr
        assert "migrated" in result.stdout
        assert (tmp_path / "cli.db").exists()

    def test_keys_create_prints_a_key_of_the_role(self, tmp_path):
        result = run(
            ["keys", "create", "--role", "sync", "--name", "zoho job"],
            scoregate_env(tmp_path),
            tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "sync key" in result.stdout
        assert KEY.search(result.stdout)

    def test_keys_create_refuses_an_unknown_role(self, tmp_path):
        result = run(["keys", "create", "--role", "owner"], scoregate_env(tmp_path), tmp_path)
        assert result.returncode != 0

    def test_serve_prints_the_first_admin_key_once_and_serves_the_sandbox(self, tmp_path):
        port = free_port()
        env = scoregate_env(tmp_path, SCOREGATE_LOG_LEVEL="WARNING")
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        with subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            try:
                assert process.stdout is not None
                key = None
                deadline = time.monotonic() + 60
                while key is None and time.monotonic() < deadline:
                    match = KEY.search(process.stdout.readline())
                    key = match.group(1) if match else None
                assert key, "no admin key printed"
                base = f"http://127.0.0.1:{port}"
                for _ in range(100):
                    try:
                        if httpx.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                body = {"contacts": [{"id": "1", "identities": {"twitter": "olga_optout"}}]}
                response = httpx.post(
                    f"{base}/v1/lookups", json=body, headers={"Authorization": f"Bearer {key}"}
                )
                assert response.status_code == 200
                assert response.json()["results"][0]["status"] == "opted_out"
                assert (tmp_path / "cli.db.secret").exists()
            finally:
                process.terminate()
        # a second start on the same database prints no new key
        command[-1] = str(free_port())
        with subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as again:
            time.sleep(4)
            again.terminate()
            out, _ = again.communicate(timeout=30)
        assert "sandbox:" in out
        assert not KEY.search(out)


class TestInstalledPackage:
    def test_the_wheel_ships_the_migrations_and_they_run(self, tmp_path):
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(tmp_path),
                str(repo_root()),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if build.returncode != 0:
            pytest.fail(build.stderr)
        [wheel] = tmp_path.glob("scoregate-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        assert "migrations/env.py" in names
        assert "migrations/script.py.mako" in names
        assert any(n.startswith("migrations/versions/") and n.endswith(".py") for n in names)
        target = tmp_path / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                str(wheel),
            ],
            check=True,
            timeout=300,
        )
        workdir = tmp_path / "elsewhere"
        workdir.mkdir()
        env = scoregate_env(workdir, PYTHONPATH=str(target))
        probe = subprocess.run(
            [sys.executable, "-c", "import app; print(app.__file__)"],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.startswith(str(target))
        result = run(["migrate"], env, workdir)
        assert result.returncode == 0, result.stderr
        assert (workdir / "cli.db").exists()
