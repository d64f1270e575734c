import { describe, expect, it } from 'vitest';
import { adminUrl, ApiFailure, failureOf, isErrorBody } from './api';
import { byteSize, rowEstimate, sizeLimit } from './format';
import { columnDefinition, emptyColumn, fieldOf, violationOf } from './schema';
import { href, parseHash } from './router.svelte';

describe('adminUrl', () => {
  it('joins the path and skips undefined parameters', () => {
    expect(adminUrl('/tables', { limit: 10, before: undefined, q: 'a b&c' })).toBe(
      '/admin/v1/tables?limit=10&q=a+b%26c',
    );
    expect(adminUrl('/session')).toBe('/admin/v1/session');
  });
});

describe('failureOf', () => {
  it("keeps Galley's error shape and the request id", async () => {
    const response = new Response(
      JSON.stringify({ code: 'invalid_credentials', message: 'invalid email or password', hint: null }),
      { status: 400, headers: { 'x-request-id': 'req-1' } },
    );
    const failure = await failureOf(response);
    expect(failure).toBeInstanceOf(ApiFailure);
    expect([failure.status, failure.code, failure.message, failure.requestId]).toEqual([
      400,
      'invalid_credentials',
      'invalid email or password',
      'req-1',
    ]);
  });

  it('prefers the body\'s request id and survives a body that is not JSON', async () => {
    const shaped = await failureOf(
      new Response(JSON.stringify({ code: 'x', message: 'y', request_id: 'body-id' }), {
        status: 409,
        headers: { 'x-request-id': 'header-id' },
      }),
    );
    expect(shaped.requestId).toBe('body-id');
    const plain = await failureOf(new Response('<html>', { status: 502, statusText: 'Bad Gateway' }));
    expect([plain.code, plain.message]).toEqual(['unexpected', 'Galley answered 502 Bad Gateway']);
  });

  it('recognises only the error shape', () => {
    expect(isErrorBody({ code: 'a', message: 'b' })).toBe(true);
    expect(isErrorBody({ code: 400, msg: 'b' })).toBe(false);
    expect(isErrorBody(null)).toBe(false);
  });
});

describe('parseHash', () => {
  it('reads pages, table names and the setup token', () => {
    expect(parseHash('')).toEqual({ page: 'tables', params: [], token: null });
    expect(parseHash('#/tables/order%20items')).toEqual({ page: 'table', params: ['order items'], token: null });
    expect(parseHash('#setup=abc-_123')).toEqual({ page: 'setup', params: [], token: 'abc-_123' });
    expect(parseHash('#/users')).toEqual({ page: 'users', params: [], token: null });
    expect(parseHash('#/tables/%E0%A4%A')).toEqual({ page: 'table', params: ['%E0%A4%A'], token: null });
    expect(parseHash('#/data/books?author_id=a%2Fb')).toEqual({
      page: 'data',
      params: ['books'],
      token: null,
      query: { author_id: 'a/b' },
    });
  });

  it('round-trips names through href', () => {
    const name = 'a/b c?';
    expect(parseHash(href('tables', name))).toEqual({ page: 'table', params: [name], token: null });
  });
});

describe('rowEstimate', () => {
  it('says unknown rather than guessing', () => {
    expect(rowEstimate(null)).toBe('unknown');
    expect(rowEstimate(-1)).toBe('unknown');
  });
  it('rounds large counts', () => {
    expect([rowEstimate(0), rowEstimate(1), rowEstimate(999)]).toEqual(['0 rows', '1 row', '999 rows']);
    expect([rowEstimate(1_234), rowEstimate(1_000_000), rowEstimate(123_456_789)]).toEqual([
      '~1.2k rows',
      '~1M rows',
      '~123M rows',
    ]);
  });
});

describe('schema helpers', () => {
  it('turns a column draft into the API definition', () => {
    expect(columnDefinition({ ...emptyColumn(), name: ' age ', type: 'integer', defaultKind: 'value', defaultValue: '18' })).toEqual({
      name: 'age',
      type: 'integer',
      nullable: true,
      default: { value: 18 },
    });
    expect(columnDefinition({ ...emptyColumn(), name: 'tags', array: true, unique: true, nullable: false, defaultKind: 'now()' })).toEqual({
      name: 'tags',
      type: 'text[]',
      nullable: false,
      unique: true,
      default: { expression: 'now()' },
    });
  });

  it('reads the offending rows and the field at fault from an error', () => {
    expect(violationOf({ rows: 2, samples: [{ key: { id: 'a' }, value: 'B' }, 'junk'] })).toEqual({
      rows: 2,
      samples: [{ id: 'a', value: 'B' }],
    });
    expect(violationOf({ field: 'name' })).toBeNull();
    expect(fieldOf({ field: 'columns[1].name' })).toBe('columns[1].name');
    expect(fieldOf(null)).toBeNull();
  });
});

describe('byteSize', () => {
  it('counts in binary units and keeps one decimal below 100', () => {
    expect([byteSize(0), byteSize(1023), byteSize(1024), byteSize(1536)]).toEqual(['0 B', '1023 B', '1 KiB', '1.5 KiB']);
    expect([byteSize(20 * 1024 * 1024), byteSize(150 * 1024 * 1024), byteSize(1.25 * 1024 ** 3)]).toEqual([
      '20 MiB',
      '150 MiB',
      '1.3 GiB',
    ]);
  });
});

describe('sizeLimit', () => {
  it('sends digits as bytes and units as the server reads them', () => {
    expect(sizeLimit(' 1024 ')).toBe(1024);
    expect(sizeLimit('5 mb')).toBe('5MB');
    expect(sizeLimit('20GB')).toBe('20GB');
  });
});
