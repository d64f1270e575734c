import { describe, expect, it } from 'vitest';
import { cellPreview, filterQuery, keyFilter, pageQuery, parseCell, rowKey, totalOf } from './grid';

describe('pageQuery', () => {
  it('builds PostgREST filters, order and the page', () => {
    const query = pageQuery(
      [
        { column: 'name', operator: 'ilike', value: '*ann*' },
        { column: 'id', operator: 'in', value: '1, 2,3' },
        { column: '', operator: 'eq', value: 'ignored' },
      ],
      { column: 'created_at', descending: true },
      200,
      100,
    );
    expect(query.toString()).toBe(
      'select=*&name=ilike.*ann*&id=in.%281%2C+2%2C3%29&order=created_at.desc.nullslast&offset=200&limit=100',
    );
    expect(filterQuery([{ column: 'n', operator: 'gt', value: '2' }], null).toString()).toBe('select=*&n=gt.2');
  });
});

describe('totalOf', () => {
  it('reads the total of a Content-Range', () => {
    expect(totalOf('0-99/12345')).toBe(12345);
    expect(totalOf('*/0')).toBe(0);
    expect(totalOf('0-9/*')).toBeNull();
    expect(totalOf(null)).toBeNull();
  });
});

describe('parseCell', () => {
  it('types what was typed by the column', () => {
    expect(parseCell('integer', '42')).toBe(42);
    expect(parseCell('integer', '')).toBeNull();
    expect(parseCell('text', '')).toBe('');
    expect(parseCell('boolean', 'Yes')).toBe(true);
    expect(parseCell('jsonb', '{"a":1}')).toEqual({ a: 1 });
    expect(() => parseCell('integer', 'forty')).toThrow('not a number');
    expect(() => parseCell('jsonb', '{')).toThrow('not valid JSON');
  });
});

describe('cells and keys', () => {
  it('shows long values on one short line and NULL as NULL', () => {
    expect(cellPreview(null)).toBe('NULL');
    expect(cellPreview('a\nb   c')).toBe('a b c');
    expect(cellPreview('x'.repeat(200), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(cellPreview({ a: [1, 2] })).toBe('{"a":[1,2]}');
  });
  it('finds a row by its primary key', () => {
    const row = { id: 'abc', n: 1 };
    expect(keyFilter(['id'], row).toString()).toBe('id=eq.abc');
    expect(rowKey(['id'], row)).toBe('["abc"]');
  });
});
