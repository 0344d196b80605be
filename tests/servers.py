"""A throwaway PostgreSQL cluster for the storage tests: initdb in a temp folder, a loopback
port, a password, stopped afterwards. As root (CI) the server runs as the ``postgres`` user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from tuner.runtime import free_port

PG_USER = "tuner"
PG_PASSWORD = "pw-Secr3t-9f2c"  # tests check it never reaches output or the database


def pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return candidates[-1] if candidates else None


def why_no_postgres() -> str | None:
    """None when a cluster can be started here, else why not."""
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the driver is not installed (pip install 'tuner[postgres]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server"
    return None


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port

    def url(self, database: str = "postgres", password: bool = True) -> str:
        secret = f":{PG_PASSWORD}" if password else ""
        return f"postgresql+psycopg://{PG_USER}{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL (with the password)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} password={PG_PASSWORD} "
                             "dbname=postgres", autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    port = free_port()
    log = root / "server.log"
    subprocess.run(_as_server_user([pg_bin("initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                                    "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions"]),
                   check=True, capture_output=True, text=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_server_user([pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                                    "start"]), check=True, capture_output=True, text=True)
    try:
        yield Cluster(root, port)
    finally:
        subprocess.run(_as_server_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, text=True)
        shutil.rmtree(root, ignore_errors=True)


S3_KEYS = {"AWS_ACCESS_KEY_ID": "tuner-test", "AWS_SECRET_ACCESS_KEY": "s3-Secr3t-71ab",
           "AWS_DEFAULT_REGION": "us-east-1"}


def why_no_s3() -> str | None:
    """None when an S3-compatible server can be started here (moto's), else why not."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install -e '.[test,s3]')"
    return None


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server as its own process on a loopback port; yields the environment that
    points boto3 at it (AWS_ENDPOINT_URL and test keys)."""
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield {**S3_KEYS, "AWS_ENDPOINT_URL": endpoint}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
