// `@stackwatch/sdk/sveltekit`: what a SvelteKit app's `src/hooks.server.js` needs.
//
//   import * as Stackwatch from '@stackwatch/sdk/sveltekit';
//   import { sequence } from '@sveltejs/kit/hooks';
//   Stackwatch.init({ component: 'api' });
//   export const handle = sequence(Stackwatch.handle(), myHandle);
//   export const handleError = Stackwatch.handleError(myHandleError);
//
// Each request runs in its own isolation scope tagged `component` and `route` (the route id, e.g.
// `/api/workflows/[id]`), with the transaction named `GET /api/workflows/[id]`. Request bodies, cookies and headers
// beyond the allow-list are never attached (the hooks of `init`); on webhook routes that holds even with
// `keepRequestDetails`, so a webhook's payload and its signature headers never leave the process.

import * as Sentry from '@sentry/node';
import { requestPolicy } from './hooks.js';

export * from './index.js';

/**
 * The part of SvelteKit's RequestEvent these hooks read.
 * @typedef {{ request: Request, route: { id: string | null }, url: URL }} RequestEventLike
 * @typedef {{ error: unknown, event: RequestEventLike, status: number, message: string }} ErrorInput
 */

/**
 * Webhook routes by default: a route id starting with `/webhook`, `/webhooks`, `/api/webhook` or `/api/webhooks`.
 * @param {RequestEventLike} event
 */
export function isWebhookRoute(event) {
  const id = event.route?.id ?? '';
  return /^\/(?:api\/)?webhooks?(?:\/|$)/.test(id) || /(^|\/)\(webhooks?\)(\/|$)/.test(id);
}

/**
 * A `handle` to compose with `sequence`.
 * @param {{ component?: string, isWebhook?: (event: RequestEventLike) => boolean }} [options]
 * @returns {(input: { event: any, resolve: (event: any, opts?: any) => Response | Promise<Response> }) => Promise<Response>}
 */
export function handle(options = {}) {
  const component = options.component ?? 'api';
  const isWebhook = options.isWebhook ?? isWebhookRoute;
  return ({ event, resolve }) => {
    const routeId = event.route?.id ?? null;
    const webhook = safely(() => isWebhook(event), true);
    return Sentry.withIsolationScope((scope) => {
      scope.setTag('component', component);
      if (routeId) {
        scope.setTag('route', routeId);
        scope.setTransactionName(`${event.request.method} ${routeId}`);
      }
      if (webhook) scope.setTag('webhook', 'true');
      return requestPolicy.run({ webhook }, async () => resolve(event));
    });
  };
}

/**
 * @template T
 * @param {() => T} work
 * @param {T} fallback
 */
function safely(work, fallback) {
  try {
    return work();
  } catch {
    return fallback;
  }
}

/**
 * A `handleError` reporting the error (not 404s: an unknown route is no error of the app), then calling the app's
 * own `handleError`, whose result is what SvelteKit shows.
 * @param {(input: ErrorInput) => unknown} [userHandleError]
 * @returns {(input: ErrorInput) => unknown}
 */
export function handleError(userHandleError) {
  return (input) => {
    if (input.status !== 404) {
      Sentry.withScope((scope) => {
        const routeId = input.event?.route?.id;
        if (routeId) scope.setTag('route', routeId);
        Sentry.captureException(input.error, { data: { mechanism: { type: 'sveltekit', handled: false } } });
      });
    }
    return userHandleError ? userHandleError(input) : undefined;
  };
}
