// Runs both Node examples against a real gateway with a bearer token and checks what they print:
// grpc.mjs streams the echo reply token by token and resumes its subscription with after_seq
// without repeating or missing a seq; vercel.mjs (the `ai` package's DefaultChatTransport and
// readUIMessageStream) shows the reply growing, then the whole reply. Without the token both fail.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startGateway } from "../../testing/gateway.mjs";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const TOKEN = "node-client-secret";
const WORDS = "pack my box with five dozen liquor jugs";
let gateway;
before(async () => { gateway = await startGateway({ bearer_token: TOKEN }); });
after(async () => { await gateway?.stop(); });

async function run(script, args, token = TOKEN) {
  const env = { ...process.env, GATEWAY_AUTH_TOKEN: token };
  if (token === null) delete env.GATEWAY_AUTH_TOKEN;
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(here, script), ...args], { env, timeout: 60000 });
    return { code: 0, stdout };
  } catch (error) {
    if (error.code === undefined || typeof error.code === "string") throw error;
    return { code: error.code, stdout: error.stdout };
  }
}

/** The output split at its `== ` headings: [[heading, lines]]. */
function sections(stdout) {
  const result = [];
  for (const line of stdout.trimEnd().split("\n")) {
    if (line.startsWith("== ")) result.push([line.slice(3), []]);
    else result.at(-1)?.[1].push(line);
  }
  return result;
}
const seqsOf = (lines) => lines.map((l) => /^seq (\d+) \w+$/.exec(l)).filter(Boolean).map((m) => Number(m[1]));

test("grpc.mjs: ListSessions, StreamChat token by token, Subscribe resumed with after_seq", async () => {
  const { code, stdout } = await run("grpc.mjs", ["--addr", gateway.addr, "--session", "node-test", "--text", `${WORDS}\n!delay 20`, "--drop-after", "6"]);
  assert.equal(code, 0, stdout);
  const parts = sections(stdout);
  assert.deepEqual(parts.map(([h]) => h.split(" ")[0]), ["Sessions/ListSessions", "Chat/StreamChat", "Sessions/Subscribe", "Sessions/Subscribe"], stdout);
  assert.ok(parts[0][1].includes("session main messages=0 processing=false"), stdout);

  const chat = parts[1][1];
  assert.match(chat[0], /^accepted message_id=[0-9a-f-]{36}$/);
  const tokens = chat.filter((l) => l.startsWith("token ")).map((l) => JSON.parse(l.slice(6)));
  assert.ok(tokens.length >= WORDS.split(" ").length, stdout);
  assert.equal(tokens.join(""), WORDS);
  assert.equal(chat.at(-1), `result ok=true response=${JSON.stringify(WORDS)}`);

  const after = Number(/after_seq=(\d+)/.exec(parts[2][0])[1]);
  const first = seqsOf(parts[2][1]);
  assert.equal(first.length, 6, stdout);
  assert.equal(first[0], after + 1);
  assert.ok(parts[2][1].includes(`seq ${first[0]} agent_start`), stdout);
  assert.ok(parts[3][0].endsWith(`after_seq=${first.at(-1)} (resumed)`), parts[3][0]);
  const summary = parts[3][1].pop();
  const second = seqsOf(parts[3][1]);
  assert.ok(second.length > 0 && Math.min(...second) > first.at(-1), stdout);
  const all = [...first, ...second];
  assert.equal(new Set(all).size, all.length, `a seq came twice: ${all}`);
  assert.deepEqual(all, all.map((_, i) => first[0] + i), "no gap");
  assert.match(parts[3][1].at(-1), /^seq \d+ agent_end$/);
  assert.equal(summary, `seqs ${all.join(" ")}`);
});

test("vercel.mjs: DefaultChatTransport + readUIMessageStream show the reply as it grows", async () => {
  const { code, stdout } = await run("vercel.mjs", ["--url", gateway.url, "--session", "vercel-test", "--text", `${WORDS}\n!delay 20`]);
  assert.equal(code, 0, stdout);
  const lines = stdout.trimEnd().split("\n");
  const texts = lines.filter((l) => l.startsWith("text ")).map((l) => JSON.parse(l.slice(5)));
  assert.equal(texts.at(-1), WORDS);
  const partial = texts.slice(0, -1).filter((t) => WORDS.startsWith(t) && t.length < WORDS.length);
  assert.ok(partial.length >= 3, `at least three partial states: ${JSON.stringify(texts)}`);
  assert.match(lines.at(-2), /^message id=[0-9a-f-]{36} role=assistant parts=step-start,text$/);
  assert.equal(lines.at(-1), `reply ${JSON.stringify(WORDS)}`);

  // The session holds the exchange: the gateway ran exactly this text.
  const history = await fetch(`${gateway.url}/sessions/vercel-test/history`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json());
  assert.deepEqual(history.messages.map((m) => [m.role, m.parts[0].text]), [["user", `${WORDS}\n!delay 20`], ["assistant", WORDS]]);
});

test("without the token both examples are refused", async () => {
  const grpcRun = await run("grpc.mjs", ["--addr", gateway.addr], null);
  assert.equal(grpcRun.code, 1, grpcRun.stdout);
  assert.match(grpcRun.stdout, /^error UNAUTHENTICATED: Unauthorized$/m);
  const vercelRun = await run("vercel.mjs", ["--url", gateway.url], "wrong-token");
  assert.equal(vercelRun.code, 1, vercelRun.stdout);
  assert.match(vercelRun.stdout, /^error .*Unauthorized/m);
});
