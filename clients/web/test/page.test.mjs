// The grpc-web page in headless Chromium (Debian `chromium` through playwright-core), served
// from its own origin by serve.mjs against a gateway with that origin as `cors_origin` and a
// bearer token: every request it makes to the gateway is grpc-web, a call without the token
// shows UNAUTHENTICATED, and a slow echo reply streams into the DOM in several pieces before
// its final text.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startGateway } from "../../testing/gateway.mjs";
import { serve } from "../serve.mjs";

const TOKEN = "web-client-secret";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
  "--no-first-run", "--disable-component-update", "--disable-sync"];
let site, gateway, browser;
before(async () => {
  site = await serve(0);
  gateway = await startGateway({ bearer_token: TOKEN, cors_origin: site.origin });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ARGS });
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
  await site?.close();
});

const words = (n) => Array.from({ length: n }, (_, i) => `word${i}`).join(" ");

test("the page lists sessions and streams a StreamChat reply over grpc-web", async () => {
  const page = await browser.newPage();
  const calls = []; // every request from the page to the gateway, with all its headers
  page.on("request", (request) => {
    if (request.url().startsWith(gateway.url)) calls.push(request.allHeaders().then((headers) => ({ url: request.url(), method: request.method(), headers })));
  });
  const responses = [];
  page.on("response", (response) => {
    if (response.url().startsWith(gateway.url)) responses.push(response.allHeaders().then((headers) => ({ url: response.url(), status: response.status(), headers })));
  });
  await page.goto(`${site.origin}/?gateway=${encodeURIComponent(gateway.url)}`);

  // On load, with no token yet: the gateway's status reaches the page through grpc-web trailers.
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("ListSessions failed"));
  assert.equal(await page.textContent("#status"), "ListSessions failed: Unauthenticated: Unauthorized");

  await page.fill("#token", TOKEN);
  await page.click("#connect");
  await page.waitForSelector("#sessions li[data-key='main']");

  // Every distinct text of the reply element, as the DOM changes.
  await page.evaluate(() => {
    window.replyStates = [];
    const reply = document.getElementById("reply");
    new MutationObserver(() => {
      if (reply.textContent && window.replyStates.at(-1) !== reply.textContent) window.replyStates.push(reply.textContent);
    }).observe(reply, { subtree: true, childList: true, characterData: true });
  });
  const text = words(16);
  await page.fill("#session", "web-test");
  await page.fill("#input", `${text}\n!delay 40`);
  await page.click("#send");
  await page.waitForSelector('#reply[data-state="done"]', { timeout: 30000 });
  const states = await page.evaluate(() => window.replyStates);
  assert.equal(states.at(-1), text, JSON.stringify(states));
  assert.equal(await page.textContent("#reply"), text);
  const partial = states.slice(0, -1).filter((s) => text.startsWith(s) && s.length < text.length);
  assert.ok(partial.length >= 3, `at least three intermediate DOM states: ${JSON.stringify(states)}`);
  await page.waitForSelector("#sessions li[data-key='web-test']"); // listed again after the run

  // What went over the wire: grpc-web POSTs only, each with the token.
  const sent = (await Promise.all(calls)).filter((c) => c.method !== "OPTIONS");
  const paths = sent.map((c) => new URL(c.url).pathname);
  assert.ok(paths.includes("/agentgateway.v1.Sessions/ListSessions"), JSON.stringify(paths));
  assert.ok(paths.includes("/agentgateway.v1.Chat/StreamChat"), JSON.stringify(paths));
  for (const call of sent) {
    assert.equal(call.method, "POST", call.url);
    assert.match(call.headers["content-type"], /^application\/grpc-web/, `${call.url}: ${call.headers["content-type"]}`);
  }
  const authorized = sent.filter((c) => c.headers.authorization === `Bearer ${TOKEN}`);
  assert.equal(authorized.length, sent.length - 1, "all but the first, tokenless ListSessions carry the token");
  for (const response of await Promise.all(responses)) {
    assert.equal(response.status, 200, response.url);
    assert.match(response.headers["content-type"] ?? "", /^application\/grpc-web/, response.url);
    assert.equal(response.headers["access-control-allow-origin"], site.origin, response.url);
  }

  // The gateway agrees on what was said.
  const history = await fetch(`${gateway.url}/sessions/web-test/history`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json());
  assert.deepEqual(history.messages.map((m) => [m.role, m.parts[0].text]), [["user", `${text}\n!delay 40`], ["assistant", text]]);
  await page.close();
});
