#!/usr/bin/env node
// A tiny static server for the page (index.html and the esbuild bundle in dist/), so the page
// has its own origin and reaches the gateway cross-origin, as a real web app would.
//
//   npm run build && node serve.mjs --port 8080
//   agent-gateway --set cors_origin=http://127.0.0.1:8080
//   open http://127.0.0.1:8080/?gateway=http://127.0.0.1:8787
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["dist/app.js", "text/javascript; charset=utf-8"],
  "/app.js.map": ["dist/app.js.map", "application/json"],
};

/** Serves the page on 127.0.0.1:`port` (0: a free one); resolves to {origin, close()}. */
export function serve(port = 0) {
  const server = createServer(async (req, res) => {
    const entry = files[new URL(req.url, "http://x").pathname];
    if (!entry || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    try {
      const body = await readFile(join(here, entry[0]));
      res.writeHead(200, { "content-type": entry[1], "cache-control": "no-store" }).end(body);
    } catch {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${entry[0]} is missing: run npm run build\n`);
    }
  });
  return new Promise((resolve) => {
    server.listen(port, "127.0.0.1", () => {
      resolve({
        origin: `http://127.0.0.1:${server.address().port}`,
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "8080" } } });
  const { origin } = await serve(Number(values.port));
  console.log(`serving the page on ${origin}/ (add ?gateway=http://127.0.0.1:8787)`);
}
