// Starts the real gateway binary for a client test (the Node twin of gateway.py): a fresh data
// dir and workspace, port 0, the address read from its "listening" log line, and a clean
// environment. `stop()` sends SIGTERM, waits for the drain and rejects unless it exited 0.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../../..");
const binary = process.env.GATEWAY_BIN || join(root, "target/debug/agent-gateway");

export async function startGateway(settings = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gateway-clients-"));
  const args = ["--port", "0", "--data-dir", join(dir, "data"), "--set", `workspace=${dir}`];
  for (const [key, value] of Object.entries(settings)) args.push("--set", `${key}=${value}`);
  const child = spawn(binary, args, { env: { RUST_LOG: "info" }, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const exited = new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
  child.stderr.on("data", (chunk) => { log += chunk; });
  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start:\n${log}`)), 30000);
    child.stderr.on("data", () => {
      const match = /addr=(\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolveAddr(match[1]);
      }
    });
    exited.then(({ code }) => reject(new Error(`the gateway exited (${code}):\n${log}`)));
  });
  return {
    addr,
    url: `http://${addr}`,
    dir,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const { code, signal } = await exited;
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`the gateway exited ${code ?? signal}:\n${log}`);
    },
  };
}
