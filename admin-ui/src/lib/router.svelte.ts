// Hash routes (`#/tables`, `#/tables/notes`): the server serves one page at /admin/ and
// never has to know the UI's routes. `#setup=TOKEN` is the first-admin setup link.

export interface Route {
  /** The page: `tables`, `table`, `setup`… */
  page: string;
  /** Path segments after the page's own, decoded. */
  params: string[];
  /** The setup token, on the setup page. */
  token: string | null;
  /** `?name=value` pairs after the path (`#/data/books?author_id=…`). */
  query?: Record<string, string>;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, '');
  if (raw.startsWith('setup=')) {
    return { page: 'setup', params: [], token: decodeURIComponent(raw.slice('setup='.length)) };
  }
  const [path, search] = raw.split('?', 2);
  const query = search ? Object.fromEntries(new URLSearchParams(search)) : undefined;
  const segments = path
    .replace(/^\//, '')
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    });
  if (segments.length === 0) return { page: 'tables', params: [], token: null };
  const [first, ...rest] = segments;
  const page = first === 'tables' && rest.length > 0 ? 'table' : first;
  return query ? { page, params: rest, token: null, query } : { page, params: rest, token: null };
}

/** The hash of a page, for links. */
export function href(...segments: string[]): string {
  return `#/${segments.map(encodeURIComponent).join('/')}`;
}

export const route = $state<Route>(parseHash(typeof location === 'undefined' ? '' : location.hash));

if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    Object.assign(route, parseHash(location.hash));
  });
}

export function navigate(hash: string): void {
  if (location.hash === hash) {
    Object.assign(route, parseHash(hash));
  } else {
    location.hash = hash;
  }
}
