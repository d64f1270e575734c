import { describe, expect, it } from 'vitest';
import { destructive, lineAndColumn } from './sql';

describe('destructive', () => {
  it('names what destroys data', () => {
    expect(destructive('drop table notes')).toEqual(['DROP: drop table notes']);
    expect(destructive('delete from notes')).toEqual(['DELETE without WHERE: every row']);
    expect(destructive('update notes set a = 1')).toEqual(['UPDATE without WHERE: every row']);
    expect(destructive('ALTER TABLE notes DROP COLUMN body')).toHaveLength(1);
    expect(destructive('truncate notes; select 1')).toHaveLength(1);
  });
  it('leaves alone what does not, and what only looks like it', () => {
    expect(destructive('delete from notes where id = 1')).toEqual([]);
    expect(destructive("select 'drop table x'")).toEqual([]);
    expect(destructive('select 1 -- drop table x')).toEqual([]);
    expect(destructive('create table t (a int); insert into t values (1)')).toEqual([]);
    expect(destructive('select $$; drop table x$$')).toEqual([]);
  });
});

describe('lineAndColumn', () => {
  it('turns a position into a line and column', () => {
    expect(lineAndColumn('selec 1', 1)).toEqual({ line: 1, column: 1 });
    expect(lineAndColumn('select 1;\nselec 2', 11)).toEqual({ line: 2, column: 1 });
  });
});
