#!/usr/bin/env node
// The Vercel AI SDK against agent-gateway: the `ai` package's DefaultChatTransport (what
// `useChat` uses) posts to POST /sessions/:key/chat, and readUIMessageStream assembles the UI
// message stream into the assistant message as it grows, which is what a chat UI renders.
//
//   GATEWAY_AUTH_TOKEN=secret node vercel.mjs --url http://127.0.0.1:8787 --text 'hello there'
//
// In a React app the same transport goes into useChat:
//   useChat({ transport: new DefaultChatTransport({ api: "/sessions/demo/chat" }) })
import { parseArgs } from "node:util";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8787" },
    token: { type: "string", default: process.env.GATEWAY_AUTH_TOKEN ?? "" },
    session: { type: "string", default: "vercel-demo" },
    text: { type: "string", default: "Hello from the Vercel AI SDK" },
  },
});

const transport = new DefaultChatTransport({
  api: `${opts.url}/sessions/${encodeURIComponent(opts.session)}/chat`,
  headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
});

// The body DefaultChatTransport sends is useChat's: {id, messages, trigger, messageId}. The
// gateway runs the newest user message's text (the session keeps the history itself).
const userMessage = { id: `user-${Date.now()}`, role: "user", parts: [{ type: "text", text: opts.text }] };
let stream;
try {
  stream = await transport.sendMessages({
    trigger: "submit-message",
    chatId: opts.session,
    messageId: undefined,
    messages: [userMessage],
    abortSignal: undefined,
  });
} catch (error) {
  // A refused call (401, 429, ...) is an HTTP error before any stream.
  console.log(`error ${error.message}`);
  process.exit(1);
}

let message;
let shown = "";
for await (const update of readUIMessageStream({ stream, terminateOnError: true })) {
  message = update;
  const text = update.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
  if (text !== shown) {
    shown = text;
    console.log(`text ${JSON.stringify(text)}`);
  }
}
console.log(`message id=${message?.id} role=${message?.role} parts=${message?.parts.map((p) => p.type).join(",")}`);
console.log(`reply ${JSON.stringify(shown)}`);
