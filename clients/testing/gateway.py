"""Starts the real gateway binary for a client test: a fresh data dir and workspace, port 0,
and the address read from its `listening ... addr=` log line. `stop()` sends SIGTERM, waits
for the drain, and checks that the gateway exited 0.

The binary is $GATEWAY_BIN (default: target/debug/agent-gateway of this repository). The
gateway gets a clean environment (only RUST_LOG), so no GATEWAY_* variable of the test leaks in.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0


class Gateway:
    def __init__(self, settings: dict[str, str] | None = None, workspace_files: dict[str, str] | None = None):
        self.binary = os.environ.get("GATEWAY_BIN") or str(ROOT / "target/debug/agent-gateway")
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-clients-"))
        self.workspace = self.dir / "workspace"
        self.workspace.mkdir()
        for name, text in (workspace_files or {}).items():
            (self.workspace / name).write_text(text)
        args = [self.binary, "--port", "0", "--data-dir", str(self.dir / "data"),
                "--set", f"workspace={self.workspace}"]
        for key, value in (settings or {}).items():
            args += ["--set", f"{key}={value}"]
        self.log = ""
        self._listening = threading.Event()
        self.addr = ""
        self.process = subprocess.Popen(args, env={"RUST_LOG": "info"}, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT) or not self.addr:
            self.process.kill()
            raise RuntimeError(f"the gateway did not start:\n{self.log}")

    def _read_log(self) -> None:
        # Keeps draining stderr for the gateway's whole life, so it never blocks on a full pipe.
        for line in self.process.stderr:
            self.log += line
            if not self.addr:
                match = re.search(r"addr=(\S+)", line)
                if match:
                    self.addr = match.group(1)
                    self._listening.set()
        self._listening.set()  # exited: wake a waiting start

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError(f"the gateway did not stop on SIGTERM:\n{self.log}")
        finally:
            self._reader.join(5)
            shutil.rmtree(self.dir, ignore_errors=True)
        if code != 0:
            raise RuntimeError(f"the gateway exited {code}:\n{self.log}")

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
