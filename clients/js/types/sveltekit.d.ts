/**
 * The part of SvelteKit's RequestEvent these hooks read.
 * @typedef {{ request: Request, route: { id: string | null }, url: URL }} RequestEventLike
 * @typedef {{ error: unknown, event: RequestEventLike, status: number, message: string }} ErrorInput
 */
/**
 * Webhook routes by default: a route id starting with `/webhook`, `/webhooks`, `/api/webhook` or `/api/webhooks`.
 * @param {RequestEventLike} event
 */
export function isWebhookRoute(event: RequestEventLike): boolean;
/**
 * A `handle` to compose with `sequence`.
 * @param {{ component?: string, isWebhook?: (event: RequestEventLike) => boolean }} [options]
 * @returns {(input: { event: any, resolve: (event: any, opts?: any) => Response | Promise<Response> }) => Promise<Response>}
 */
export function handle(options?: {
    component?: string;
    isWebhook?: (event: RequestEventLike) => boolean;
}): (input: {
    event: any;
    resolve: (event: any, opts?: any) => Response | Promise<Response>;
}) => Promise<Response>;
/**
 * A `handleError` reporting the error (not 404s: an unknown route is no error of the app), then calling the app's
 * own `handleError`, whose result is what SvelteKit shows.
 * @param {(input: ErrorInput) => unknown} [userHandleError]
 * @returns {(input: ErrorInput) => unknown}
 */
export function handleError(userHandleError?: (input: ErrorInput) => unknown): (input: ErrorInput) => unknown;
export * from "./index.js";
/**
 * The part of SvelteKit's RequestEvent these hooks read.
 */
export type RequestEventLike = {
    request: Request;
    route: {
        id: string | null;
    };
    url: URL;
};
/**
 * The part of SvelteKit's RequestEvent these hooks read.
 */
export type ErrorInput = {
    error: unknown;
    event: RequestEventLike;
    status: number;
    message: string;
};
