// The Vercel AI SDK reads our UI message stream: the raw body of POST /sessions/:key/chat for
// an echo run that thinks and calls a tool is split into chunks, each validated with the `ai`
// package's own uiMessageChunkSchema, and assembled by its readUIMessageStream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DefaultChatTransport, readUIMessageStream, uiMessageChunkSchema } from "ai";
import { startGateway } from "./gateway.mjs";

let gateway;
before(async () => { gateway = await startGateway(); });
after(async () => { await gateway?.stop(); });

/** The `data:` payloads of an SSE body, in order. */
function dataLines(body) {
  return body.split("\n\n").map((frame) => frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n")).filter(Boolean);
}

test("readUIMessageStream assembles text, reasoning and a tool call from our stream", async () => {
  writeFileSync(join(gateway.dir, "notes.txt"), "remember the milk");
  const text = 'hello there\n!think\n!tool read {"path":"notes.txt"}';
  const response = await fetch(`${gateway.url}/sessions/vercel/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ id: "u1", role: "user", parts: [{ type: "text", text }] }] }),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-vercel-ai-ui-message-stream"), "v1");
  const lines = dataLines(await response.text());
  assert.equal(lines.at(-1), "[DONE]");

  const schema = uiMessageChunkSchema();
  const chunks = [];
  for (const line of lines.slice(0, -1)) {
    const chunk = JSON.parse(line);
    const result = await schema.validate(chunk);
    assert.ok(result.success, `chunk rejected by the ai schema: ${line}`);
    chunks.push(result.value);
  }
  const stream = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  let message;
  for await (const update of readUIMessageStream({ stream, terminateOnError: true })) message = update;

  assert.ok(message, "the stream produced a message");
  assert.equal(message.role, "assistant");
  assert.equal(message.id, chunks[0].messageId);
  const texts = message.parts.filter((p) => p.type === "text");
  assert.equal(texts.map((p) => p.text).join(""), "hello there\n\nTool read returned:\nremember the milk");
  assert.ok(texts.every((p) => p.state === "done"));
  const reasoning = message.parts.find((p) => p.type === "reasoning");
  assert.match(reasoning.text, /I will echo them/);
  const tool = message.parts.find((p) => p.type === "tool-read" || p.type === "dynamic-tool");
  assert.ok(tool, `a tool part in ${JSON.stringify(message.parts.map((p) => p.type))}`);
  assert.equal(tool.state, "output-available");
  assert.deepEqual(tool.input, { path: "notes.txt" });
  assert.equal(tool.output.content[0].text, "remember the milk");
  assert.equal(message.parts.filter((p) => p.type === "step-start").length, 2, "one step per model call");
});

test("useChat's resume path (DefaultChatTransport.reconnectToStream) picks a running reply up again", async () => {
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(" ");
  const api = `${gateway.url}/sessions/resume/chat`;
  const response = await fetch(api, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: `${words}\n!delay 15` }),
  });
  // Read until the reply has begun, then drop the connection as a reloaded page would.
  const reader = response.body.getReader();
  let seen = "";
  while (!seen.includes('"text-delta"')) seen += new TextDecoder().decode((await reader.read()).value);
  await reader.cancel();

  const transport = new DefaultChatTransport({ api });
  const stream = await transport.reconnectToStream({ chatId: "resume-chat" });
  assert.ok(stream, "a running reply is there to resume");
  let message;
  for await (const update of readUIMessageStream({ stream, terminateOnError: true })) message = update;
  assert.equal(message.parts.filter((p) => p.type === "text").map((p) => p.text).join(""), words);

  // The reply is complete now: nothing to resume (204 gives null).
  assert.equal(await transport.reconnectToStream({ chatId: "resume-chat" }), null);
});
