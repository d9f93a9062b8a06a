// The dashboard in a real headless Chromium (Debian's, driven by playwright-core):
// log in with the API key, search the audience, open a contact, unsubscribe it and see
// the API agree, see the charts render, and keep a screenshot of every page (also at
// phone width). Clerk events are signed with Svix's own signer.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { test } from "node:test";
import { chromium } from "playwright-core";
import { Webhook } from "svix";

const url = process.env.ROSTER_URL;
const key = process.env.ROSTER_API_KEY;
const secret = process.env.CLERK_WEBHOOK_SECRET;
const shots = process.env.SCREENSHOTS ?? "target/screenshots";
assert.ok(url && key && secret, "set ROSTER_URL, ROSTER_API_KEY and CLERK_WEBHOOK_SECRET");
mkdirSync(shots, { recursive: true });

async function api(method, path, body) {
  const response = await fetch(`${url}/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json() };
}

async function clerk(type, data, at = Date.now()) {
  const body = JSON.stringify({ object: "event", type, timestamp: at, data });
  const id = `msg_${randomUUID()}`;
  const timestamp = new Date();
  const signature = new Webhook(secret).sign(id, timestamp, body);
  const response = await fetch(`${url}/webhooks/clerk`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "svix-id": id,
      "svix-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
      "svix-signature": signature,
    },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

function user(n, email) {
  return {
    id: `user_dash_${n}`,
    object: "user",
    first_name: ["Grace", "Alan", "Edsger"][n % 3],
    last_name: ["Hopper", "Turing", "Dijkstra"][n % 3],
    primary_email_address_id: `idn_${n}`,
    email_addresses: [{ id: `idn_${n}`, email_address: email }],
    created_at: Date.now(),
    updated_at: Date.now(),
  };
}

test("the dashboard: log in, search, a contact, unsubscribe, charts, every page", async () => {
  const day = 86_400_000;
  for (let n = 0; n < 6; n++) {
    await clerk("user.created", user(n, `dash${n}@dashboard.test`), Date.now() - n * day);
    await clerk("session.created", { id: `sess_dash_${n}`, object: "session", user_id: `user_dash_${n}` }, Date.now() - n * day);
  }
  // An API event on dash3's timeline, shown with its properties.
  const sent = await api("POST", "/v1/events/send", { email: "dash3@dashboard.test", eventName: "planUpgraded", eventProperties: { plan: "pro" } });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  await clerk("waitlistEntry.created", { id: "wle_dash", object: "waitlist_entry", email_address: "waiting@dashboard.test", status: "pending", created_at: Date.now(), updated_at: Date.now() });

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${url}/`);
    assert.match(page.url(), /\/login/, "not logged in: the login page");
    await page.screenshot({ path: `${shots}/login.png` });
    await page.fill('input[name="key"]', "not-the-key");
    await page.click('button[type="submit"]');
    assert.match(await page.textContent("body"), /That is not the API key/);
    await page.fill('input[name="key"]', key);
    await page.click('button[type="submit"]');
    await page.waitForSelector("h1:has-text('Audience')");
    const cookie = (await page.context().cookies()).find((c) => c.name === "roster_session");
    assert.ok(cookie.httpOnly && cookie.sameSite === "Strict", "an HttpOnly, SameSite=Strict session cookie");
    assert.ok((await page.locator("tbody tr").count()) >= 6);
    await page.screenshot({ path: `${shots}/audience.png`, fullPage: true });

    await page.fill('input[name="email"]', "dash3@");
    await page.click('form.filters button[type="submit"]');
    await page.waitForURL(/email=dash3/);
    assert.equal(await page.locator("tbody tr").count(), 1);

    await page.click("text=dash3@dashboard.test");
    await page.waitForSelector("h1:has-text('dash3@dashboard.test')");
    // The onboarding run of this contact's user.created, its welcome sent by the worker.
    for (let attempt = 0; ; attempt++) {
      if (/send welcome\s*— email sent/.test(await page.textContent("body"))) break;
      assert.ok(attempt < 50, "the welcome email shows as sent on the contact's timeline");
      await page.waitForTimeout(200);
      await page.reload();
    }
    assert.match(await page.textContent(".card:has-text('onboarding')"), /active/);
    assert.ok(await page.locator("table a:has-text('user.created')").count(), "the Clerk event is on the timeline");
    assert.match(await page.textContent("body"), /planUpgraded[\s\S]*"plan":\s*"pro"/, "the API event and its properties are on the timeline");
    await page.screenshot({ path: `${shots}/contact.png`, fullPage: true });

    // A form without the page's CSRF token is refused.
    const forged = await page.evaluate(async (action) => {
      const response = await fetch(action, { method: "POST", body: new URLSearchParams({ csrf: "forged", subscribed: "no" }) });
      return response.status;
    }, new URL("subscription", page.url() + "/").pathname);
    assert.equal(forged, 403);

    await page.click("button:has-text('Unsubscribe')");
    await page.waitForSelector(".notice:has-text('Unsubscribed.')");
    const [found] = (await api("GET", "/v1/contacts/find?email=dash3%40dashboard.test")).body;
    assert.equal(found.subscribed, false, "the API sees the unsubscribe");

    // A segment: built from the audience page's filter, counted, saved, shown.
    await page.goto(`${url}/?email=dash`);
    await page.click("a:has-text('Save as a segment')");
    await page.waitForSelector("h1:has-text('Segments')");
    const matched = Number(await page.textContent("#segment-count"));
    assert.ok(matched >= 3, `the dash contacts match (${matched})`);
    await page.selectOption('select[name="p0"]', "email");
    await page.selectOption('select[name="o0"]', "startsWith");
    await page.fill('input[name="v0"]', "dash3@");
    await page.click("form.filters:has(select[name=p0]) button[type=submit]");
    await page.waitForURL(/p0=email/);
    assert.equal(await page.textContent("#segment-count"), "1");
    await page.fill('input[name="name"]', "Dash three");
    await page.click("button:has-text('Save segment')");
    await page.waitForSelector("h1:has-text('Dash three')");
    assert.equal(await page.textContent("#segment-count"), "1");
    await page.screenshot({ path: `${shots}/segment.png`, fullPage: true });
    const segments = (await api("GET", "/v1/audience-segments")).body.data;
    assert.ok(segments.some((s) => s.name === "Dash three"), "the API sees the saved segment");

    // A campaign: created as a draft to that segment, its email previewed.
    await page.goto(`${url}/campaigns`);
    await page.fill('input[name="name"]', "Dash launch");
    await page.selectOption('select[name="template"]', "tips");
    await page.selectOption('select[name="segment"]', { label: "Dash three" });
    await page.click("button:has-text('Create')");
    await page.waitForSelector("h1:has-text('Dash launch')");
    assert.equal(await page.textContent("#campaign-status"), "Draft");
    assert.match(await page.locator("iframe.preview").getAttribute("srcdoc"), /tips|Tips/);
    await page.screenshot({ path: `${shots}/campaign.png`, fullPage: true });

    await page.goto(`${url}/analytics`);
    await page.waitForSelector(".chart svg");
    assert.ok((await page.locator(".chart svg").count()) >= 5, "five charts");
    assert.ok((await page.locator(".chart svg rect, .chart svg polyline").count()) > 5, "with bars and lines");
    await page.screenshot({ path: `${shots}/analytics.png`, fullPage: true });

    for (const [name, path, heading] of [
      ["workflows", "/workflows", "Workflows"],
      ["emails", "/emails", "Emails"],
      ["events", "/events", "Events"],
      ["preview", "/preview?template=welcome&contact=dash1%40dashboard.test", "Preview"],
    ]) {
      await page.goto(`${url}${path}`);
      await page.waitForSelector(`h1:has-text('${heading}')`);
      await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
    }
    assert.match(await page.locator("iframe.preview").getAttribute("srcdoc"), /Welcome/);

    await page.goto(`${url}/workflows`);
    const onboarding = page.locator(".card:has(h2:text-is('onboarding'))");
    assert.match(await onboarding.textContent(), /Versions[\s\S]*\(the file's\)/, "the onboarding workflow lists its version");

    await page.goto(`${url}/events`);
    await page.click("tbody tr a >> nth=0");
    await page.waitForSelector("pre");
    await page.screenshot({ path: `${shots}/event.png`, fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${url}/`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `nothing wider than a phone (${overflow}px)`);
    await page.screenshot({ path: `${shots}/audience-phone.png`, fullPage: true });

    await page.setViewportSize({ width: 1280, height: 900 });
    const copied = (await page.context().cookies()).find((c) => c.name === "roster_session");
    await page.click("button:has-text('Log out')");
    await page.waitForURL(/\/login/);
    await page.goto(`${url}/emails`);
    assert.match(page.url(), /\/login/, "logged out");
    // The session ended on the server: a copy of its cookie no longer works.
    await page.context().addCookies([copied]);
    await page.goto(`${url}/emails`);
    assert.match(page.url(), /\/login/, "a copied cookie of the ended session is refused");
  } finally {
    await browser.close();
  }
});
