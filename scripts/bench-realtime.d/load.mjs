// The load generator of scripts/bench-realtime: subscribers on worker threads, a writer
// at a fixed rate on the main thread, latency from each write's request to each
// subscriber's receipt (the row carries the writer's clock, `t`, in ms since the epoch).
//
//   node load.mjs '{"system": "galley"|"pocketbase", "base": "http://…", "anon": "…",
//                   "mode": "latency"|"maxrate"|"idle", "subs": 100, "rate": 100,
//                   "seconds": 10, "rates": [...], "hold": 20, "workers": 2}'
//
// Prints one JSON line per measured round. Galley's subscribers speak Supabase Realtime's
// protocol (vsn 2.0.0) over `ws`; PocketBase's use its realtime API (server-sent events,
// then POST /api/realtime with the client id).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// --- subscribers (worker threads) ------------------------------------------------------
async function galleySubscriber(config, onChange) {
  const url = `${config.base.replace(/^http/, "ws")}/realtime/v1/websocket?apikey=${config.anon}&vsn=2.0.0`;
  const socket = new WebSocket(url);
  await new Promise((ok, fail) => {
    socket.once("open", ok);
    socket.once("error", fail);
  });
  const subscribed = new Promise((ok, fail) => {
    socket.on("message", (data) => {
      const [, , , event, payload] = JSON.parse(data.toString());
      if (event === "postgres_changes") onChange(payload.data.record.t);
      else if (event === "system" && payload.extension === "postgres_changes") {
        if (payload.status === "ok") ok();
        else fail(new Error(payload.message));
      }
    });
  });
  socket.send(
    JSON.stringify([
      "1",
      "1",
      "realtime:bench",
      "phx_join",
      {
        config: {
          broadcast: { ack: false, self: false },
          presence: { enabled: false },
          postgres_changes: [{ event: "INSERT", schema: "public", table: "events" }],
          private: false,
        },
        access_token: config.anon,
      },
    ]),
  );
  await subscribed;
  const beat = setInterval(() => socket.send(JSON.stringify([null, "hb", "phoenix", "heartbeat", {}])), 25_000);
  return () => {
    clearInterval(beat);
    socket.terminate();
  };
}

async function pocketbaseSubscriber(config, onChange) {
  const controller = new AbortController();
  const response = await fetch(`${config.base}/api/realtime`, {
    headers: { accept: "text/event-stream" },
    signal: controller.signal,
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let connected;
  const clientId = new Promise((ok) => (connected = ok));
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (event === "PB_CONNECT") connected(JSON.parse(data).clientId);
          else if (event === "events") onChange(JSON.parse(data).record.t);
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  const id = await clientId;
  const subscribe = await fetch(`${config.base}/api/realtime`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ clientId: id, subscriptions: ["events"] }),
  });
  if (subscribe.status !== 204) throw new Error(`pocketbase subscribe: ${subscribe.status}`);
  return () => controller.abort();
}

async function worker() {
  const config = workerData;
  let latencies = [];
  const open = config.system === "galley" ? galleySubscriber : pocketbaseSubscriber;
  const onChange = (t) => latencies.push(now() - t);
  const closers = [];
  // Connect in small groups: a thousand handshakes at once would measure the accept
  // queue, not the system.
  for (let i = 0; i < config.count; i += 25) {
    const group = [];
    for (let j = i; j < Math.min(i + 25, config.count); j++) group.push(open(config, onChange));
    closers.push(...(await Promise.all(group)));
  }
  parentPort.postMessage({ ready: true });
  parentPort.on("message", (message) => {
    if (message.cmd === "reset") latencies = [];
    if (message.cmd === "report") parentPort.postMessage({ latencies });
    if (message.cmd === "close") {
      for (const close of closers) close();
      parentPort.postMessage({ closed: true });
      setTimeout(() => process.exit(0), 100);
    }
  });
}

// --- writer and rounds (main thread) ----------------------------------------------------
function writeRequest(config, n) {
  const body = JSON.stringify({ t: now(), n });
  if (config.system === "galley") {
    return fetch(`${config.base}/rest/v1/events`, {
      method: "POST",
      headers: {
        apikey: config.anon,
        authorization: `Bearer ${config.anon}`,
        "content-type": "application/json",
        prefer: "return=minimal",
      },
      body,
    });
  }
  return fetch(`${config.base}/api/collections/events/records`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
}

/// Writes at `rate` per second for `seconds`, at most 64 requests in flight.
async function write(config, rate, seconds) {
  const total = Math.round(rate * seconds);
  const start = now();
  let inFlight = 0;
  let errors = 0;
  let skipped = 0;
  let sent = 0;
  const pending = [];
  for (let n = 0; n < total; n++) {
    const due = start + (n * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    if (inFlight >= 64) {
      skipped++;
      continue;
    }
    inFlight++;
    sent++;
    pending.push(
      writeRequest(config, n)
        .then(async (response) => {
          await response.arrayBuffer();
          if (response.status >= 300) errors++;
        })
        .catch(() => errors++)
        .finally(() => inFlight--),
    );
  }
  await Promise.all(pending);
  return { sent: sent - errors, errors, skipped, elapsed: (now() - start) / 1000 };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const config = JSON.parse(process.argv[2]);
  const workers = Math.min(config.workers ?? 2, config.subs);
  const per = Math.ceil(config.subs / workers);
  const threads = [];
  for (let w = 0; w < workers; w++) {
    const count = Math.min(per, config.subs - w * per);
    if (count <= 0) break;
    const thread = new Worker(new URL(import.meta.url), { workerData: { ...config, count } });
    threads.push(thread);
  }
  const ask = (thread, cmd, key) =>
    new Promise((ok) => {
      const listen = (message) => {
        if (key in message) {
          thread.off("message", listen);
          ok(message);
        }
      };
      thread.on("message", listen);
      if (cmd) thread.postMessage({ cmd });
    });
  const opened = now();
  await Promise.all(threads.map((t) => ask(t, null, "ready")));
  const connectSeconds = (now() - opened) / 1000;
  console.error(`${config.system}: ${config.subs} subscribers ready in ${connectSeconds.toFixed(1)} s`);

  if (config.mode === "idle") {
    console.log(JSON.stringify({ system: config.system, mode: "idle", subs: config.subs, ready: true }));
    await sleep((config.hold ?? 20) * 1000);
  } else {
    const rates = config.mode === "maxrate" ? config.rates : [config.rate];
    for (const rate of rates) {
      await Promise.all(threads.map((t) => t.postMessage({ cmd: "reset" })));
      const written = await write(config, rate, config.seconds);
      await sleep(3000); // the tail of deliveries
      const reports = await Promise.all(threads.map((t) => ask(t, "report", "latencies")));
      const all = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const expected = written.sent * config.subs;
      const round = {
        system: config.system,
        mode: config.mode,
        subs: config.subs,
        rate,
        seconds: config.seconds,
        writes: written.sent,
        write_errors: written.errors,
        writes_skipped: written.skipped,
        write_rate: +(written.sent / written.elapsed).toFixed(1),
        expected,
        delivered: all.length,
        p50_ms: percentile(all, 50) === null ? null : +percentile(all, 50).toFixed(2),
        p99_ms: percentile(all, 99) === null ? null : +percentile(all, 99).toFixed(2),
        max_ms: all.length ? +all[all.length - 1].toFixed(2) : null,
      };
      round.sustained =
        written.skipped === 0 &&
        written.errors === 0 &&
        round.delivered >= 0.99 * expected &&
        (round.p99_ms ?? Infinity) < 1000;
      console.log(JSON.stringify(round));
      if (config.mode === "maxrate" && !round.sustained) break;
    }
  }
  await Promise.all(threads.map((t) => ask(t, "close", "closed")));
  process.exit(0);
}

if (isMainThread) await main();
else await worker();
