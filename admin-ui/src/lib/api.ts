// The admin UI's only way to the server: /admin/v1, with the session cookie the browser
// holds (HttpOnly: this code never sees it) and no API key. Every failure becomes an
// ApiFailure carrying Galley's error shape and the request id, to show where it happened.

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
  hint?: string | null;
  request_id?: string;
}

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly hint: string | null;
  readonly requestId: string | null;

  constructor(status: number, body: ErrorBody, requestId: string | null) {
    super(body.message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = body.code;
    this.details = body.details ?? null;
    this.hint = body.hint ?? null;
    this.requestId = body.request_id ?? requestId;
  }
}

type Listener = () => void;
const signedOutListeners = new Set<Listener>();

/** Calls `listener` whenever the server says the session is gone (401). */
export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

/** The error body of a failed response, whatever came back. */
export async function failureOf(response: Response): Promise<ApiFailure> {
  const requestId = response.headers.get('x-request-id');
  let body: ErrorBody;
  try {
    const parsed: unknown = await response.json();
    body = isErrorBody(parsed)
      ? parsed
      : { code: 'unexpected', message: `Galley answered ${response.status}` };
  } catch {
    body = { code: 'unexpected', message: `Galley answered ${response.status} ${response.statusText}` };
  }
  return new ApiFailure(response.status, body, requestId);
}

export function isErrorBody(value: unknown): value is ErrorBody {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ErrorBody).code === 'string' &&
    typeof (value as ErrorBody).message === 'string'
  );
}

export interface RequestOptions {
  /** Query parameters, appended in order. */
  query?: Record<string, string | number | boolean | undefined>;
  /** A 401 is expected (the session check): do not announce a sign-out. */
  quiet401?: boolean;
}

/** The URL of an admin API path with its query. */
export function adminUrl(path: string, query?: RequestOptions['query']): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.append(key, String(value));
  }
  const search = params.toString();
  return `/admin/v1${path}${search ? `?${search}` : ''}`;
}

/** One call to /admin/v1; resolves to the JSON answer (undefined for 204). */
export async function api<T>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(adminUrl(path, options.query), {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiFailure(0, { code: 'network', message: 'Galley did not answer: check that it is running and reachable.' }, null);
  }
  if (!response.ok) {
    const failure = await failureOf(response);
    if (response.status === 401 && !options.quiet401) {
      for (const listener of signedOutListeners) listener();
    }
    throw failure;
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export interface RestOptions {
  /** Who the request runs as: `service_role` (default), `anon`, or `user:<uuid>`. */
  viewAs?: string;
  body?: unknown;
  prefer?: string;
  accept?: string;
}

/** One request to the REST dialect through /admin/v1/rest; the raw response (for its
 *  headers), once it is known to have succeeded. */
export async function rest(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  table: string,
  params: URLSearchParams,
  options: RestOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
  if (options.viewAs) headers['x-galley-view-as'] = options.viewAs;
  if (options.prefer) headers.prefer = options.prefer;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const search = params.toString();
  let response: Response;
  try {
    response = await fetch(`/admin/v1/rest/${encodeURIComponent(table)}${search ? `?${search}` : ''}`, {
      method,
      credentials: 'same-origin',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiFailure(0, { code: 'network', message: 'Galley did not answer: check that it is running and reachable.' }, null);
  }
  if (!response.ok) {
    const failure = await failureOf(response);
    if (response.status === 401 && failure.code === 'unauthorized') {
      for (const listener of signedOutListeners) listener();
    }
    throw failure;
  }
  return response;
}
