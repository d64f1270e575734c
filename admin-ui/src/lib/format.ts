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
