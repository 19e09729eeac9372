#!/usr/bin/env python3
"""A native gRPC client of agent-gateway, with stubs generated from proto/ by generate.sh.

It lists the sessions (Sessions/ListSessions), sends one message and prints its run as it
streams (Chat/StreamChat), then reads the same run back from the session's event log with
Sessions/Subscribe: a first subscription that "loses its connection" after a few events, and a
second one that resumes with `after_seq` = the last seq it saw, so nothing is missed and nothing
comes twice.

    ./generate.sh
    GATEWAY_AUTH_TOKEN=secret python example.py --addr 127.0.0.1:8787 --text 'hello there'

Every call carries `authorization: Bearer <token>` metadata when a token is given (--token, or
the GATEWAY_AUTH_TOKEN environment variable, the same variable the gateway reads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))
try:
    import grpc
    from agentgateway.v1 import chat_pb2, chat_pb2_grpc, sessions_pb2, sessions_pb2_grpc
except ImportError as error:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"{error}: run `pip install -r requirements.txt` and `./generate.sh` first")


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to the metadata of every call on the channel."""

    def __init__(self, token: str):
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._metadata]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def connect(addr: str, token: str | None) -> grpc.Channel:
    channel = grpc.insecure_channel(addr)  # h2c: plaintext HTTP/2, as the gateway serves it
    if token:
        channel = grpc.intercept_channel(channel, BearerToken(token))
    return channel


def show(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def list_sessions(sessions: sessions_pb2_grpc.SessionsStub) -> None:
    print("== Sessions/ListSessions")
    reply = sessions.ListSessions(sessions_pb2.ListSessionsRequest(page_size=20))
    for s in reply.sessions:
        print(f"session {s.session_key} messages={s.message_count} processing={s.processing}")


def stream_chat(chat: chat_pb2_grpc.ChatStub, key: str, text: str) -> tuple[str, list[int]]:
    """Sends `text`, prints each token as it arrives; returns the message id and event seqs."""
    print(f"== Chat/StreamChat session={key}")
    message_id, seqs = "", []
    for item in chat.StreamChat(chat_pb2.SendMessageRequest(session_key=key, text=text)):
        kind = item.WhichOneof("kind")
        if kind == "accepted":
            message_id = item.accepted.message_id
            print(f"accepted message_id={message_id}")
        elif kind == "event":
            seqs.append(item.event.seq)
            if item.event.WhichOneof("kind") == "token":
                print(f"token {show(item.event.token.delta)}", flush=True)
        elif kind == "result":
            r = item.result
            print(f"result ok={str(r.ok).lower()} response={show(r.response)}"
                  + (f" error={show(r.error)}" if r.HasField("error") else ""))
    return message_id, seqs


def subscribe(sessions, key: str, after_seq: int, message_id: str, drop_after: int | None):
    """Prints the logged events after `after_seq`. With `drop_after`, cancels the stream after
    that many events (a lost connection); otherwise reads until the run of `message_id` ends.
    Returns the seqs seen (the `hello` note, which carries the latest seq, is not counted)."""
    note = f" (drops after {drop_after} events)" if drop_after else " (resumed)"
    print(f"== Sessions/Subscribe session={key} after_seq={after_seq}{note}")
    call = sessions.Subscribe(sessions_pb2.SubscribeRequest(session_key=key, after_seq=after_seq))
    seen = []
    try:
        for event in call:
            kind = event.WhichOneof("kind")
            if kind == "hello":
                print(f"hello latest_seq={event.seq}")
                continue
            if kind == "lagged":
                print(f"lagged missed={event.lagged.missed}")
                continue
            seen.append(event.seq)
            print(f"seq {event.seq} {kind}")
            if drop_after and len(seen) >= drop_after:
                break
            if kind == "agent_end" and event.agent_end.message_id == message_id:
                break
    finally:
        call.cancel()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:8787", help="host:port of the gateway")
    parser.add_argument("--token", default=os.environ.get("GATEWAY_AUTH_TOKEN"),
                        help="bearer token (default: $GATEWAY_AUTH_TOKEN)")
    parser.add_argument("--session", default="python-demo", help="session key")
    parser.add_argument("--text", default="Hello from the Python client", help="message")
    parser.add_argument("--drop-after", type=int, default=4,
                        help="events the first subscription reads before it drops")
    args = parser.parse_args()

    with connect(args.addr, args.token) as channel:
        sessions = sessions_pb2_grpc.SessionsStub(channel)
        chat = chat_pb2_grpc.ChatStub(channel)
        try:
            list_sessions(sessions)
            message_id, seqs = stream_chat(chat, args.session, args.text)
            if not seqs:
                print("the run streamed no events")
                return 1
            # Replay the run from the log: resume points are seqs, the last one a client saw.
            start = seqs[0] - 1
            first = subscribe(sessions, args.session, start, message_id, args.drop_after)
            resume_from = first[-1] if first else start
            rest = subscribe(sessions, args.session, resume_from, message_id, None)
        except grpc.RpcError as error:
            print(f"error {error.code().name}: {error.details()}")
            return 1
    print(f"seqs {' '.join(str(s) for s in first + rest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
