import { describe, expect, it } from 'vitest';
import { parseCsv, prepare } from './csv';

const columns = [
  { name: 'name', data_type: 'text' },
  { name: 'age', data_type: 'integer' },
  { name: 'tags', data_type: 'jsonb' },
];

describe('CSV import', () => {
  it('parses quotes, commas and new lines inside fields', async () => {
    const parsed = await parseCsv('\uFEFFname,age\n"Doe, Jane",41\n"two\nlines",\n\n');
    expect(parsed).toEqual({ header: ['name', 'age'], rows: [['Doe, Jane', '41'], ['two\nlines', '']] });
  });

  it('types fields by column, leaves empty ones to the default, and names bad rows', async () => {
    const parsed = await parseCsv('name,age,tags\nAnn,30,"[""a""]"\nBob,x,\nCy,,\nshort\n');
    const prepared = prepare(parsed, columns);
    expect(prepared.records).toEqual([
      { line: 2, record: { name: 'Ann', age: 30, tags: ['a'] } },
      { line: 4, record: { name: 'Cy' } },
    ]);
    expect(prepared.errors).toEqual([
      { line: 3, message: 'age: x is not a number' },
      { line: 5, message: '1 fields where the header has 3' },
    ]);
    expect(prepared.unknown).toEqual([]);
  });

  it('names header columns the table does not have', async () => {
    const prepared = prepare(await parseCsv('name,colour\nAnn,red\n'), columns);
    expect(prepared.unknown).toEqual(['colour']);
  });
});
