// CSV for the data grid's import: parsed by papaparse (loaded only when an import
// starts), checked against the table's columns, typed as the grid types edits.

import { parseCell } from './grid';

export interface ParsedCsv {
  header: string[];
  rows: string[][];
}

/** Parses CSV text with a header row. */
export async function parseCsv(text: string): Promise<ParsedCsv> {
  const { default: Papa } = await import('papaparse');
  const result = Papa.parse<string[]>(text.replace(/^\uFEFF/, ''), { skipEmptyLines: 'greedy' });
  const [header = [], ...rows] = result.data;
  return { header: header.map((name) => name.trim()), rows };
}

export interface Prepared {
  /** Rows ready to insert, each with its line in the file (the header is line 1). */
  records: { line: number; record: Record<string, unknown> }[];
  /** Rows that cannot be typed as the columns say, by line. */
  errors: { line: number; message: string }[];
  /** Header names the table does not have. */
  unknown: string[];
}

/** The file's rows as records of the table's columns. An empty field is left out, so the
 *  column's default (or NULL) applies. */
export function prepare(parsed: ParsedCsv, columns: { name: string; data_type: string }[]): Prepared {
  const types = new Map(columns.map((column) => [column.name, column.data_type]));
  const unknown = parsed.header.filter((name) => !types.has(name));
  const prepared: Prepared = { records: [], errors: [], unknown };
  parsed.rows.forEach((row, index) => {
    const line = index + 2;
    if (row.length !== parsed.header.length) {
      prepared.errors.push({ line, message: `${row.length} fields where the header has ${parsed.header.length}` });
      return;
    }
    const record: Record<string, unknown> = {};
    try {
      parsed.header.forEach((name, at) => {
        const type = types.get(name);
        if (!type || row[at] === '') return;
        try {
          record[name] = parseCell(type, row[at]);
        } catch (error) {
          throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        }
      });
      prepared.records.push({ line, record });
    } catch (error) {
      prepared.errors.push({ line, message: error instanceof Error ? error.message : String(error) });
    }
  });
  return prepared;
}
