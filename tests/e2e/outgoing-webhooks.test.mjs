// Roster's outgoing webhooks received by a real HTTP server and verified with Svix's
// own library (`svix` on npm), as a receiver of Loops' webhooks would. scripts/e2e-test
// configures Roster with an endpoint on RECEIVER_PORT signed with RECEIVER_SECRET.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { Webhook } from "svix";

const url = process.env.ROSTER_URL;
const key = process.env.ROSTER_API_KEY;
const port = Number(process.env.RECEIVER_PORT);
const secret = process.env.RECEIVER_SECRET;
assert.ok(url && key && port && secret, "set ROSTER_URL, ROSTER_API_KEY, RECEIVER_PORT and RECEIVER_SECRET");

test("a contact.created webhook arrives, verifiable with Svix's library", async () => {
  const received = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      received.push({ path: request.url, headers: request.headers, body });
      response.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  try {
    const email = `hooked-${Date.now()}@e2e.test`;
    const created = await fetch(`${url}/api/v1/contacts/create`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ email, firstName: "Hook", mailingLists: { news: true } }),
    });
    const answer = await created.text();
    assert.equal(created.status, 200, answer);
    const { id } = JSON.parse(answer);

    const deadline = Date.now() + 15_000;
    let post;
    while (!post && Date.now() < deadline) {
      post = received.find((p) => p.body.includes(email) && p.body.includes('"contact.created"'));
      if (!post) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(post, `no contact.created for ${email} within 15 s (got ${received.length} posts)`);
    assert.equal(post.path, "/hooks/roster");
    assert.ok(post.headers["webhook-id"].startsWith("msg_"));
    // Throws unless the signature, made with the secret, matches body and headers.
    const event = new Webhook(secret).verify(post.body, {
      "webhook-id": post.headers["webhook-id"],
      "webhook-timestamp": post.headers["webhook-timestamp"],
      "webhook-signature": post.headers["webhook-signature"],
    });
    assert.equal(event.eventName, "contact.created");
    assert.equal(event.webhookSchemaVersion, "1.0.0");
    assert.deepEqual(event.contactIdentity, { id, email, userId: null });
    assert.equal(event.contact.firstName, "Hook");
    assert.deepEqual(event.contact.mailingLists, { news: true });
    assert.throws(() => new Webhook("whsec_" + Buffer.from("another secret").toString("base64")).verify(post.body, post.headers));

    const joined = received.find((p) => p.body.includes(email) && p.body.includes("contact.mailingList.subscribed"));
    if (joined) {
      const list = new Webhook(secret).verify(joined.body, joined.headers);
      assert.equal(list.mailingList.name, "Newsletter");
    }
  } finally {
    server.close();
  }
});
