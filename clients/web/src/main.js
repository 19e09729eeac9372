// The page's client: generated service descriptors (gen/, from `buf generate`) and
// @connectrpc/connect-web's grpc-web transport. Every call is a POST of
// `application/grpc-web+proto` to <gateway>/agentgateway.v1.<Service>/<Rpc>; StreamChat's
// frames arrive over one fetch body, and each token is appended to the page as it comes.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Chat } from "../gen/agentgateway/v1/chat_pb.js";
import { Sessions } from "../gen/agentgateway/v1/sessions_pb.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("gateway").value = params.get("gateway") ?? "http://127.0.0.1:8787";
$("session").value = params.get("session") ?? $("session").value;

// Adds `authorization: Bearer <token>` to every call while a token is typed in.
const bearer = (next) => async (req) => {
  const token = $("token").value.trim();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

function clients() {
  const transport = createGrpcWebTransport({ baseUrl: $("gateway").value.replace(/\/+$/, ""), interceptors: [bearer] });
  return { sessions: createClient(Sessions, transport), chat: createClient(Chat, transport) };
}

function status(text) {
  $("status").textContent = text;
}

function describe(error) {
  const e = ConnectError.from(error);
  return `${Code[e.code]}: ${e.rawMessage}`;
}

async function listSessions() {
  const list = $("sessions");
  try {
    const { sessions } = await clients().sessions.listSessions({ pageSize: 50 });
    list.replaceChildren(...sessions.map((s) => {
      const item = document.createElement("li");
      item.dataset.key = s.sessionKey;
      item.textContent = `${s.sessionKey} (${s.messageCount} messages${s.processing ? ", busy" : ""})`;
      item.onclick = () => { $("session").value = s.sessionKey; };
      return item;
    }));
    status(`${sessions.length} sessions`);
  } catch (error) {
    list.replaceChildren();
    status(`ListSessions failed: ${describe(error)}`);
  }
}

async function send() {
  const reply = $("reply");
  const sessionKey = $("session").value;
  reply.textContent = "";
  reply.dataset.state = "streaming";
  $("send").disabled = true;
  try {
    for await (const item of clients().chat.streamChat({ sessionKey, text: $("input").value })) {
      switch (item.kind.case) {
        case "accepted":
          reply.dataset.messageId = item.kind.value.messageId;
          status(`accepted ${item.kind.value.messageId}`);
          break;
        case "event": {
          const event = item.kind.value;
          if (event.kind.case === "token") reply.append(event.kind.value.delta);
          break;
        }
        case "result": {
          const result = item.kind.value;
          reply.textContent = result.response; // the whole reply, as the run recorded it
          reply.dataset.state = result.ok ? "done" : "error";
          status(result.ok ? "done" : `the run failed: ${result.error ?? "?"}`);
          break;
        }
      }
    }
    if (reply.dataset.state === "streaming") throw new Error("the stream ended without a result");
  } catch (error) {
    reply.dataset.state = "error";
    status(`StreamChat failed: ${describe(error)}`);
  } finally {
    $("send").disabled = false;
    listSessions();
  }
}

$("connect").onclick = listSessions;
$("send").onclick = send;
listSessions();
