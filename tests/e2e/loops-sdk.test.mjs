// The official Loops JavaScript SDK (`loops` on npm) against a running Roster, with its
// API root pointed at Roster: what a user leaving Loops keeps running unchanged.
// scripts/test starts Roster and runs this with ROSTER_URL and ROSTER_API_KEY set.
import assert from "node:assert/strict";
import { test } from "node:test";
import { APIError, LoopsClient } from "loops";

const url = process.env.ROSTER_URL;
const key = process.env.ROSTER_API_KEY;
assert.ok(url && key, "set ROSTER_URL and ROSTER_API_KEY");

function client(apiKey = key) {
  const loops = new LoopsClient(apiKey);
  loops.apiRoot = `${url}/api/`;
  return loops;
}

async function apiError(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof APIError, `an APIError, not ${error}`);
    return error;
  }
  assert.fail("the call should have failed");
}

const loops = client();

test("the API key is checked", async () => {
  assert.deepEqual(await loops.testApiKey(), { success: true, teamName: "SDK Team" });
  const error = await apiError(client("wrong-key").testApiKey());
  assert.equal(error.statusCode, 401);
  assert.equal(error.json.success, false);
});

test("contacts: create, find, update, delete", async () => {
  assert.deepEqual(await loops.createContactProperty("plan", "string"), { success: true });
  const created = await loops.createContact({
    email: "ada@sdk.test",
    properties: { firstName: "Ada", userGroup: "Founders", userId: "sdk_u1", plan: "Pro" },
    mailingLists: { news: true },
  });
  assert.equal(created.success, true);
  assert.ok(created.id);

  const duplicate = await apiError(loops.createContact({ email: "ADA@sdk.test" }));
  assert.equal(duplicate.statusCode, 409);
  assert.equal(duplicate.json.success, false);

  const [found] = await loops.findContact({ email: "ada@sdk.test" });
  assert.equal(found.id, created.id);
  assert.equal(found.firstName, "Ada");
  assert.equal(found.userGroup, "Founders");
  assert.equal(found.plan, "Pro");
  assert.deepEqual(found.mailingLists, { news: true });
  assert.equal(found.subscribed, true);

  const updated = await loops.updateContact({ userId: "sdk_u1", properties: { lastName: "Lovelace", subscribed: false } });
  assert.equal(updated.id, created.id);
  const [after] = await loops.findContact({ userId: "sdk_u1" });
  assert.equal(after.lastName, "Lovelace");
  assert.equal(after.subscribed, false);

  assert.deepEqual(await loops.findContact({ email: "nobody@sdk.test" }), []);

  const badEmail = await apiError(loops.createContact({ email: "not-an-address" }));
  assert.equal(badEmail.statusCode, 400);
  assert.match(badEmail.message, /email/i);

  assert.deepEqual(await loops.deleteContact({ email: "ada@sdk.test" }), { success: true, message: "Contact deleted." });
  const missing = await apiError(loops.deleteContact({ email: "ada@sdk.test" }));
  assert.equal(missing.statusCode, 404);
});

test("contact properties and mailing lists", async () => {
  const properties = await loops.listContactProperties("custom");
  assert.deepEqual(properties, [{ key: "plan", label: "Plan", type: "string" }]);
  assert.deepEqual(await loops.createContactProperty("seats", "number"), { success: true });
  const exists = await apiError(loops.createContactProperty("seats", "number"));
  assert.equal(exists.statusCode, 400);
  const all = await loops.listContactProperties();
  assert.ok(all.some((p) => p.key === "email") && all.some((p) => p.key === "seats"));

  assert.deepEqual(await loops.listMailingLists(), [
    { id: "news", name: "Newsletter", description: "Product news", isPublic: true },
  ]);
});

test("events start workflows and honour Idempotency-Key", async () => {
  const event = { email: "grace@sdk.test", eventName: "signedUp", eventProperties: { plan: "Pro" } };
  const headers = { "Idempotency-Key": "sdk-event-1" };
  assert.deepEqual(await loops.sendEvent({ ...event, headers }), { success: true });
  assert.deepEqual(await loops.sendEvent({ ...event, headers }), { success: true });
  const conflict = await apiError(loops.sendEvent({ ...event, eventName: "other", headers }));
  assert.equal(conflict.statusCode, 409);

  const [grace] = await loops.findContact({ email: "grace@sdk.test" });
  assert.equal(grace.source, "API");
  const delivery = await waitForDelivery((d) => d.recipient === "grace@sdk.test");
  assert.equal(delivery.template, "welcome");
  assert.equal(delivery.state, "sent");
});

test("transactional emails are listed and sent", async () => {
  const list = await loops.listTransactionalEmails();
  const magic = list.data.find((t) => t.id === "magic_link");
  assert.ok(magic, "magic_link is listed");
  assert.ok(magic.dataVariables.includes("url"));

  const sent = await loops.sendTransactionalEmail({
    transactionalId: "magic_link",
    email: "alan@sdk.test",
    dataVariables: { url: "https://app.sdk.test/magic/1" },
    headers: { "Idempotency-Key": "sdk-tx-1" },
  });
  assert.deepEqual(sent, { success: true });
  const delivery = await waitForDelivery((d) => d.recipient === "alan@sdk.test");
  assert.equal(delivery.template, "magic_link");
  assert.equal(delivery.transactional, true);

  const missing = await apiError(
    loops.sendTransactionalEmail({ transactionalId: "magic_link", email: "alan@sdk.test" }),
  );
  assert.equal(missing.statusCode, 400);
  assert.match(missing.message, /Missing required data variable\(s\): url/);
  const unknown = await apiError(loops.sendTransactionalEmail({ transactionalId: "nope", email: "alan@sdk.test" }));
  assert.equal(unknown.statusCode, 404);
});

test("suppression is checked and lifting an unsuppressed address is refused", async () => {
  await loops.createContact({ email: "hopper@sdk.test" });
  const status = await loops.checkContactSuppression({ email: "hopper@sdk.test" });
  assert.equal(status.isSuppressed, false);
  assert.equal(status.contact.email, "hopper@sdk.test");
  const error = await apiError(loops.removeContactSuppression({ email: "hopper@sdk.test" }));
  assert.equal(error.statusCode, 400);
  const missing = await apiError(loops.checkContactSuppression({ email: "nobody@sdk.test" }));
  assert.equal(missing.statusCode, 404);
});

/** Polls Roster's own API until a delivery matching `matches` is sent (the worker runs in `roster serve`). */
async function waitForDelivery(matches) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await fetch(`${url}/api/v1/email-deliveries?state=sent`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    assert.equal(response.status, 200);
    const page = await response.json();
    const delivery = page.data.find(matches);
    if (delivery) return delivery;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail("no delivery was sent within 10 seconds");
}
