// The socket.io chat channel (GATEWAY.md §5.4) with the real socket.io-client against a
// gateway binary the test starts: handshake auth, the command manifest, a message streamed as
// agent:* events with usage, set:thinking, abort, slash commands equal to the REST ones,
// /abort sent as a message, a client that leaves, and /channels/status.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startGateway } from "./gateway.mjs";

const TOKEN = "socket-token-1";
let gateway;
before(async () => { gateway = await startGateway({ bearer_token: TOKEN }); });
after(async () => { await gateway?.stop(); });

const words = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");

/** A connected client (the token in `auth`, unless options say otherwise). */
async function connect(options = { auth: { token: TOKEN } }) {
  const socket = io(`${gateway.url}/chat`, { transports: ["websocket"], reconnection: false, ...options });
  const manifest = once(socket, "commands:manifest");
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { socket, manifest: await manifest };
}

/** The next `event` on the socket (rejects after 20 s). */
function once(socket, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within 20 s`)), 20000);
    socket.once(event, (data) => { clearTimeout(timer); resolve(data); });
  });
}

/** Every event until `agent:end` (or `error`) for one conversation, in order. */
function collect(socket, conversationId) {
  const events = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`run did not end: ${JSON.stringify(events)}`)), 20000);
    socket.onAny((event, data) => {
      if (data?.conversationId !== conversationId) return;
      events.push({ event, data });
      if (event === "agent:end" || event === "error") { clearTimeout(timer); resolve(events); }
    });
  });
}

async function rest(method, path, body) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

test("the handshake needs the token, in auth or in the Authorization header", async () => {
  const refused = io(`${gateway.url}/chat`, { transports: ["websocket"], reconnection: false });
  const error = await once(refused, "connect_error");
  assert.equal(error.message, "Unauthorized");
  refused.close();
  const wrong = io(`${gateway.url}/chat`, { transports: ["websocket"], reconnection: false, auth: { token: "nope" } });
  assert.equal((await once(wrong, "connect_error")).message, "Unauthorized");
  wrong.close();
  const { socket, manifest } = await connect({ extraHeaders: { authorization: `Bearer ${TOKEN}` } });
  const names = manifest.manifest.map((c) => c.name);
  assert.deepEqual(names, ["help", "model", "thinking", "reset", "abort", "queue", "clear-queue", "memory", "remember"]);
  assert.ok(manifest.manifest.every((c) => c.usage.startsWith("/") && c.description));
  socket.close();
  const polling = await connect({ transports: ["polling"], auth: { token: TOKEN } });
  assert.ok(polling.socket.connected, "long-polling works too");
  polling.socket.close();
});

test("a message streams as session:info, message:ack, agent:* events and agent:end with usage", async () => {
  const { socket } = await connect();
  const conversationId = "sio-1";
  const done = collect(socket, conversationId);
  socket.emit("message", { conversationId, content: `think about it\n!think\n!delay 5` });
  const events = await done;
  const names = events.map((e) => e.event);
  assert.equal(names[0], "session:info");
  assert.equal(names[1], "message:ack");
  assert.equal(names[2], "agent:start");
  assert.equal(names.at(-1), "agent:end");
  const info = events[0].data;
  assert.equal(info.provider, "echo");
  assert.equal(info.thinkingLevel, "off");
  assert.deepEqual(info.availableThinkingLevels, ["off", "minimal", "low", "medium", "high"]);
  assert.match(events[1].data.messageId, /^[0-9a-f-]{36}$/);
  const text = events.filter((e) => e.event === "agent:text").map((e) => e.data.text).join("");
  assert.equal(text, "think about it");
  assert.ok(events.filter((e) => e.event === "agent:text").length > 1, "streamed in pieces");
  assert.ok(events.some((e) => e.event === "agent:thinking"), "thinking relayed");
  const usage = events.at(-1).data.usage;
  assert.ok(usage.outputTokens > 0 && usage.inputTokens > 0, JSON.stringify(usage));
  assert.equal(usage.tokens.total, usage.inputTokens + usage.outputTokens);
  assert.equal(usage.modelId, "echo");
  // The same run is the session's over REST: one user message, one reply.
  const history = await rest("GET", `/sessions/${conversationId}/history`);
  assert.equal(history.body.messages.length, 2);

  // A tool call shows as agent:tool:start and agent:tool:end.
  const toolRun = collect(socket, "sio-tool");
  socket.emit("message", { conversationId: "sio-tool", content: 'look\n!tool ls {"path":"."}' });
  const toolEvents = await toolRun;
  const start = toolEvents.find((e) => e.event === "agent:tool:start");
  const end = toolEvents.find((e) => e.event === "agent:tool:end");
  assert.equal(start.data.toolName, "ls");
  assert.equal(end.data.toolCallId, start.data.toolCallId);
  assert.equal(end.data.isError, false);
  // Bad payloads get an error, not a crash.
  socket.emit("message", { conversationId: "sio-1", content: "  " });
  assert.equal((await once(socket, "error")).error, "Missing message content");
  socket.close();
});

test("set:thinking accepts a valid level and lists the valid ones otherwise", async () => {
  const { socket } = await connect();
  await collectRun(socket, "sio-think", "hello");
  socket.emit("set:thinking", { conversationId: "sio-think", level: "high" });
  const info = await once(socket, "session:info");
  assert.equal(info.thinkingLevel, "high");
  assert.equal((await rest("GET", "/sessions/sio-think")).body.session.thinkingLevel, "high");
  socket.emit("set:thinking", { conversationId: "sio-think", level: "extreme" });
  const error = await once(socket, "error");
  assert.equal(error.error, 'Invalid thinking level "extreme". Available: off, minimal, low, medium, high');
  socket.emit("set:thinking", { conversationId: "nobody-here", level: "low" });
  assert.equal((await once(socket, "error")).error, "No active session for this conversation.");
  socket.close();
});

async function collectRun(socket, conversationId, content) {
  const done = collect(socket, conversationId);
  socket.emit("message", { conversationId, content });
  return done;
}

test("abort stops a run mid-stream, over the abort event and as a /abort message", async () => {
  const { socket } = await connect();
  for (const how of ["event", "message"]) {
    const conversationId = `sio-abort-${how}`;
    const done = collect(socket, conversationId);
    const firstText = once(socket, "agent:text");
    socket.emit("message", { conversationId, content: `${words(300)}\n!delay 20` });
    await firstText;
    if (how === "event") {
      socket.emit("abort", { conversationId });
    } else {
      const result = once(socket, "command:result");
      socket.emit("message", { conversationId, content: "/abort" });
      const answer = await result;
      assert.deepEqual([answer.ok, answer.command, answer.data.aborted], [true, "abort", true]);
    }
    const events = await done;
    const text = events.filter((e) => e.event === "agent:text").map((e) => e.data.text).join("");
    assert.ok(text.length < words(300).length, "cut short");
    assert.equal(events.at(-1).event, "agent:end");
    const history = await rest("GET", `/sessions/${conversationId}/history`);
    const reply = history.body.messages.at(-1);
    assert.ok(reply.parts.some((p) => p.type === "error" && p.code === "aborted"), JSON.stringify(reply));
  }
  socket.emit("abort", { conversationId: "never-was" });
  assert.equal((await once(socket, "error")).error, "No active session to abort.");
  socket.close();
});

test("each slash command gives the same result over socket.io and REST", async () => {
  const { socket } = await connect();
  const key = "sio-commands";
  await collectRun(socket, key, "hello");
  const viaSocket = async (command, args) => {
    const result = once(socket, "command:result");
    socket.emit("command:execute", { conversationId: key, command, args });
    const { conversationId, command: name, ...rest } = await result;
    assert.equal(conversationId, key);
    assert.equal(name, command);
    return rest;
  };
  const viaRest = async (command, args) => {
    const { status, body } = await rest("POST", `/sessions/${key}/commands`, { command, args });
    assert.equal(status, 200);
    return body;
  };
  // Commands that change nothing answer identically.
  for (const [command, args] of [["help", ""], ["model", ""], ["thinking", ""], ["queue", ""], ["memory", "hello"], ["model", "nope/nothing"], ["thinking", "loud"], ["memory", ""]]) {
    assert.deepEqual(await viaSocket(command, args), await viaRest(command, args), `/${command} ${args}`);
  }
  // Commands that change something answer alike, each time.
  for (const [command, args, output] of [
    ["model", "echo/echo", "Model set to echo/echo"],
    ["thinking", "low", "Thinking level set to low"],
    ["clear-queue", "", "Cleared 0 waiting messages"],
    ["abort", "", "Nothing is running"],
    ["reset", "", "Session reset"],
  ]) {
    const a = await viaSocket(command, args);
    // A reset removes a session that is not the primary one: a message brings it back.
    if (command === "reset") await collectRun(socket, key, "back again");
    const b = await viaRest(command, args);
    assert.deepEqual([a.ok, a.output], [true, output], `/${command}`);
    assert.deepEqual([b.ok, b.output], [true, output], `/${command}`);
  }
  await collectRun(socket, key, "back again");
  const remembered = await viaSocket("remember", "the sky is blue");
  assert.match(remembered.output, /^Remembered \(id \d+\)$/);
  const found = await viaRest("memory", "sky");
  assert.equal(found.output, "- the sky is blue");
  const unknown = await viaSocket("dance", "");
  assert.deepEqual(unknown, { ok: false, output: "Unknown command: /dance (try /help)" });
  socket.close();
});

test("a client that leaves stops receiving; its run goes on; /channels/status lists clients", async () => {
  const first = await connect();
  const second = await connect();
  const channels = (await rest("GET", "/channels/status")).body.channels.filter((c) => c.id.startsWith("socketio:"));
  assert.ok(channels.length >= 2, JSON.stringify(channels));
  assert.ok(channels.every((c) => c.connected && c.lastActiveAt > 0));
  const ids = channels.map((c) => c.id);
  const text = words(60);
  const firstText = once(first.socket, "agent:text");
  first.socket.emit("message", { conversationId: "sio-leave", content: `${text}\n!delay 10` });
  await firstText;
  first.socket.close();
  // The run finishes without the client: the whole reply is in the session's history.
  const events = await fetch(`${gateway.url}/sessions/sio-leave/events?after=0`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const reader = events.body.getReader();
  let body = "";
  while (!body.includes('"type":"agent_end"')) body += new TextDecoder().decode((await reader.read()).value);
  await reader.cancel();
  const history = await rest("GET", "/sessions/sio-leave/history");
  assert.equal(history.body.messages.at(-1).parts[0].text, text);
  const after = (await rest("GET", "/channels/status")).body.channels.map((c) => c.id);
  assert.ok(ids.some((id) => !after.includes(id)), "the client that left is gone from the list");
  second.socket.close();
});
