// Galley's /realtime/v1 driven by the real @supabase/supabase-js client (realtime-js over
// the `ws` transport), and by raw WebSocket frames where the test is about the protocol
// itself. scripts/test starts a Galley and passes its URL, keys and JWT secret in SDK_*.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const url = process.env.SDK_URL;
// A second Galley on the same database (scripts/test starts it).
const url2 = process.env.SDK_URL2;
const anonKey = process.env.SDK_ANON_KEY;
const serviceKey = process.env.SDK_SERVICE_KEY;
const secret = process.env.SDK_JWT_SECRET;
const socketUrl = `${url.replace(/^http/, "ws")}/realtime/v1/websocket`;

function userToken(sub, lifetimeSeconds = 3600) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = encode({ alg: "HS256", typ: "JWT" });
  const payload = encode({
    sub,
    role: "authenticated",
    aud: "authenticated",
    exp: Math.floor(Date.now() / 1000) + lifetimeSeconds,
  });
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

const clients = [];
function client(token, at = url) {
  const made = createClient(at, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket },
  });
  if (token) made.realtime.setAuth(token);
  clients.push(made);
  return made;
}

after(async () => {
  for (const made of clients) {
    await made.removeAllChannels();
    made.realtime.disconnect();
  }
});

function deferred() {
  let resolve;
  const promise = new Promise((ok) => (resolve = ok));
  return { promise, resolve };
}

function within(promise, ms, what) {
  let timer;
  const expiry = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Subscribes and resolves with the status the callback reports first.
function subscribed(channel) {
  const status = deferred();
  channel.subscribe((state, err) => status.resolve({ state, err }));
  return within(status.promise, 10_000, `${channel.topic} to subscribe`);
}

test("broadcast reaches the other client, and the sender only with self; ack confirms it", async () => {
  const room = `room-${randomUUID()}`;
  const heard = { sender: [], other: [] };
  const sender = client()
    .channel(room, { config: { broadcast: { self: true, ack: true } } })
    .on("broadcast", { event: "move" }, (message) => heard.sender.push(message));
  const other = client()
    .channel(room)
    .on("broadcast", { event: "move" }, (message) => heard.other.push(message))
    .on("broadcast", { event: "other-event" }, () => assert.fail("a listener for another event fired"));
  assert.equal((await subscribed(sender)).state, "SUBSCRIBED");
  assert.equal((await subscribed(other)).state, "SUBSCRIBED");

  assert.equal(await sender.send({ type: "broadcast", event: "move", payload: { x: 1 } }), "ok");
  // Without self, a sender does not hear itself.
  await other.send({ type: "broadcast", event: "move", payload: { x: 2 } });
  await within(
    (async () => {
      while (heard.other.length < 1 || heard.sender.length < 2) await sleep(20);
    })(),
    5_000,
    "the broadcasts",
  );
  await sleep(200);
  assert.deepEqual(heard.other, [{ type: "broadcast", event: "move", payload: { x: 1 } }]);
  assert.deepEqual(
    heard.sender.map((message) => message.payload.x),
    [1, 2],
  );
});

test("a broadcast on one topic does not reach another", async () => {
  const heard = [];
  const listener = client()
    .channel(`quiet-${randomUUID()}`)
    .on("broadcast", { event: "*" }, (message) => heard.push(message));
  const speaker = client().channel(`loud-${randomUUID()}`, { config: { broadcast: { ack: true } } });
  await subscribed(listener);
  await subscribed(speaker);
  assert.equal(await speaker.send({ type: "broadcast", event: "e", payload: {} }), "ok");
  await sleep(300);
  assert.deepEqual(heard, []);
});

test("presence syncs between three clients, and a closed connection leaves", async () => {
  const room = `lobby-${randomUUID()}`;
  const people = ["ann", "bob", "cy"].map((name) => {
    const made = client();
    const channel = made.channel(room, { config: { presence: { key: name } } });
    const left = [];
    channel.on("presence", { event: "sync" }, () => {});
    channel.on("presence", { event: "leave" }, ({ key }) => left.push(key));
    return { name, made, channel, left };
  });
  for (const person of people) {
    assert.equal((await subscribed(person.channel)).state, "SUBSCRIBED");
    assert.equal(await person.channel.track({ name: person.name }), "ok");
  }
  const everyone = (channel) => Object.keys(channel.presenceState()).sort().join(",");
  await within(
    (async () => {
      while (!people.every((person) => everyone(person.channel) === "ann,bob,cy")) await sleep(20);
    })(),
    5_000,
    "presence to sync",
  );
  const [ann] = people;
  assert.equal(ann.channel.presenceState().bob[0].name, "bob");
  assert.ok(ann.channel.presenceState().bob[0].presence_ref);

  // Cy's connection goes away without leaving: the others see cy leave.
  people[2].made.realtime.disconnect();
  await within(
    (async () => {
      while (!(ann.left.includes("cy") && people[1].left.includes("cy"))) await sleep(20);
    })(),
    5_000,
    "cy to leave",
  );
  assert.equal(everyone(ann.channel), "ann,bob");
});

test("an expired token closes the channel with the system message; a refreshed one keeps it open", async () => {
  const expiring = client(userToken(randomUUID(), 3));
  const messages = [];
  const closed = deferred();
  const channel = expiring.channel(`expiry-${randomUUID()}`).on("system", {}, (message) => messages.push(message));
  channel.subscribe((state) => {
    if (state === "CLOSED") closed.resolve();
  });
  await within(closed.promise, 10_000, "the channel to close");
  assert.equal(messages.length, 1);
  assert.equal(messages[0].extension, "system");
  assert.equal(messages[0].status, "error");
  assert.match(messages[0].message, /^Token has expired \d+ seconds ago$/);

  const user = randomUUID();
  const refreshed = client(userToken(user, 3));
  const room = `kept-${randomUUID()}`;
  const heard = [];
  const kept = refreshed.channel(room).on("broadcast", { event: "ping" }, (message) => heard.push(message));
  const states = [];
  kept.subscribe((state) => states.push(state));
  await within(
    (async () => {
      while (!states.includes("SUBSCRIBED")) await sleep(20);
    })(),
    5_000,
    "the channel to subscribe",
  );
  await refreshed.realtime.setAuth(userToken(user, 3600));
  await sleep(4_000);
  assert.deepEqual(states, ["SUBSCRIBED"]);
  const speaker = client().channel(room, { config: { broadcast: { ack: true } } });
  await subscribed(speaker);
  await speaker.send({ type: "broadcast", event: "ping", payload: {} });
  await within(
    (async () => {
      while (heard.length < 1) await sleep(20);
    })(),
    5_000,
    "a broadcast on the refreshed channel",
  );
});

async function admin(method, path, body) {
  const response = await fetch(`${url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

// A client whose REST calls carry the user's token.
function restAs(token) {
  return createClient(url, anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket },
  });
}

// Fresh names per run, so the suite can run again against the same Galley.
const run = randomUUID().slice(0, 8);
const todos = `rt_todos_${run}`;
const quiet = `rt_quiet_${run}`;

before(async () => {
  const columns = [
    { name: "owner", type: "uuid", nullable: false, default: { expression: "auth.uid()" } },
    { name: "title", type: "text", nullable: false },
    { name: "priority", type: "integer", nullable: false, default: { value: 1 } },
  ];
  await admin("POST", "/tables", { name: todos, primary_key: "bigint", columns });
  const owner = { preset: "owner", column: "owner" };
  await admin("PUT", `/tables/${todos}/rules`, { select: owner, insert: owner, update: owner, delete: owner });
  await admin("PUT", `/tables/${todos}/realtime`, { enabled: true });
  await admin("POST", "/tables", { name: quiet, primary_key: "bigint", columns });
  await admin("PUT", `/tables/${quiet}/rules`, { select: owner, insert: owner });
});

// Subscribes a channel to changes and waits for "Subscribed to PostgreSQL" (or the error).
async function listen(token, bindings, at = url) {
  const events = [];
  const system = [];
  let channel = client(token, at).channel(`changes-${randomUUID()}`);
  for (const binding of bindings) channel = channel.on("postgres_changes", binding, (event) => events.push(event));
  channel = channel.on("system", {}, (message) => system.push(message));
  assert.equal((await subscribed(channel)).state, "SUBSCRIBED");
  await within(
    (async () => {
      while (!system.some((m) => m.extension === "postgres_changes")) await sleep(10);
    })(),
    5_000,
    "the postgres_changes system message",
  );
  return { channel, events, system: system.find((m) => m.extension === "postgres_changes") };
}

async function until(events, predicate, what) {
  await within(
    (async () => {
      while (!events.some(predicate)) await sleep(10);
    })(),
    5_000,
    what,
  );
}

test("a subscriber receives its own inserts, updates and deletes, and none of another user's", async () => {
  const alice = randomUUID();
  const bob = randomUUID();
  const a = await listen(userToken(alice), [{ event: "*", schema: "public", table: todos }]);
  assert.deepEqual(a.system, {
    channel: a.channel.subTopic,
    extension: "postgres_changes",
    message: "Subscribed to PostgreSQL",
    status: "ok",
  });
  const asAlice = restAs(userToken(alice)).from(todos);
  const asBob = restAs(userToken(bob)).from(todos);

  const { data: mine } = await asAlice.insert({ title: "alice's" }).select().single();
  const { data: theirs } = await asBob.insert({ title: "bob's" }).select().single();
  await asBob.update({ title: "bob's, edited" }).eq("id", theirs.id);
  await asAlice.update({ title: "alice's, edited", priority: 2 }).eq("id", mine.id);
  await asBob.delete().eq("id", theirs.id);
  await asAlice.delete().eq("id", mine.id);
  // Changes arrive in commit order: once Alice's marker is in, Bob's would have been.
  const { data: marker } = await asAlice.insert({ title: "marker" }).select().single();
  await until(a.events, (e) => e.new?.id === marker.id, "alice's marker");

  const seen = a.events.map((e) => [e.eventType, e.new?.id ?? e.old?.id]);
  assert.deepEqual(seen, [
    ["INSERT", mine.id],
    ["UPDATE", mine.id],
    ["DELETE", mine.id],
    ["INSERT", marker.id],
  ]);
  const [insert, update, remove] = a.events;
  assert.equal(insert.schema, "public");
  assert.equal(insert.table, todos);
  assert.match(insert.commit_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(insert.new, { id: mine.id, owner: alice, title: "alice's", priority: 1 });
  assert.deepEqual(insert.old, {});
  assert.equal(insert.errors, null);
  assert.deepEqual(update.new, { id: mine.id, owner: alice, title: "alice's, edited", priority: 2 });
  assert.deepEqual(update.old, { id: mine.id });
  // A deleted row is only its key, as Supabase sends it under row-level security.
  assert.deepEqual(remove.new, {});
  assert.deepEqual(remove.old, { id: mine.id });
});

test("filters and events narrow what a binding receives", async () => {
  const carol = randomUUID();
  const token = userToken(carol);
  const l = await listen(token, [
    { event: "INSERT", schema: "public", table: todos, filter: "priority=in.(2,3)" },
    { event: "UPDATE", schema: "public", table: todos, filter: "title=eq.watched" },
  ]);
  const rest = restAs(token).from(todos);
  const { data: low } = await rest.insert({ title: "watched", priority: 1 }).select().single();
  const { data: high } = await rest.insert({ title: "other", priority: 3 }).select().single();
  await rest.update({ priority: 5 }).eq("id", low.id);
  await rest.update({ priority: 5 }).eq("id", high.id);
  await rest.delete().eq("id", low.id);
  const { data: marker } = await rest.insert({ title: "marker", priority: 2 }).select().single();
  await until(l.events, (e) => e.new?.id === marker.id, "the marker");
  assert.deepEqual(
    l.events.map((e) => [e.eventType, e.new?.id ?? e.old?.id]),
    [
      ["INSERT", high.id],
      ["UPDATE", low.id],
      ["INSERT", marker.id],
    ],
    JSON.stringify({ low, high, marker, events: l.events }),
  );

  const bad = await listen(token, [{ event: "*", schema: "public", table: todos, filter: "priority=eq.high" }]);
  assert.equal(bad.system.status, "error");
  assert.match(bad.system.message, /An exception happened .*invalid input syntax for type integer: "high"/);
  const unknown = await listen(token, [{ event: "*", schema: "public", table: todos, filter: "nope=eq.1" }]);
  assert.match(unknown.system.message, /invalid column for filter nope$/);
});

test("postgres changes on a table that has not opted in are refused with the system error", async () => {
  for (const table of [quiet, "nothing_here"]) {
    const l = await listen(null, [{ event: "*", schema: "public", table }]);
    assert.deepEqual(l.system, {
      channel: l.channel.subTopic,
      extension: "postgres_changes",
      message: `Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: ${table}, filters: [], select: nil]`,
      status: "error",
    });
    // The channel stays joined: broadcast still works on it.
    assert.equal(l.channel.state, "joined");
  }
});

test("a change made through one instance reaches a subscriber on another", async () => {
  assert.ok(url2, "SDK_URL2 names the second instance");
  const erin = randomUUID();
  const l = await listen(userToken(erin), [{ event: "*", schema: "public", table: todos }], url2);
  const rest = restAs(userToken(erin)).from(todos);
  const { data: row } = await rest.insert({ title: "on instance 1" }).select().single();
  await rest.update({ title: "still instance 1" }).eq("id", row.id);
  await until(l.events, (e) => e.eventType === "UPDATE", "the update on instance 2");
  assert.deepEqual(
    l.events.map((e) => [e.eventType, e.new.title]),
    [
      ["INSERT", "on instance 1"],
      ["UPDATE", "still instance 1"],
    ],
  );
});

test("a change made in SQL outside the REST API reaches subscribers", async () => {
  const dave = randomUUID();
  const l = await listen(userToken(dave), [{ event: "INSERT", schema: "public", table: todos }]);
  const body = await admin("POST", "/sql", {
    sql: `INSERT INTO ${todos} (owner, title) VALUES ('${dave}', 'from sql'), ('${randomUUID()}', 'someone else') RETURNING id`,
    commit: true,
  });
  const ids = body.rows ?? body.results?.at(-1)?.rows;
  assert.ok(ids, JSON.stringify(body));
  await until(l.events, (e) => e.new?.title === "from sql", "the row inserted in SQL");
  await sleep(200);
  assert.deepEqual(
    l.events.map((e) => e.new.title),
    ["from sql"],
  );
});

// A channel listening to every broadcast event on `topic`.
async function hear(topic, { token, private: isPrivate = false } = {}) {
  const heard = [];
  const channel = client(token)
    .channel(topic, { config: { private: isPrivate } })
    .on("broadcast", { event: "*" }, (message) => heard.push(message));
  const result = await subscribed(channel);
  return { channel, heard, result };
}

test("broadcast over HTTP: the batch API, httpSend, and send() from a channel not joined", async () => {
  const room = `http-${randomUUID()}`;
  const { heard } = await hear(room);
  const response = await fetch(`${url}/realtime/v1/api/broadcast`, {
    method: "POST",
    headers: { apikey: anonKey, "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ topic: room, event: "batch", payload: { n: 1 } }] }),
  });
  assert.equal(response.status, 202);
  assert.equal(await response.text(), "");
  await until(heard, (m) => m.event === "batch", "the batch broadcast");
  assert.deepEqual(heard.find((m) => m.event === "batch").payload, { n: 1 });

  const sender = client().channel(room);
  assert.deepEqual(await sender.httpSend("single", { n: 2 }), { success: true });
  await until(heard, (m) => m.event === "single", "httpSend's broadcast");
  assert.deepEqual(heard.find((m) => m.event === "single").payload, { n: 2 });
  assert.equal(await sender.send({ type: "broadcast", event: "fallback", payload: { n: 3 } }), "ok");
  await until(heard, (m) => m.event === "fallback", "send()'s REST fallback");

  // Refusals in Supabase Realtime's shapes.
  const post = (path, body, headers = {}) =>
    fetch(`${url}/realtime/v1/api/broadcast${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
  const unauthorized = await post("", JSON.stringify({ messages: [] }));
  assert.equal(unauthorized.status, 401);
  assert.deepEqual(await unauthorized.json(), { message: "Unauthorized" });
  const blank = await post("", JSON.stringify({ messages: [] }), { apikey: anonKey });
  assert.equal(blank.status, 422);
  assert.deepEqual(await blank.json(), { errors: { messages: ["can't be blank"] } });
  const missing = await post("", JSON.stringify({ messages: [{ topic: room, payload: {} }] }), { apikey: anonKey });
  assert.equal(missing.status, 422);
  assert.deepEqual(await missing.json(), { errors: { messages: [{ event: ["can't be blank"] }] } });
  const xml = await post(`/${room}/events/x`, "<x/>", { apikey: anonKey, "content-type": "application/xml" });
  assert.equal(xml.status, 415);
  assert.deepEqual(await xml.json(), { error: "Unsupported Media Type. Use application/json or application/octet-stream" });
});

test("realtime.send broadcasts from the database when its transaction commits", async () => {
  const room = `db-${randomUUID()}`;
  const { heard } = await hear(room);
  await admin("POST", "/sql", {
    sql: `SELECT realtime.send('{"n": 1}'::jsonb, 'from-db', '${room}', false)`,
    commit: true,
  });
  await admin("POST", "/sql", {
    sql: `SELECT realtime.send('{"n": 2}'::jsonb, 'rolled-back', '${room}', false)`,
    commit: false,
  });
  await admin("POST", "/sql", {
    sql: `SELECT realtime.send('{"n": 3}'::jsonb, 'after', '${room}', false)`,
    commit: true,
  });
  await until(heard, (m) => m.event === "after", "the later database broadcast");
  assert.deepEqual(
    heard.map((m) => m.event),
    ["from-db", "after"],
  );
  const first = heard[0];
  assert.equal(first.payload.n, 1);
  assert.match(first.payload.id, /^[0-9a-f-]{36}$/);
});

test("a private channel admits only whom the policies on realtime.messages let read it", async () => {
  const prefix = `private-${run}-`;
  await admin("POST", "/sql", {
    sql: `CREATE POLICY "read ${run}" ON realtime.messages FOR SELECT TO authenticated
            USING (realtime.topic() = '${prefix}' || auth.uid()::text);
          CREATE POLICY "write ${run}" ON realtime.messages FOR INSERT TO authenticated
            WITH CHECK (realtime.topic() = '${prefix}' || auth.uid()::text AND extension = 'broadcast')`,
    commit: true,
  });
  const owner = randomUUID();
  const stranger = randomUUID();
  const topic = `${prefix}${owner}`;
  const mine = await hear(topic, { token: userToken(owner), private: true });
  assert.equal(mine.result.state, "SUBSCRIBED");
  const theirs = await hear(topic, { token: userToken(stranger), private: true });
  assert.equal(theirs.result.state, "CHANNEL_ERROR");
  assert.match(
    String(theirs.result.err?.message ?? theirs.result.err),
    new RegExp(`Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`),
  );
  theirs.channel.unsubscribe();
  // The public channel of the same name is another channel.
  const open = await hear(topic);

  const second = client(userToken(owner)).channel(topic, { config: { private: true, broadcast: { ack: true } } });
  assert.equal((await subscribed(second)).state, "SUBSCRIBED");
  assert.equal(await second.send({ type: "broadcast", event: "hello", payload: { n: 1 } }), "ok");
  await until(mine.heard, (m) => m.event === "hello", "the private broadcast");
  // From the database (private by default) and over HTTP as the owner.
  await admin("POST", "/sql", { sql: `SELECT realtime.send('{"n": 2}'::jsonb, 'from-db', '${topic}')`, commit: true });
  await until(mine.heard, (m) => m.event === "from-db", "the private database broadcast");
  assert.deepEqual(await second.httpSend("over-http", { n: 3 }), { success: true });
  await until(mine.heard, (m) => m.event === "over-http", "the private HTTP broadcast");
  const stranger403 = await fetch(`${url}/realtime/v1/api/broadcast/${encodeURIComponent(topic)}/events/x?private=true`, {
    method: "POST",
    headers: { apikey: anonKey, authorization: `Bearer ${userToken(stranger)}`, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(stranger403.status, 403);
  assert.deepEqual(await stranger403.json(), { message: "Unauthorized" });
  assert.deepEqual(open.heard, [], "the public channel of that name heard nothing private");
});

test("broadcast and presence cross instances", async () => {
  assert.ok(url2, "SDK_URL2 names the second instance");
  const room = `cross-${randomUUID()}`;
  const heard = [];
  const far = client(null, url2)
    .channel(room, { config: { presence: { key: "far" } } })
    .on("broadcast", { event: "*" }, (message) => heard.push(message))
    .on("presence", { event: "sync" }, () => {});
  assert.equal((await subscribed(far)).state, "SUBSCRIBED");
  const near = client()
    .channel(room, { config: { presence: { key: "near" } } })
    .on("presence", { event: "sync" }, () => {});
  assert.equal((await subscribed(near)).state, "SUBSCRIBED");
  // Instances find each other within seconds of starting; until then a broadcast stays
  // on its instance, so keep sending until one crosses.
  await within(
    (async () => {
      for (let n = 0; !heard.some((m) => m.event === "across"); n++) {
        await near.send({ type: "broadcast", event: "across", payload: { n } });
        await sleep(250);
      }
    })(),
    20_000,
    "a broadcast from instance 1 to reach instance 2",
  );
  await fetch(`${url}/realtime/v1/api/broadcast`, {
    method: "POST",
    headers: { apikey: anonKey, "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ topic: room, event: "http-across", payload: {} }] }),
  });
  await until(heard, (m) => m.event === "http-across", "an HTTP broadcast to instance 1 on instance 2");

  assert.equal(await near.track({ where: "instance 1" }), "ok");
  await within(
    (async () => {
      while (!far.presenceState().near) await sleep(20);
    })(),
    10_000,
    "instance 1's presence on instance 2",
  );
  assert.equal(far.presenceState().near[0].where, "instance 1");
  assert.equal(await far.track({ where: "instance 2" }), "ok");
  await within(
    (async () => {
      while (!near.presenceState().far) await sleep(20);
    })(),
    10_000,
    "instance 2's presence on instance 1",
  );
  // A closed connection's presence leaves on the other instance too.
  clients.at(-1).realtime.disconnect();
  await within(
    (async () => {
      while (far.presenceState().near) await sleep(20);
    })(),
    10_000,
    "instance 1's presence to leave instance 2",
  );
});

// Raw frames: a socket speaking vsn 2.0.0 directly.
function raw(params = `apikey=${anonKey}&vsn=2.0.0`) {
  const socket = new WebSocket(`${socketUrl}?${params}`);
  const frames = [];
  const waiters = [];
  socket.on("message", (data, binary) => {
    frames.push(binary ? data : JSON.parse(data.toString()));
    for (const waiter of waiters.splice(0)) waiter();
  });
  const closed = new Promise((ok) => socket.on("close", (code, reason) => ok({ code, reason: reason.toString() })));
  const opened = new Promise((ok, fail) => {
    socket.on("open", ok);
    socket.on("error", fail);
    socket.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => fail(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode, body })));
    });
  });
  const next = async (predicate, what) => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const index = frames.findIndex(predicate);
      if (index >= 0) return frames.splice(index, 1)[0];
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((ok) => {
        waiters.push(ok);
        setTimeout(ok, 100);
      });
    }
  };
  return { socket, frames, closed, opened, next, send: (frame) => socket.send(JSON.stringify(frame)) };
}

test("the handshake: heartbeat replies, refusals in Supabase Realtime's shape", async () => {
  const peer = raw();
  await peer.opened;
  peer.send([null, "9", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await peer.next((frame) => frame[1] === "9", "the heartbeat reply"), [
    null,
    "9",
    "phoenix",
    "phx_reply",
    { response: {}, status: "ok" },
  ]);
  // An event for a topic not joined.
  peer.send(["1", "10", "realtime:nowhere", "broadcast", { type: "broadcast", event: "e", payload: {} }]);
  assert.deepEqual(await peer.next((frame) => frame[1] === "10", "the unmatched reply"), [
    null,
    "10",
    "realtime:nowhere",
    "phx_reply",
    { response: { reason: "unmatched topic" }, status: "error" },
  ]);
  peer.socket.close();

  const missing = raw("vsn=2.0.0");
  const refusal = await missing.opened.catch((err) => err);
  assert.equal(refusal.status, 401);
  assert.deepEqual(JSON.parse(refusal.body), { error: "API key is missing" });
  const forged = raw(`apikey=${anonKey.slice(0, -4)}AAAA&vsn=2.0.0`);
  assert.equal((await forged.opened.catch((err) => err)).status, 401);
  const version = raw(`apikey=${anonKey}&vsn=3.0.0`);
  assert.equal((await version.opened.catch((err) => err)).status, 403);
});

test("a malformed frame closes only its own connection, and a flooding channel is closed alone", async () => {
  const room = `flood-${randomUUID()}`;
  const heard = [];
  const bystander = client()
    .channel(room)
    .on("broadcast", { event: "*" }, (message) => heard.push(message));
  assert.equal((await subscribed(bystander)).state, "SUBSCRIBED");

  const broken = raw();
  await broken.opened;
  broken.socket.send("this is not a phoenix message");
  const close = await within(broken.closed, 5_000, "the malformed connection to close");
  assert.equal(close.code, 1007);
  assert.match(close.reason, /^malformed message/);

  const flooder = raw();
  await flooder.opened;
  flooder.send(["1", "1", `realtime:${room}`, "phx_join", { config: {} }]);
  await flooder.next((frame) => frame[1] === "1" && frame[3] === "phx_reply", "the flooder's join");
  for (let i = 0; i < 150; i++) {
    flooder.send(["1", String(i + 2), `realtime:${room}`, "broadcast", { type: "broadcast", event: "spam", payload: { i } }]);
  }
  const system = await flooder.next((frame) => frame[3] === "system", "the system message");
  assert.deepEqual(system, [
    "1",
    null,
    `realtime:${room}`,
    "system",
    { channel: room, extension: "system", message: "Too many messages per second", status: "error" },
  ]);
  assert.deepEqual(await flooder.next((frame) => frame[3] === "phx_close", "phx_close"), [
    "1",
    "1",
    `realtime:${room}`,
    "phx_close",
    {},
  ]);
  // Everyone else is unaffected: a fresh client's broadcast still reaches the bystander.
  const speaker = client().channel(room, { config: { broadcast: { ack: true } } });
  await subscribed(speaker);
  assert.equal(await speaker.send({ type: "broadcast", event: "after", payload: {} }), "ok");
  await within(
    (async () => {
      while (!heard.some((message) => message.event === "after")) await sleep(20);
    })(),
    5_000,
    "the bystander to hear the broadcast after the flood",
  );
  // Frames reach a subscriber in order, so by now it has heard all of the flood that was let through.
  const spam = heard.filter((message) => message.event === "spam").length;
  assert.ok(spam > 0 && spam <= 100, `the bystander heard ${spam} of the flood`);
  flooder.socket.close();
});
