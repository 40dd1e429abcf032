/**
 * Server hooks of the MeshHook API. Stackwatch comes first in the sequence, so every request runs in its own scope,
 * tagged with component=api and its route id, and whatever the later hooks or the routes throw is reported by
 * handleError with that context. Request bodies, cookies and authorization or signature headers are never attached.
 */
import * as Stackwatch from '@stackwatch/sdk';
import { handle as stackwatchHandle, handleError as stackwatchHandleError } from '@stackwatch/sdk/sveltekit';
import { sequence } from '@sveltejs/kit/hooks';

import { userForRequest } from '$lib/server/session.js';

Stackwatch.init({
  component: 'api',
  environment: process.env.MESHHOOK_ENV ?? 'development',
  release: process.env.MESHHOOK_RELEASE,
});

/**
 * A request to www.<host> is sent to <host>, as MeshHook does.
 * @type {import('@sveltejs/kit').Handle}
 */
async function redirectWww({ event, resolve }) {
  const host = event.request.headers.get('host');
  if (host?.startsWith('www.')) {
    const url = new URL(event.request.url);
    url.host = host.slice(4);
    return new Response(null, { status: 301, headers: { location: url.href } });
  }
  return resolve(event);
}

/**
 * The signed-in user, from the session cookie or a bearer token (MeshHook asks Supabase; the example has a table).
 * @type {import('@sveltejs/kit').Handle}
 */
async function authenticate({ event, resolve }) {
  event.locals.user = userForRequest(event.request.headers, event.cookies);
  return resolve(event);
}

export const handle = sequence(stackwatchHandle(), redirectWww, authenticate);

/**
 * What the client sees of an unexpected error: a generic message (the details are in Stackwatch).
 * @type {import('@sveltejs/kit').HandleServerError}
 */
function publicError({ status }) {
  return { message: status === 404 ? 'Not found' : 'Internal error' };
}

export const handleError = stackwatchHandleError(publicError);
