// The built-in chat page in headless Chromium (Debian `chromium`, driven by playwright-core):
// with a bearer token typed into the page, a reply streams into the DOM in visible steps
// before its final text, and a second, slow run is aborted from the page's button.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startGateway } from "./gateway.mjs";

const TOKEN = "page-secret";
let gateway, browser;
before(async () => {
  gateway = await startGateway({ bearer_token: TOKEN });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
});

const words = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");

test("the page streams a reply in steps and aborts a slow run", async () => {
  const page = await browser.newPage();
  await page.goto(`${gateway.url}/`);
  await page.fill("#token", TOKEN);
  await page.press("#token", "Tab"); // `change`: the page stores the token and reloads sessions
  await page.waitForFunction(() => document.querySelector("#session option[value='main']"));

  // Every distinct text of the newest reply, as the DOM changes.
  await page.evaluate(() => {
    window.replyStates = [];
    const observer = new MutationObserver(() => {
      const replies = document.querySelectorAll("#messages .assistant");
      const text = replies[replies.length - 1]?.querySelector(".text")?.textContent ?? "";
      if (text && window.replyStates.at(-1) !== text) window.replyStates.push(text);
    });
    observer.observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
  });
  const reply = words(12);
  await page.fill("#input", `${reply}\n!delay 80`);
  await page.click("#send");
  await page.waitForSelector('#messages .assistant:last-child[data-state="done"]', { timeout: 20000 });
  const states = await page.evaluate(() => window.replyStates);
  assert.equal(states.at(-1), reply, JSON.stringify(states));
  const partial = states.slice(0, -1).filter((s) => reply.startsWith(s) && s.length < reply.length);
  assert.ok(partial.length >= 3, `at least three intermediate states: ${JSON.stringify(states)}`);

  // A second, slow run, aborted from the page while it streams.
  await page.fill("#input", `${words(400)}\n!delay 50`);
  await page.click("#send");
  await page.waitForSelector('#messages .assistant:last-child[data-state="streaming"]', { timeout: 20000 });
  await page.click("#abort");
  await page.waitForSelector('#messages .assistant:last-child[data-state="aborted"]', { timeout: 20000 });
  const shown = await page.textContent("#messages .assistant:last-child .text");
  assert.ok(shown.length > 0 && words(400).startsWith(shown), "the partial reply stays on the page");

  // The gateway agrees: the run ended aborted, with its partial text kept.
  const history = await fetch(`${gateway.url}/sessions/main/history`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  }).then((r) => r.json());
  const last = history.messages.at(-1);
  assert.equal(last.role, "assistant");
  assert.ok(last.parts.some((p) => p.type === "error" && p.code === "aborted"), JSON.stringify(last));
  await page.close();
});
