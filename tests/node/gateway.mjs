// Starts the real gateway binary for a Node test: a fresh data dir and workspace, port 0, and
// the address read from its "listening" log line. `stop()` sends SIGTERM and waits for exit.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../../..");
const binary = process.env.GATEWAY_BIN || join(root, "target/debug/agent-gateway");

export async function startGateway(settings = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gateway-node-"));
  const args = ["--port", "0", "--data-dir", join(dir, "data"), "--set", `workspace=${dir}`];
  for (const [key, value] of Object.entries(settings)) args.push("--set", `${key}=${value}`);
  const child = spawn(binary, args, { env: { RUST_LOG: "info" }, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start:\n${log}`)), 20000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /addr=(\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolveUrl(`http://${match[1]}`);
      }
    });
    child.on("exit", (code) => reject(new Error(`the gateway exited (${code}):\n${log}`)));
  });
  return {
    url,
    dir,
    async stop() {
      const exited = new Promise((done) => child.on("exit", done));
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
