// The OpenAPI document Roster serves at /api/openapi.json, checked by an OpenAPI
// validator nobody on the team wrote (@apidevtools/swagger-parser), and checked to
// document every route the Loops SDK test calls.
import assert from "node:assert/strict";
import { test } from "node:test";
import SwaggerParser from "@apidevtools/swagger-parser";

const url = process.env.ROSTER_URL;
assert.ok(url, "set ROSTER_URL");

test("the OpenAPI document is valid and covers both APIs", async () => {
  const response = await fetch(`${url}/api/openapi.json`);
  assert.equal(response.status, 200);
  const document = await response.json();
  await SwaggerParser.validate(structuredClone(document));
  for (const path of [
    "/v1/api-key",
    "/v1/contacts/create",
    "/v1/contacts/update",
    "/v1/contacts/find",
    "/v1/contacts/delete",
    "/v1/contacts/properties",
    "/v1/contacts/suppression",
    "/v1/lists",
    "/v1/events/send",
    "/v1/transactional",
    "/v1/contacts",
    "/v1/contacts/{id}",
    "/v1/events",
    "/v1/workflow-runs",
    "/v1/email-deliveries",
    "/v1/jobs",
    "/v1/analytics/growth",
    "/v1/analytics/active-users",
  ]) {
    assert.ok(document.paths[path], `${path} is documented`);
  }
});
