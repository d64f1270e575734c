// Galley's /rest/v1 driven by the real @supabase/supabase-js client, unchanged.
// scripts/test starts a Galley and passes its URL, keys and JWT secret in SDK_* variables.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import ws from "ws";

const url = process.env.SDK_URL;
const anonKey = process.env.SDK_ANON_KEY;
const serviceKey = process.env.SDK_SERVICE_KEY;
const secret = process.env.SDK_JWT_SECRET;

// Access tokens as the auth endpoints will issue them (HS256, role authenticated).
function userToken(sub) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = encode({ alg: "HS256", typ: "JWT" });
  const payload = encode({ sub, role: "authenticated", aud: "authenticated", exp: Math.floor(Date.now() / 1000) + 3600 });
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

function clientFor(token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  // Node 20 has no WebSocket of its own; the realtime client (unused here) wants one.
  return createClient(url, anonKey, {
    global: { headers },
    auth: { persistSession: false },
    realtime: { transport: ws },
  });
}

async function admin(method, path, body) {
  const response = await fetch(`${url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.text()}`);
}

const alice = randomUUID();
const bob = randomUUID();
const asAlice = clientFor(userToken(alice));
const asBob = clientFor(userToken(bob));
const anon = clientFor(null);

before(async () => {
  await admin("POST", "/tables", {
    name: "todos",
    primary_key: "bigint",
    columns: [
      { name: "owner", type: "uuid", nullable: false, default: { expression: "auth.uid()" } },
      { name: "title", type: "text", nullable: false },
      { name: "done", type: "boolean", nullable: false, default: { value: false } },
      { name: "priority", type: "integer", nullable: false, default: { value: 1 } },
    ],
  });
  const owner = { preset: "owner", column: "owner" };
  await admin("PUT", "/tables/todos/rules", { select: owner, insert: owner, update: owner, delete: owner });
  await admin("POST", "/tables", {
    name: "notices",
    primary_key: "bigint",
    columns: [{ name: "text", type: "text", nullable: false }],
  });
  await admin("PUT", "/tables/notices/rules", { select: { preset: "public" }, insert: { preset: "signed_in" } });
});

test("a signed-in user inserts and reads back their rows", async () => {
  const { data, error, status } = await asAlice
    .from("todos")
    .insert([{ title: "buy milk", priority: 1 }, { title: "write tests", priority: 3 }])
    .select("id, title, owner, done");
  assert.equal(error, null);
  assert.equal(status, 201);
  assert.equal(data.length, 2);
  assert.ok(data.every((row) => row.owner === alice && row.done === false));
  await asBob.from("todos").insert({ title: "bob's only" });

  const mine = await asAlice.from("todos").select("title").order("title");
  assert.deepEqual(mine.data, [{ title: "buy milk" }, { title: "write tests" }]);
  const theirs = await asBob.from("todos").select("title");
  assert.deepEqual(theirs.data, [{ title: "bob's only" }]);
});

test("filters, ordering, ranges, counts and single rows", async () => {
  await asAlice.from("todos").insert([{ title: "call mom", priority: 2 }, { title: "Milk again", priority: 5 }]);
  const filtered = await asAlice.from("todos").select("title").ilike("title", "%milk%").order("priority", { ascending: false });
  assert.deepEqual(filtered.data, [{ title: "Milk again" }, { title: "buy milk" }]);

  const counted = await asAlice.from("todos").select("title", { count: "exact" }).order("id").range(0, 1);
  assert.equal(counted.count, 4);
  assert.equal(counted.data.length, 2);

  const some = await asAlice.from("todos").select("title").in("priority", [2, 3]).order("title");
  assert.deepEqual(some.data, [{ title: "call mom" }, { title: "write tests" }]);
  const either = await asAlice.from("todos").select("title").or("priority.eq.5,title.eq.call mom").order("title");
  assert.deepEqual(either.data, [{ title: "Milk again" }, { title: "call mom" }]);
  const notDone = await asAlice.from("todos").select("id").is("done", false).gte("priority", 3).lt("priority", 5);
  assert.equal(notDone.data.length, 1);

  const single = await asAlice.from("todos").select("title").eq("priority", 5).single();
  assert.deepEqual(single.data, { title: "Milk again" });
  const notSingle = await asAlice.from("todos").select("title").single();
  assert.equal(notSingle.error.code, "PGRST116");
});

test("updates and deletes reach only the caller's rows", async () => {
  const stolen = await asBob.from("todos").update({ title: "stolen" }).eq("title", "buy milk").select();
  assert.equal(stolen.error, null);
  assert.deepEqual(stolen.data, []);
  const done = await asAlice.from("todos").update({ done: true }).eq("title", "buy milk").select("title, done");
  assert.deepEqual(done.data, [{ title: "buy milk", done: true }]);
  const removed = await asAlice.from("todos").delete().eq("title", "call mom");
  assert.equal(removed.error, null);
  assert.equal(removed.status, 204);
  const left = await asAlice.from("todos").select("title").order("title");
  assert.deepEqual(left.data.map((row) => row.title), ["Milk again", "buy milk", "write tests"]);
});

test("anonymous callers get only what the rules allow", async () => {
  const denied = await anon.from("todos").select("*");
  assert.equal(denied.error.code, "42501");
  const writeDenied = await anon.from("notices").insert({ text: "hi" });
  assert.equal(writeDenied.error.code, "42501");
  const posted = await asAlice.from("notices").insert({ text: "hello" });
  assert.equal(posted.error, null);
  const read = await anon.from("notices").select("text");
  assert.deepEqual(read.data, [{ text: "hello" }]);
});

test("upserts and errors in PostgREST's shape", async () => {
  const first = await asAlice.from("todos").select("id").eq("title", "write tests").single();
  const upserted = await asAlice
    .from("todos")
    .upsert({ id: first.data.id, title: "write more tests", owner: alice })
    .select("title");
  assert.deepEqual(upserted.data, [{ title: "write more tests" }]);
  const missing = await asAlice.from("nowhere").select("*");
  assert.equal(missing.error.code, "PGRST205");
  const badColumn = await asAlice.from("todos").select("nope");
  assert.equal(badColumn.error.code, "42703");
});
