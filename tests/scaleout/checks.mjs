// The scale-out checks, run by tests/scaleout/run against three Galley instances behind
// HAProxy. The load balancer names the instance that answered in X-Galley-Backend.
// Prints its figures; exits non-zero on the first failed check.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";

// supabase-js from the SDK suite's node_modules.
const require = createRequire(new URL("../sdk/package.json", import.meta.url));
const { createClient } = require("@supabase/supabase-js");
const ws = require("ws");

const lb = process.env.SCALEOUT_LB;
const instances = process.env.SCALEOUT_INSTANCES.split(",");
const pids = process.env.SCALEOUT_PIDS.split(" ").map(Number);
const anonKey = process.env.SCALEOUT_ANON_KEY;
const serviceKey = process.env.SCALEOUT_SERVICE_KEY;
const mailFile = process.env.SCALEOUT_MAIL_FILE;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line) => console.log(`scaleout: ${line}`);

/// A supabase-js client through the load balancer that remembers which instance
/// answered its last request.
function lbClient() {
  const seen = { backend: null };
  const client = createClient(lb, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws },
    global: {
      fetch: async (...args) => {
        const response = await fetch(...args);
        seen.backend = response.headers.get("x-galley-backend");
        return response;
      },
    },
  });
  return { client, seen };
}

function mails() {
  if (!existsSync(mailFile)) return [];
  return readFileSync(mailFile, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

async function mailedLink(email) {
  for (let i = 0; i < 200; i++) {
    const mine = mails().filter((m) => m.to.includes(email));
    if (mine.length > 0) return mine[0].text.split(/\s+/).find((word) => word.startsWith("http"));
    await sleep(100);
  }
  throw new Error(`no mail reached ${email}`);
}

async function post(url, path, body, key = anonKey) {
  const response = await fetch(url + path, {
    method: "POST",
    headers: { apikey: key, authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, backend: response.headers.get("x-galley-backend"), body: await response.json().catch(() => null) };
}

/// Creates a table of labelled rows through the admin API of `instance`.
async function createTable(instance, name) {
  const created = await post(instance, "/admin/v1/tables", {
    name,
    primary_key: "bigint",
    columns: [{ name: "label", type: "text", nullable: false }],
  }, serviceKey);
  assert.equal(created.status, 201, JSON.stringify(created.body));
}

// 1. Sign up on one instance, sign in on another.
const password = "scale-out correct horse 42";
const email = `scale-${randomUUID()}@example.com`;
{
  const { client, seen } = lbClient();
  const { error } = await client.auth.signUp({ email, password });
  assert.equal(error, null, `sign-up: ${error && error.message}`);
  const signedUpOn = seen.backend;
  const confirm = await fetch(await mailedLink(email), { redirect: "manual" });
  assert.equal(confirm.status, 303, "the confirmation link redirects");
  let signedInOn = signedUpOn;
  for (let attempt = 0; attempt < 3 && signedInOn === signedUpOn; attempt++) {
    const { data, error: signInError } = await client.auth.signInWithPassword({ email, password });
    assert.equal(signInError, null, `sign-in: ${signInError && signInError.message}`);
    assert.ok(data.session.access_token);
    signedInOn = seen.backend;
  }
  assert.notEqual(signedInOn, signedUpOn, "signed in on another instance");
  log(`signed up on ${signedUpOn}, signed in on ${signedInOn}`);
}

// 2. Refresh token reuse is caught on an instance other than the one that rotated it.
{
  const { client, seen } = lbClient();
  const { data } = await client.auth.signInWithPassword({ email, password });
  const first = data.session.refresh_token;
  const refreshed = await client.auth.refreshSession({ refresh_token: first });
  assert.equal(refreshed.error, null);
  const rotatedOn = seen.backend;
  const second = refreshed.data.session.refresh_token;
  const reuse = await post(lb, "/auth/v1/token?grant_type=refresh_token", { refresh_token: first });
  assert.notEqual(reuse.backend, rotatedOn, "the reuse reaches another instance");
  assert.equal(reuse.status, 400);
  assert.equal(reuse.body.error_code, "refresh_token_already_used");
  // Reuse ends the whole session: the newest token is refused too, on any instance.
  const after = await post(lb, "/auth/v1/token?grant_type=refresh_token", { refresh_token: second });
  assert.equal(after.status, 400, "the session ended everywhere");
  log(`refresh rotated on ${rotatedOn}, reuse refused on ${reuse.backend}, session ended (checked on ${after.backend})`);
}

// 3. A table created through the admin API on one instance is served by all three
// within a second.
{
  const table = `scale_${randomUUID().slice(0, 8)}`;
  await createTable(instances[0], table);
  const start = performance.now();
  const servedAfter = await Promise.all(instances.slice(1).map(async (url) => {
    for (;;) {
      const response = await fetch(`${url}/rest/v1/${table}?select=id`, {
        headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}` },
      });
      if (response.status === 200) return performance.now() - start;
      if (performance.now() - start > 5000) return Infinity;
      await sleep(10);
    }
  }));
  log(`table ${table} served by the two other instances after ${servedAfter.map((ms) => `${ms.toFixed(0)} ms`).join(" and ")}`);
  assert.ok(servedAfter.every((ms) => ms < 1000), "within one second");
}

// 4. Each outbox mail is delivered exactly once, whichever instances drain the outbox.
{
  const before = mails().length;
  const addresses = Array.from({ length: 30 }, (_, i) => `outbox-${i}-${randomUUID()}@example.com`);
  const backends = new Set();
  for (const address of addresses) {
    const signup = await post(lb, "/auth/v1/signup", { email: address, password });
    assert.equal(signup.status, 200, JSON.stringify(signup.body));
    backends.add(signup.backend);
  }
  for (let i = 0; i < 300 && mails().length < before + addresses.length; i++) await sleep(100);
  await sleep(3000); // a duplicate would arrive meanwhile
  const received = mails().slice(before);
  for (const address of addresses) {
    const copies = received.filter((m) => m.to.includes(address)).length;
    assert.equal(copies, 1, `${address} got ${copies} mails`);
  }
  assert.equal(received.length, addresses.length);
  log(`${addresses.length} sign-ups through ${backends.size} instances, ${received.length} mails delivered, each once`);
}

// 5. The limit that protects an account holds across instances.
{
  const target = `guessed-${randomUUID()}@example.com`;
  const statuses = [];
  const backends = new Set();
  for (let i = 0; i < 12; i++) {
    const attempt = await post(lb, "/auth/v1/token?grant_type=password", { email: target, password: `guess ${i}` });
    statuses.push(attempt.status);
    backends.add(attempt.backend);
  }
  const allowed = statuses.filter((s) => s === 400).length;
  const limited = statuses.filter((s) => s === 429).length;
  log(`12 password guesses at one account through ${backends.size} instances: ${allowed} answered, ${limited} rate limited (limit 5)`);
  assert.equal(backends.size, 3);
  assert.equal(allowed, 5);
  assert.equal(limited, 7);
}

// 6. SIGTERM to one instance under steady load: no 5xx, no connection error.
{
  const table = `load_${randomUUID().slice(0, 8)}`;
  await createTable(instances[0], table);
  const rules = await fetch(`${instances[0]}/admin/v1/tables/${table}/rules`, {
    method: "PUT",
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify({ select: { preset: "public" } }),
  });
  assert.equal(rules.status, 200);
  const inserted = await post(instances[0], `/rest/v1/${table}`, { label: "steady" }, serviceKey);
  assert.equal(inserted.status, 201);
  await sleep(1000); // every instance's catalog has the table

  const workers = 8;
  const durationMs = 12_000;
  const signalAtMs = 4_000;
  const counts = { sent: 0, ok: 0, non2xx: 0, connectionErrors: 0 };
  const statuses = {};
  const perBackend = { before: {}, after: {} };
  let signalled = false;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() - start < durationMs) {
      counts.sent++;
      try {
        const response = await fetch(`${lb}/rest/v1/${table}?id=eq.1&select=id,label`, {
          headers: { apikey: anonKey },
        });
        await response.arrayBuffer();
        statuses[response.status] = (statuses[response.status] || 0) + 1;
        const phase = signalled ? "after" : "before";
        const backend = response.headers.get("x-galley-backend");
        perBackend[phase][backend] = (perBackend[phase][backend] || 0) + 1;
        if (response.status >= 200 && response.status < 300) counts.ok++;
        else counts.non2xx++;
      } catch {
        counts.connectionErrors++;
      }
    }
  };
  const stopper = (async () => {
    await sleep(signalAtMs);
    process.kill(pids[1], "SIGTERM");
    signalled = true;
  })();
  await Promise.all([stopper, ...Array.from({ length: workers }, worker)]);
  const seconds = (performance.now() - start) / 1000;
  log(`load: ${workers} connections for ${seconds.toFixed(1)} s, SIGTERM to galley-2 at ${signalAtMs / 1000} s`);
  log(`load: ${counts.sent} requests sent, ${counts.ok} 2xx, ${counts.non2xx} non-2xx, ${counts.connectionErrors} connection errors (${(counts.sent / seconds).toFixed(0)} req/s); statuses ${JSON.stringify(statuses)}`);
  log(`load: answered by ${JSON.stringify(perBackend.before)} before the signal, ${JSON.stringify(perBackend.after)} after`);
  assert.equal(counts.non2xx, 0, "no non-2xx answer");
  assert.equal(counts.connectionErrors, 0, "no connection error");
  assert.ok((perBackend.before["galley-2"] || 0) > 0, "galley-2 served before the signal");
}
