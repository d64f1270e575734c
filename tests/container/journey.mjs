// An app's first journey against Galley's container, through the real
// @supabase/supabase-js (tests/sdk's node_modules): tests/container/run starts the
// deploy/compose.yaml stack and runs this with
//
//   GALLEY_URL    where the container's API is published (also Galley's public URL)
//   MAIL_URL      MailDev's web inbox and REST API (GET /email)
//   ANON_KEY, SERVICE_KEY   from `galley keys` run inside the container
//
// A table with owner rules is made through the admin API; a user signs up, confirms
// through the link MailDev caught, signs in, writes and reads a row; another user and
// anon see nothing of it.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";

// The packages tests/sdk installs (npm ci there), resolved from that directory.
const require = createRequire(new URL("../sdk/package.json", import.meta.url));
const { createClient } = require("@supabase/supabase-js");
const ws = require("ws");

const url = must("GALLEY_URL");
const mailUrl = must("MAIL_URL");
const anonKey = must("ANON_KEY");
const serviceKey = must("SERVICE_KEY");

function must(name) {
  const value = process.env[name];
  if (!value) throw new Error(`journey.mjs: ${name} is not set`);
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const step = (text) => console.log(`journey: ok  ${text}`);

function client(key = anonKey) {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws },
  });
}

async function admin(method, path, body) {
  const response = await fetch(`${url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} /admin/v1${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// The first link in the newest mail MailDev caught for `email`, waiting up to 20 s.
async function mailedLink(email) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const response = await fetch(`${mailUrl}/email`);
    assert.equal(response.status, 200, `GET ${mailUrl}/email`);
    const mails = (await response.json()).filter((mail) =>
      (mail.to ?? []).some((to) => to.address === email),
    );
    if (mails.length > 0) {
      const mail = mails[mails.length - 1];
      const link = (mail.text ?? "").split(/\s+/).find((word) => word.startsWith("http"));
      assert.ok(link, `no link in the mail "${mail.subject}": ${mail.text}`);
      return { subject: mail.subject, link };
    }
    await sleep(200);
  }
  throw new Error(`MailDev caught no mail to ${email} within 20 s`);
}

const table = `notes_${randomUUID().slice(0, 8)}`;
await admin("POST", "/tables", {
  name: table,
  columns: [
    { name: "body", type: "text", nullable: false },
    { name: "owner", type: "uuid", default: { expression: "auth.uid()" } },
  ],
});
const owner = { preset: "owner", column: "owner" };
await admin("PUT", `/tables/${table}/rules`, {
  select: owner,
  insert: owner,
  update: owner,
  delete: owner,
});
step(`table ${table} with owner rules, through the admin API (service_role key)`);

const email = `ada-${randomUUID().slice(0, 8)}@example.com`;
const password = "a container-grown passphrase";
const ada = client();
const signedUp = await ada.auth.signUp({ email, password });
assert.equal(signedUp.error, null, JSON.stringify(signedUp.error));
assert.equal(signedUp.data.session, null, "with SMTP configured, the address is confirmed first");
const early = await ada.auth.signInWithPassword({ email, password });
assert.equal(early.error?.code, "email_not_confirmed");
step("signed up; signing in before confirming is refused (email_not_confirmed)");

const { subject, link } = await mailedLink(email);
assert.ok(link.startsWith(`${url}/auth/v1/verify?`), `the link starts with the public URL: ${link}`);
const followed = await fetch(link, { redirect: "manual" });
assert.equal(followed.status, 303, `GET the confirmation link: ${followed.status}`);
assert.match(followed.headers.get("location") ?? "", /#access_token=.*type=signup/);
step(`confirmed through MailDev's inbox ("${subject}"), the link redirected (303)`);

const signedIn = await ada.auth.signInWithPassword({ email, password });
assert.equal(signedIn.error, null, JSON.stringify(signedIn.error));
const adaId = signedIn.data.user.id;
step("signed in");

const wrote = await ada.from(table).insert({ body: "written from the container journey" }).select("body, owner");
assert.equal(wrote.error, null, JSON.stringify(wrote.error));
assert.deepEqual(wrote.data, [{ body: "written from the container journey", owner: adaId }]);
const read = await ada.from(table).select("body, owner");
assert.equal(read.error, null, JSON.stringify(read.error));
assert.deepEqual(read.data, [{ body: "written from the container journey", owner: adaId }]);
step("inserted a row and read it back as its owner");

const bobEmail = `bob-${randomUUID().slice(0, 8)}@example.com`;
const created = await client(serviceKey).auth.admin.createUser({
  email: bobEmail,
  password,
  email_confirm: true,
});
assert.equal(created.error, null, JSON.stringify(created.error));
const bob = client();
const bobIn = await bob.auth.signInWithPassword({ email: bobEmail, password });
assert.equal(bobIn.error, null, JSON.stringify(bobIn.error));
const bobSees = await bob.from(table).select("body");
assert.equal(bobSees.error, null, JSON.stringify(bobSees.error));
assert.deepEqual(bobSees.data, [], "another user sees none of ada's rows");
const anonSees = await client().from(table).select("body");
assert.deepEqual(anonSees.data ?? [], [], "anon sees none of ada's rows");
step("another user and anon see none of it (row-level security)");

const all = await client(serviceKey).from(table).select("body");
assert.equal(all.error, null, JSON.stringify(all.error));
assert.equal(all.data.length, 1, "service_role sees the one row");
step("service_role sees the row");
