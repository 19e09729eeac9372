#!/usr/bin/env python3
"""Runs the recipes of clients/grpcurl.md and clients/curl.md against real gateways and checks
each one's expected output. The format is described at the top of both files:

- every ```bash block is one recipe; its lines that are not `# ` directives are the command,
  run by bash (in file order, one fresh gateway per file);
- `127.0.0.1:8787` in a command becomes the test gateway's address;
- `# expect: TEXT` (in order), `# expect-re: REGEX` (in order, multiline), `# expect-not: TEXT`,
  `# exit: N` (default 0), `# stream` (stop once every expect matched), `# gateway: token`
  (a second gateway with `bearer_token` = $GATEWAY_AUTH_TOKEN).

It also checks coverage: every RPC of proto/agentgateway/v1/*.proto is called by a grpcurl
recipe, and every route of the HTTP router (src/http/) by a curl recipe.

    GATEWAY_BIN=target/debug/agent-gateway GRPCURL=/path/to/grpcurl \
      python clients/testing/recipes.py clients/grpcurl.md clients/curl.md
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import ROOT, Gateway  # noqa: E402

DEFAULT_ADDR = "127.0.0.1:8787"
TOKEN = "demo-token"
WORKSPACE = {"hello.txt": "hello from the workspace\n"}
RUN_TIMEOUT = 30.0
STREAM_TIMEOUT = 15.0
# `# expect: ...`-style directives need their colon; `# stream` stands alone on its line.
DIRECTIVE = re.compile(r"^#\s*(?:(expect-re|expect-not|expect|exit|gateway):\s?(.*)|(stream)\s*)$")


@dataclass
class Recipe:
    file: str
    line: int
    title: str
    command: str
    expects: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) in order
    expect_not: list[str] = field(default_factory=list)
    exit: int = 0
    stream: bool = False
    gateway: str = "open"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def parse(path: Path) -> list[Recipe]:
    recipes, title, block, start = [], "", None, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if block is None:
            if line.startswith("#"):
                title = line.lstrip("#").strip()
            elif line.strip() == "```bash":
                block, start = [], number + 1
            continue
        if line.strip() != "```":
            block.append(line)
            continue
        recipes.append(recipe_of(path.name, start, title, block))
        block = None
    if block is not None:
        raise SystemExit(f"{path.name}:{start}: unclosed ```bash block")
    return recipes


def recipe_of(file: str, line: int, title: str, lines: list[str]) -> Recipe:
    recipe = Recipe(file, line, title, "")
    command = []
    for text in lines:
        match = DIRECTIVE.match(text.strip())
        if not match:
            command.append(text)  # comments stay in the script; bash ignores them
            continue
        kind, value = match.group(1) or match.group(3), (match.group(2) or "").rstrip()
        if kind in ("expect", "expect-re"):
            if kind == "expect-re":
                re.compile(value)
            recipe.expects.append((kind, value))
        elif kind == "expect-not":
            recipe.expect_not.append(value)
        elif kind == "exit":
            recipe.exit = int(value)
        elif kind == "stream":
            recipe.stream = True
        elif kind == "gateway":
            if value not in ("open", "token"):
                raise SystemExit(f"{file}:{line}: unknown gateway {value!r} (open or token)")
            recipe.gateway = value
    recipe.command = "\n".join(command).strip()
    if not recipe.command:
        raise SystemExit(f"{file}:{line}: a recipe without a command")
    if not recipe.expects and not recipe.expect_not:
        raise SystemExit(f"{file}:{line}: a recipe without an expectation (# expect: ...)")
    return recipe


def unmatched(recipe: Recipe, output: str) -> str | None:
    """The first expectation `output` does not meet, or None when it meets them all."""
    position = 0
    for kind, text in recipe.expects:
        if kind == "expect":
            found = output.find(text, position)
            if found < 0:
                return f"# expect: {text}"
            position = found + len(text)
        else:
            match = re.compile(text, re.MULTILINE).search(output, position)
            if not match:
                return f"# expect-re: {text}"
            position = match.end()
    return None


def forbidden(recipe: Recipe, output: str) -> str | None:
    for text in recipe.expect_not:
        if text in output:
            return f"# expect-not: {text}"
    return None


class Output:
    """Collects a process's combined output from a reader thread; wakes waiters on each chunk."""

    def __init__(self, process: subprocess.Popen):
        self.text = ""
        self.done = False
        self.changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process):
        fd = process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self.changed:
                self.text += chunk.decode("utf-8", "replace")
                self.changed.notify_all()
        with self.changed:
            self.done = True
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run(recipe: Recipe, addr: str, env: dict[str, str]) -> str | None:
    """Runs one recipe; None when it passed, else what went wrong (with the output)."""
    script = "set -o pipefail\n" + recipe.command.replace(DEFAULT_ADDR, addr)
    process = subprocess.Popen(["bash", "-c", script], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = Output(process)
    try:
        if recipe.stream:
            met = output.wait_for(lambda o: unmatched(recipe, o.text) is None or o.done, STREAM_TIMEOUT)
            if not met:
                return f"the stream did not show what is expected within {STREAM_TIMEOUT:.0f} s: " \
                       f"{unmatched(recipe, output.text)}\n{output.text}"
            ended = process.poll() is not None  # by itself, before every expect matched?
            stop(process)
            output.wait_for(lambda o: o.done, 5)
            problem = unmatched(recipe, output.text) or forbidden(recipe, output.text)
            if problem:
                note = f" (the stream ended by itself, exit {process.returncode})" if ended else ""
                return f"{problem}\n--- output{note}:\n{output.text}"
            return None
        if not output.wait_for(lambda o: o.done, RUN_TIMEOUT):
            return f"no end within {RUN_TIMEOUT:.0f} s (a stream? add `# stream`)\n{output.text}"
        code = process.wait(RUN_TIMEOUT)
        problem = unmatched(recipe, output.text) or forbidden(recipe, output.text)
        if problem is None and code != recipe.exit:
            problem = f"exit {code}, expected {recipe.exit} (# exit: {code} if that is right)"
        return None if problem is None else f"{problem}\n--- output:\n{output.text}"
    finally:
        stop(process)


# ---- coverage -------------------------------------------------------------------------------

def rpcs() -> list[str]:
    names = []
    for proto in sorted((ROOT / "proto/agentgateway/v1").glob("*.proto")):
        package = re.search(r"^package\s+([\w.]+);", proto.read_text(), re.M).group(1)
        for service, body in re.findall(r"^service\s+(\w+)\s*\{(.*?)^\}", proto.read_text(), re.M | re.S):
            names += [f"{package}.{service}/{rpc}" for rpc in re.findall(r"\brpc\s+(\w+)\s*\(", body)]
    return names


def routes() -> list[tuple[set[str], str]]:
    """(methods, path) of every route in src/http/ (`later(..)` routes: any one method)."""
    found = []
    for source in sorted((ROOT / "src/http").glob("*.rs")):
        text = source.read_text()
        for match in re.finditer(r'\.route\(\s*"([^"]+)",', text):
            # The method router is the rest of this .route( call: up to the next .route( or `;`.
            rest = text[match.end():]
            end = min([i for i in (rest.find(".route("), rest.find(";")) if i >= 0] or [len(rest)])
            handler = rest[:end]
            if re.search(r"\blater\(", handler):
                methods = {"ANY"}
            else:
                methods = {m.upper() for m in re.findall(r"\b(get|post|patch|put|delete)\(", handler)}
            found.append((methods, match.group(1)))
    if len(found) < 20:
        raise SystemExit(f"found only {len(found)} routes in src/http/: has the router moved?")
    # The webhook router builds its path from `webhook.base_path` (default /webhooks).
    found.append(({"POST"}, "/webhooks/{*route}"))
    return found


def route_regex(path: str) -> re.Pattern:
    pattern = re.sub(r"\\\{\\\*\w+\\\}", ".+", re.escape(path))
    pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", pattern)
    return re.compile(f"^{pattern}$")


def curl_calls(command: str) -> list[tuple[str, str]]:
    """(method, path) of each curl in a command."""
    calls = []
    for line in re.split(r"\n(?!\s)|&&|\|", command.replace("\\\n", " ")):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if "curl" not in words:
            continue
        words = words[words.index("curl") + 1:]
        method, data, path = None, False, None
        for i, word in enumerate(words):
            if word in ("-X", "--request") and i + 1 < len(words):
                method = words[i + 1].upper()
            elif word in ("-d", "--data", "--data-raw", "--json") or word.startswith("--data"):
                data = True
            elif DEFAULT_ADDR in word:
                path = word.split(DEFAULT_ADDR, 1)[1].split("?")[0] or "/"
        if path:
            calls.append((method or ("POST" if data else "GET"), path))
    return calls


def coverage(recipes: list[Recipe]) -> list[str]:
    missing = []
    grpc = [r for r in recipes if r.file == "grpcurl.md"]
    if grpc:
        text = "\n".join(r.command for r in grpc)
        missing += [f"grpcurl.md: no recipe calls {name}" for name in rpcs() if name not in text]
    curl = [r for r in recipes if r.file == "curl.md"]
    if curl:
        calls = [call for r in curl for call in curl_calls(r.command)]
        for methods, path in routes():
            pattern = route_regex(path)
            seen = {method for method, called in calls if pattern.match(called)}
            if methods == {"ANY"}:
                if not seen:
                    missing.append(f"curl.md: no recipe calls {path}")
            else:
                missing += [f"curl.md: no recipe calls {m} {path}" for m in sorted(methods - seen)]
    return missing


# ---- main -----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()

    tools = Path(tempfile.mkdtemp(prefix="recipes-bin-"))
    grpcurl = os.environ.get("GRPCURL") or shutil.which("grpcurl")
    if not grpcurl:
        raise SystemExit("set GRPCURL to the grpcurl binary")
    (tools / "grpcurl").symlink_to(Path(grpcurl).resolve())
    env = dict(os.environ)
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env["GATEWAY_AUTH_TOKEN"] = TOKEN

    passed, failed = 0, []
    all_recipes = []
    try:
        for path in args.files:
            recipes = parse(path)
            all_recipes += recipes
            gateways: dict[str, Gateway] = {}
            try:
                for recipe in recipes:
                    if recipe.gateway not in gateways:
                        settings = {"bearer_token": TOKEN} if recipe.gateway == "token" else {}
                        gateways[recipe.gateway] = Gateway(settings, WORKSPACE)
                    began = time.monotonic()
                    problem = run(recipe, gateways[recipe.gateway].addr, env)
                    took = time.monotonic() - began
                    if problem is None:
                        passed += 1
                        print(f"ok {recipe.where} {recipe.title} ({took:.1f} s)", flush=True)
                    else:
                        failed.append(recipe.where)
                        print(f"FAIL {recipe.where} {recipe.title}\n$ {recipe.command}\n{problem}", flush=True)
            finally:
                for gateway in gateways.values():
                    gateway.stop()
    finally:
        shutil.rmtree(tools, ignore_errors=True)

    missing = coverage(all_recipes)
    for line in missing:
        print(f"MISSING {line}")
    print(f"recipes: {passed} passed, {len(failed)} failed")
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
