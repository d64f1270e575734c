// The shapes /admin/v1 speaks for tables, and the curated choices its forms offer.

export const BASE_TYPES = [
  'text',
  'integer',
  'bigint',
  'smallint',
  'numeric',
  'real',
  'double precision',
  'boolean',
  'date',
  'time',
  'timestamptz',
  'interval',
  'uuid',
  'jsonb',
  'bytea',
] as const;

export const DEFAULT_EXPRESSIONS = ['now()', 'gen_random_uuid()', 'auth.uid()'] as const;

export const REFERENTIAL_ACTIONS = ['no action', 'restrict', 'cascade', 'set null', 'set default'] as const;

export interface Column {
  name: string;
  position: number;
  data_type: string;
  nullable: boolean;
  default: string | null;
  identity: boolean;
  generated: boolean;
  comment: string | null;
}

export interface Constraint {
  name: string;
  kind: string;
  columns: string[];
  definition: string;
}

export interface Relation {
  schema: string;
  name: string;
  kind: string;
  columns: Column[];
  primary_key: string[];
  constraints: Constraint[];
  indexes: { name: string; unique: boolean; definition: string }[];
  foreign_keys: unknown[];
  rls_enabled: boolean;
  rls_forced: boolean;
  /** Publishes its changes to Realtime subscribers. */
  realtime?: boolean;
  comment: string | null;
  row_estimate?: number | null;
}

export interface ChangeResult {
  dry_run: boolean;
  history_id: number | null;
  sql: string;
}

/** A column as the form edits it. */
export interface ColumnDraft {
  name: string;
  type: string;
  array: boolean;
  nullable: boolean;
  unique: boolean;
  /** `none`, `value`, or one of DEFAULT_EXPRESSIONS. */
  defaultKind: string;
  defaultValue: string;
}

export function emptyColumn(): ColumnDraft {
  return { name: '', type: 'text', array: false, nullable: true, unique: false, defaultKind: 'none', defaultValue: '' };
}

/** A literal default as the API takes it: numbers and booleans for those types. */
export function defaultLiteral(type: string, text: string): unknown {
  if (['integer', 'bigint', 'smallint', 'real', 'double precision', 'numeric'].includes(type)) {
    const number = Number(text);
    return text.trim() !== '' && Number.isFinite(number) ? number : text;
  }
  if (type === 'boolean') {
    if (text === 'true') return true;
    if (text === 'false') return false;
  }
  if (type === 'jsonb') {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** The API's column definition for a draft. */
export function columnDefinition(draft: ColumnDraft): Record<string, unknown> {
  const definition: Record<string, unknown> = {
    name: draft.name.trim(),
    type: draft.array ? `${draft.type}[]` : draft.type,
    nullable: draft.nullable,
  };
  if (draft.unique) definition.unique = true;
  if (draft.defaultKind === 'value') {
    definition.default = { value: defaultLiteral(draft.type, draft.defaultValue) };
  } else if (draft.defaultKind !== 'none') {
    definition.default = { expression: draft.defaultKind };
  }
  return definition;
}

/** What `details` of a refused change says, when it is the rows that refuse it. */
export interface Violation {
  rows: number;
  samples: Record<string, unknown>[];
}

export function violationOf(details: unknown): Violation | null {
  if (typeof details !== 'object' || details === null) return null;
  const { rows, samples } = details as { rows?: unknown; samples?: unknown };
  if (typeof rows !== 'number' || !Array.isArray(samples)) return null;
  return {
    rows,
    samples: samples.filter((s) => typeof s === 'object' && s !== null).map(flattenSample),
  };
}

/** A sample row as the server sends it (`{key: {id: …}, value: …}`) as one flat row:
 *  the key's columns, then the offending value. */
export function flattenSample(sample: Record<string, unknown>): Record<string, unknown> {
  const { key, ...rest } = sample;
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return sample;
  return { ...(key as Record<string, unknown>), ...rest };
}

/** The field a refused definition names (`columns[2].type`), if any. */
export function fieldOf(details: unknown): string | null {
  if (typeof details !== 'object' || details === null) return null;
  const field = (details as { field?: unknown }).field;
  return typeof field === 'string' ? field : null;
}
