#!/usr/bin/env node
// A native gRPC client of agent-gateway: @grpc/grpc-js with @grpc/proto-loader loading
// proto/agentgateway/v1/*.proto at run time (no generated code).
//
// It lists the sessions (Sessions/ListSessions), sends one message and prints its run as it
// streams (Chat/StreamChat), then reads the run back from the session's event log with
// Sessions/Subscribe: a first subscription that "loses its connection" after a few events and a
// second one resuming with `after_seq` = the last seq it saw.
//
//   GATEWAY_AUTH_TOKEN=secret node grpc.mjs --addr 127.0.0.1:8787 --text 'hello there'
//
// With a token (--token, or GATEWAY_AUTH_TOKEN), every call carries `authorization: Bearer <token>`.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const { values: opts } = parseArgs({
  options: {
    addr: { type: "string", default: "127.0.0.1:8787" },
    token: { type: "string", default: process.env.GATEWAY_AUTH_TOKEN ?? "" },
    session: { type: "string", default: "node-demo" },
    text: { type: "string", default: "Hello from the Node gRPC client" },
    "drop-after": { type: "string", default: "4" },
  },
});

const protoDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../proto");
const definition = protoLoader.loadSync(["agentgateway/v1/sessions.proto", "agentgateway/v1/chat.proto"], {
  includeDirs: [protoDir], // google/protobuf/struct.proto comes with protobufjs
  keepCase: true, // field names as in the proto: session_key, after_seq
  longs: String, // uint64 seq as a decimal string
  enums: String,
  defaults: true,
  oneofs: true, // `kind` names the oneof member that is set
});
const v1 = grpc.loadPackageDefinition(definition).agentgateway.v1;
const credentials = grpc.credentials.createInsecure(); // h2c, as the gateway serves it
const sessions = new v1.Sessions(opts.addr, credentials);
const chat = new v1.Chat(opts.addr, credentials);

// Insecure channels cannot carry call credentials, so the token goes into each call's metadata.
function auth() {
  const metadata = new grpc.Metadata();
  if (opts.token) metadata.set("authorization", `Bearer ${opts.token}`);
  return metadata;
}

const unary = (client, method, request) =>
  new Promise((resolveCall, reject) => {
    client[method](request, auth(), (error, reply) => (error ? reject(error) : resolveCall(reply)));
  });

async function listSessions() {
  console.log("== Sessions/ListSessions");
  const reply = await unary(sessions, "ListSessions", { page_size: 20 });
  for (const s of reply.sessions) {
    console.log(`session ${s.session_key} messages=${s.message_count} processing=${s.processing}`);
  }
}

async function streamChat(key, text) {
  console.log(`== Chat/StreamChat session=${key}`);
  let messageId = "";
  const seqs = [];
  for await (const item of chat.StreamChat({ session_key: key, text }, auth())) {
    if (item.kind === "accepted") {
      messageId = item.accepted.message_id;
      console.log(`accepted message_id=${messageId}`);
    } else if (item.kind === "event") {
      seqs.push(Number(item.event.seq));
      if (item.event.kind === "token") console.log(`token ${JSON.stringify(item.event.token.delta)}`);
    } else if (item.kind === "result") {
      const r = item.result;
      const error = r.error ? ` error=${JSON.stringify(r.error)}` : "";
      console.log(`result ok=${r.ok} response=${JSON.stringify(r.response)}${error}`);
    }
  }
  return { messageId, seqs };
}

// Prints the logged events after `afterSeq`; with `dropAfter`, cancels the stream after that
// many events, otherwise reads until the run of `messageId` ends. Returns the seqs seen
// (`hello`, which carries the latest seq, is a note and not counted).
async function subscribe(key, afterSeq, messageId, dropAfter) {
  const note = dropAfter ? ` (drops after ${dropAfter} events)` : " (resumed)";
  console.log(`== Sessions/Subscribe session=${key} after_seq=${afterSeq}${note}`);
  const call = sessions.Subscribe({ session_key: key, after_seq: String(afterSeq) }, auth());
  const seen = [];
  try {
    for await (const event of call) {
      if (event.kind === "hello") {
        console.log(`hello latest_seq=${event.seq}`);
        continue;
      }
      if (event.kind === "lagged") {
        console.log(`lagged missed=${event.lagged.missed}`);
        continue;
      }
      seen.push(Number(event.seq));
      console.log(`seq ${event.seq} ${event.kind}`);
      if (dropAfter && seen.length >= dropAfter) break;
      if (event.kind === "agent_end" && event.agent_end.message_id === messageId) break;
    }
  } catch (error) {
    if (error.code !== grpc.status.CANCELLED) throw error;
  } finally {
    call.cancel();
  }
  return seen;
}

try {
  await listSessions();
  const { messageId, seqs } = await streamChat(opts.session, opts.text);
  if (seqs.length === 0) throw new Error("the run streamed no events");
  const start = seqs[0] - 1;
  const first = await subscribe(opts.session, start, messageId, Number(opts["drop-after"]));
  const rest = await subscribe(opts.session, first.at(-1) ?? start, messageId, 0);
  console.log(`seqs ${[...first, ...rest].join(" ")}`);
} catch (error) {
  if (error.code === undefined) throw error;
  const name = Object.keys(grpc.status).find((k) => grpc.status[k] === error.code);
  console.log(`error ${name}: ${error.details}`);
  process.exitCode = 1;
} finally {
  sessions.close();
  chat.close();
}
