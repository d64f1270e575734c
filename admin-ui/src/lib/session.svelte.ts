import { api, ApiFailure, onSignedOut } from './api';

export interface Admin {
  id: string;
  email: string;
}

/** Who is signed in; `checked` once the server has been asked. */
export const session = $state<{ admin: Admin | null; checked: boolean }>({ admin: null, checked: false });

onSignedOut(() => {
  session.admin = null;
});

/** Asks the server whether this browser holds a live session. */
export async function checkSession(): Promise<void> {
  try {
    const answer = await api<{ admin: Admin }>('GET', '/session', undefined, { quiet401: true });
    session.admin = answer.admin;
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status !== 401) throw error;
    session.admin = null;
  } finally {
    session.checked = true;
  }
}

export async function signIn(email: string, password: string, code?: string): Promise<void> {
  const answer = await api<{ admin: Admin }>(
    'POST',
    '/session',
    code ? { email, password, code } : { email, password },
    { quiet401: true },
  );
  session.admin = answer.admin;
}

export async function setUp(token: string, email: string, password: string): Promise<void> {
  const answer = await api<{ admin: Admin }>('POST', '/setup', { token, email, password }, { quiet401: true });
  session.admin = answer.admin;
}

export async function signOut(): Promise<void> {
  await api<void>('DELETE', '/session', undefined, { quiet401: true });
  session.admin = null;
}
