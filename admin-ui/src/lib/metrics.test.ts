import { describe, expect, it } from 'vitest';
import { parseMetrics, rates, snapshot } from './metrics';

const text = `# HELP galley_http_requests_total Requests.
# TYPE galley_http_requests_total counter
galley_http_requests_total{method="GET",route="/rest/v1/{table}",status="2xx"} 90
galley_http_requests_total{method="POST",route="/rest/v1/{table}",status="5xx"} 10
galley_http_request_duration_seconds_sum{method="GET",route="/x",status="2xx"} 2
galley_http_request_duration_seconds_count{method="GET",route="/x",status="2xx"} 100
galley_db_pool_connections{pool="api",state="size"} 4
galley_db_pool_connections{pool="owner",state="size"} 2
galley_ready 1
galley_build_info{version="0.1.0",note="a \\"quoted\\" one"} 1
not a sample
`;

describe('metrics', () => {
  it('parses samples with their labels', () => {
    const samples = parseMetrics(text);
    expect(samples).toHaveLength(8);
    expect(samples.at(-1)?.labels).toEqual({ version: '0.1.0', note: 'a "quoted" one' });
  });

  it('sums what the overview shows, and turns two snapshots into rates', () => {
    const before = snapshot(parseMetrics(text));
    expect([before.requests, before.serverErrors, before.poolSize, before.ready]).toEqual([100, 10, 6, true]);
    const after = { ...before, requests: 150, serverErrors: 12, durationSum: 3, durationCount: 150 };
    expect(rates(before, after, 5)).toEqual({ requestsPerSecond: 10, errorsPerSecond: 0.4, latencyMs: 20 });
    expect(rates(before, before, 5).latencyMs).toBeNull();
  });
});
