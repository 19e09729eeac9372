"""Checks GET /openapi.json of a running gateway (no token, default config): the document is
valid OpenAPI 3.1 (openapi-spec-validator), and real answers of the routes match it: their
status is documented for the route, their content type is the documented one, and their JSON
body validates against the documented schema. scripts/test.sh runs it against the gateway of
the README smoke check.

Usage: openapi_check.py <port>
"""

import json
import sys
import urllib.error
import urllib.request

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

BASE = f"http://127.0.0.1:{sys.argv[1]}"


def call(method, path, body=None):
    """(status, media type, raw body) of one request; a stream is closed after its headers."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        raw = b"" if media == "text/event-stream" else response.read()
        return response.status, media, raw


def resolve(spec, node):
    while "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(spec, method, template, path=None, body=None, expect=None):
    """Calls `path` (default: the template itself) and checks the answer against the document's
    operation `method template`; returns the parsed JSON body."""
    path = path or template
    status, media, raw = call(method, path, body)
    where = f"{method} {path} -> {status}"
    if expect is not None:
        assert status == expect, f"{where}: expected {expect}: {raw[:300]!r}"
    operation = spec["paths"][template][method.lower()]
    response = operation["responses"].get(str(status)) or operation["responses"].get("default")
    assert response is not None, f"{where}: status not documented"
    content = resolve(spec, response).get("content")
    if not content:
        assert not raw, f"{where}: a body where the document has none"
        return None
    documented = {key.split(";")[0].strip(): value for key, value in content.items()}
    assert media in documented, f"{where}: {media} is not one of {sorted(documented)}"
    if media != "application/json":
        return None
    value = json.loads(raw)
    schema = {**documented[media]["schema"], "components": spec["components"]}
    try:
        OAS31Validator(schema).validate(value)
    except Exception as error:  # the validator's message names the field
        sys.exit(f"{where}: the answer does not match the document: {error}\n{value}")
    return value


def main():
    status, media, raw = call("GET", "/openapi.json")
    assert status == 200 and media == "application/json", (status, media)
    spec = json.loads(raw)
    validate(spec, cls=OpenAPIV31SpecValidator)
    operations = sum(len(item) for item in spec["paths"].values())
    print(f"openapi.json: valid OpenAPI {spec['openapi']}, {operations} operations")

    check(spec, "GET", "/health", expect=200)
    check(spec, "GET", "/ready", expect=200)
    check(spec, "GET", "/openapi.json", expect=200)
    models = check(spec, "GET", "/models", expect=200)
    check(spec, "POST", "/sessions/{key}/messages", "/sessions/main/messages", {"text": "hi"}, 200)
    check(spec, "POST", "/sessions/{key}/messages", "/sessions/main/messages", {}, 400)
    check(spec, "GET", "/sessions", "/sessions?limit=1", expect=200)
    check(spec, "GET", "/sessions/{key}", "/sessions/main", expect=200)
    check(spec, "GET", "/sessions/{key}", "/sessions/nope", expect=404)
    check(spec, "PATCH", "/sessions/{key}", "/sessions/main", {"name": "Main"}, 200)
    check(spec, "DELETE", "/sessions/{key}", "/sessions/main", expect=400)
    check(spec, "GET", "/sessions/{key}/history", "/sessions/main/history", expect=200)
    check(spec, "GET", "/sessions/{key}/history", "/sessions/main/history?limit=0", expect=400)
    check(spec, "GET", "/sessions/{key}/state", "/sessions/main/state", expect=200)
    check(spec, "GET", "/sessions/{key}/queue", "/sessions/main/queue", expect=200)
    check(spec, "GET", "/sessions/{key}/events", "/sessions/main/events", expect=200)
    check(spec, "POST", "/sessions/{key}/model", "/sessions/main/model", models["current"], 200)
    check(spec, "POST", "/sessions/{key}/thinking", "/sessions/main/thinking", {"level": "low"}, 200)
    check(spec, "POST", "/sessions/{key}/commands", "/sessions/main/commands", {"command": "help"}, 200)
    check(spec, "POST", "/sessions/{key}/abort", "/sessions/main/abort", expect=200)
    check(spec, "POST", "/sessions/{key}/reload", "/sessions/main/reload", expect=200)
    check(spec, "DELETE", "/sessions/{key}/queue/{messageId}", "/sessions/main/queue/none", expect=200)
    check(spec, "POST", "/sessions/{key}/reset", "/sessions/main/reset", expect=200)

    check(spec, "POST", "/v1/conversations", body={"conversationId": "openapi-check"}, expect=201)
    check(spec, "GET", "/v1/conversations", expect=200)
    check(spec, "GET", "/v1/conversations/{id}", "/v1/conversations/openapi-check", expect=200)
    chat = {"conversationId": "openapi-check", "message": "hello"}
    check(spec, "POST", "/v1/chat", body=chat, expect=200)
    check(spec, "POST", "/v1/chat", body={"message": ""}, expect=400)
    adapter = {"source": "slack", "workspaceId": "w", "channelId": "c", "message": "hello"}
    check(spec, "POST", "/v1/adapters/chat", body=adapter, expect=200)
    check(spec, "POST", "/v1/chat/stream", body=chat, expect=200)
    check(spec, "POST", "/sessions/{key}/chat", "/sessions/main/chat", {"text": "hi"}, 200)
    check(spec, "POST", "/v1/conversations/{id}/abort", "/v1/conversations/openapi-check/abort", expect=200)
    check(spec, "DELETE", "/v1/conversations/{id}", "/v1/conversations/openapi-check", expect=200)

    check(spec, "POST", "/memory/remember", body={"content": "Likes green tea", "kind": "preference"}, expect=200)
    check(spec, "POST", "/memory/remember", body={}, expect=400)
    check(spec, "GET", "/memory/status", expect=200)
    check(spec, "GET", "/memory/core", expect=200)
    check(spec, "POST", "/memory/search", body={"query": "tea"}, expect=200)
    check(spec, "POST", "/memory/forget", body={"key": "likes-green-tea"}, expect=200)
    check(spec, "POST", "/memory/rebuild", body={}, expect=200)

    check(spec, "GET", "/config", expect=200)
    check(spec, "GET", "/channels/status", expect=200)
    check(spec, "GET", "/logs", "/logs?limit=5", expect=200)
    check(spec, "GET", "/metrics", expect=200)
    if "/" in spec["paths"]:
        check(spec, "GET", "/", expect=200)
    print("openapi.json: real answers match the document")


if __name__ == "__main__":
    main()
