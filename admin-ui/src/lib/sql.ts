// The SQL console's checks before it runs anything: what in a piece of SQL destroys data,
// and where an error's position points.

/** The SQL without comments and with string literals emptied, for keyword checks. */
export function stripped(sql: string): string {
  return sql
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?\$\1\$/g, "''")
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:[^"]|"")*"/g, '""')
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ');
}

/** Why committing `sql` would destroy something: DROP, TRUNCATE, a DELETE or UPDATE
 *  without WHERE, an ALTER … DROP. Empty when nothing looks destructive. */
export function destructive(sql: string): string[] {
  const reasons: string[] = [];
  for (const statement of stripped(sql).split(';')) {
    const text = statement.trim().replace(/\s+/g, ' ');
    if (/^drop\b/i.test(text)) reasons.push(`DROP: ${text.slice(0, 60)}`);
    else if (/^truncate\b/i.test(text)) reasons.push(`TRUNCATE: ${text.slice(0, 60)}`);
    else if (/^delete\b/i.test(text) && !/\bwhere\b/i.test(text)) reasons.push('DELETE without WHERE: every row');
    else if (/^update\b/i.test(text) && !/\bwhere\b/i.test(text)) reasons.push('UPDATE without WHERE: every row');
    else if (/^alter\b.*\bdrop\b/i.test(text)) reasons.push(`ALTER … DROP: ${text.slice(0, 60)}`);
  }
  return reasons;
}

/** Line and column (from 1) of a 1-based character position in `sql`. */
export function lineAndColumn(sql: string, position: number): { line: number; column: number } {
  const before = [...sql].slice(0, Math.max(0, position - 1)).join('');
  const lines = before.split('\n');
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}
