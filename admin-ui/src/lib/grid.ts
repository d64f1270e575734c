// The data grid's logic, apart from its rendering: the PostgREST query a view of a table
// is, how edits are typed back, and how answers are read.

/** PostgREST's filter operators the filter builder offers, with what people call them. */
export const OPERATORS: [string, string][] = [
  ['eq', 'equals'],
  ['neq', 'does not equal'],
  ['gt', 'greater than'],
  ['gte', 'at least'],
  ['lt', 'less than'],
  ['lte', 'at most'],
  ['like', 'like (* for any)'],
  ['ilike', 'like, any case'],
  ['is', 'is (null, true, false)'],
  ['in', 'one of (a,b,c)'],
];

export interface Filter {
  column: string;
  operator: string;
  value: string;
}

export interface Sort {
  column: string;
  descending: boolean;
}

/** The query string of one page of a table's rows, as the grid shows them. */
export function pageQuery(filters: Filter[], sort: Sort | null, offset: number, limit: number): URLSearchParams {
  const params = new URLSearchParams();
  params.set('select', '*');
  for (const filter of filters) {
    if (!filter.column) continue;
    params.append(filter.column, `${filter.operator}.${filterValue(filter)}`);
  }
  if (sort) params.set('order', `${sort.column}.${sort.descending ? 'desc' : 'asc'}.nullslast`);
  params.set('offset', String(offset));
  params.set('limit', String(limit));
  return params;
}

/** A filter's value as PostgREST reads it: `in` takes a parenthesised list. */
export function filterValue(filter: Filter): string {
  if (filter.operator === 'in') {
    const inner = filter.value.trim().replace(/^\(/, '').replace(/\)$/, '');
    return `(${inner})`;
  }
  return filter.value;
}

/** The filters alone, for an export of what the grid shows. */
export function filterQuery(filters: Filter[], sort: Sort | null): URLSearchParams {
  const params = pageQuery(filters, sort, 0, 1);
  params.delete('offset');
  params.delete('limit');
  return params;
}

/** The total in a `Content-Range` (`0-99/12345`), or null when unknown (`*`). */
export function totalOf(contentRange: string | null): number | null {
  const total = contentRange?.split('/')[1];
  if (!total || total === '*') return null;
  const number = Number(total);
  return Number.isFinite(number) ? number : null;
}

const NUMERIC = ['smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision'];

/** What the cell editor's text means for a column of `type`: a number for numeric types,
 *  a boolean, parsed JSON for json/jsonb, null for an empty non-text value. Throws when
 *  the text cannot be that type. */
export function parseCell(type: string, text: string): unknown {
  const base = type.replace(/\(.*\)$/, '');
  if (base === 'text' || base.startsWith('character')) return text;
  if (text.trim() === '') return null;
  if (NUMERIC.includes(base)) {
    const number = Number(text);
    if (!Number.isFinite(number)) throw new Error(`${text} is not a number`);
    return number;
  }
  if (base === 'boolean') {
    if (/^(true|t|yes)$/i.test(text.trim())) return true;
    if (/^(false|f|no)$/i.test(text.trim())) return false;
    throw new Error(`${text} is not true or false`);
  }
  if (base === 'jsonb' || base === 'json' || base.endsWith('[]') || base === 'ARRAY') {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error('not valid JSON');
    }
  }
  return text;
}

/** A cell's value as the editor shows it. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** A cell's value as the grid shows it: one line, cut short. */
export function cellPreview(value: unknown, max = 120): string {
  if (value === null || value === undefined) return 'NULL';
  const text = cellText(value).replace(/\s+/g, ' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The filter that finds one row by its primary key: `id=eq.…`. */
export function keyFilter(primaryKey: string[], row: Record<string, unknown>): URLSearchParams {
  const params = new URLSearchParams();
  for (const column of primaryKey) params.set(column, `eq.${cellText(row[column])}`);
  return params;
}

/** A stable identity of a row for the edit queue. */
export function rowKey(primaryKey: string[], row: Record<string, unknown>): string {
  return JSON.stringify(primaryKey.map((column) => row[column]));
}
