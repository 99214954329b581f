"""Start the real Dagster webserver for tests: a free loopback port, a temporary instance."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from segment_pipeline.settings import PROJECT_ROOT
from segment_pipeline_tests.conftest import project_home

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webserver:
    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        assert "errors" not in payload, payload["errors"]
        return payload["data"]


@contextmanager
def running_webserver(
    tmp_path: Path, env_extra: dict[str, str], timeout: float = 180.0
) -> Iterator[Webserver]:
    port = free_port()
    home = project_home(tmp_path / "dagster_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_PIPELINE_")}
    env.update({"DAGSTER_HOME": str(home), **env_extra})
    log = tmp_path / "webserver.log"
    with log.open("w") as log_handle:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "workspace.yaml",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"webserver exited early:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"webserver did not answer:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield Webserver(url, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
