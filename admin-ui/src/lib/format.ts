/** A row estimate for people: `~1.2M rows`, `12 rows`, `unknown`. */
export function rowEstimate(rows: number | null | undefined): string {
  if (rows === null || rows === undefined || rows < 0) return 'unknown';
  if (rows < 1000) return `${rows} ${rows === 1 ? 'row' : 'rows'}`;
  const units: [number, string][] = [
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, unit] of units) {
    if (rows >= size) {
      const value = rows / size;
      return `~${value >= 100 ? Math.round(value) : Number(value.toFixed(1))}${unit} rows`;
    }
  }
  return `${rows} rows`;
}

/** A number of bytes for people: `512 B`, `1.5 KiB`, `20 MiB`, `1.2 GiB`. */
export function byteSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = '';
  for (const next of units) {
    value /= 1024;
    unit = next;
    if (value < 1024) break;
  }
  return `${value >= 100 ? Math.round(value) : Number(value.toFixed(1))} ${unit}`;
}

/** A size limit as a bucket takes it: a plain number is bytes; `5MB`, `20 KB` and such
 *  are passed on for the server to read (and refuse with its own words when invalid). */
export function sizeLimit(text: string): number | string {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed.replace(/\s+/g, '').toUpperCase();
}
