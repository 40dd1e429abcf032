// Who is asking. MeshHook asks Supabase for the user of the session; the example accepts any session cookie or
// bearer token and maps it to one demo user, without keeping or logging the credential.

const DEMO_USER = Object.freeze({ id: 'user_7f3a', tenant: 'acme' });

/**
 * @param {Headers} headers
 * @param {import('@sveltejs/kit').Cookies} cookies
 * @returns {{ id: string, tenant: string } | null}
 */
export function userForRequest(headers, cookies) {
  const bearer = headers.get('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const session = cookies.get('sb-access-token');
  return bearer || session ? DEMO_USER : null;
}
