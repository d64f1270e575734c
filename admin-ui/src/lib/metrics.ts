// Galley's own metrics (Prometheus text, from /admin/v1/metrics), read into the few
// figures the overview charts.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Samples of a Prometheus text exposition (comments and malformed lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = Number(match[3]);
    if (!Number.isNaN(value)) samples.push({ name: match[1], labels, value });
  }
  return samples;
}

export interface Snapshot {
  /** Requests served so far (the admin UI's own polling included). */
  requests: number;
  serverErrors: number;
  clientErrors: number;
  durationSum: number;
  durationCount: number;
  poolSize: number;
  poolIdle: number;
  poolWaiting: number;
  ready: boolean;
}

export function snapshot(samples: Sample[]): Snapshot {
  const sum = (name: string, keep: (labels: Record<string, string>) => boolean = () => true) =>
    samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
  return {
    requests: sum('galley_http_requests_total'),
    serverErrors: sum('galley_http_requests_total', (l) => l.status === '5xx'),
    clientErrors: sum('galley_http_requests_total', (l) => l.status === '4xx'),
    durationSum: sum('galley_http_request_duration_seconds_sum'),
    durationCount: sum('galley_http_request_duration_seconds_count'),
    poolSize: sum('galley_db_pool_connections', (l) => l.state === 'size'),
    poolIdle: sum('galley_db_pool_connections', (l) => l.state === 'idle'),
    poolWaiting: sum('galley_db_pool_connections', (l) => l.state === 'waiting'),
    ready: sum('galley_ready') === 1,
  };
}

export interface Rates {
  requestsPerSecond: number;
  errorsPerSecond: number;
  /** Mean latency of the requests between the two snapshots, in ms; null without any. */
  latencyMs: number | null;
}

/** What happened between two snapshots `seconds` apart. */
export function rates(before: Snapshot, after: Snapshot, seconds: number): Rates {
  const span = Math.max(seconds, 0.001);
  const count = after.durationCount - before.durationCount;
  return {
    requestsPerSecond: Math.max(0, after.requests - before.requests) / span,
    errorsPerSecond: Math.max(0, after.serverErrors - before.serverErrors) / span,
    latencyMs: count > 0 ? ((after.durationSum - before.durationSum) / count) * 1000 : null,
  };
}
