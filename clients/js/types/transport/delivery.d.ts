/** @param {Answer} answer */
export function isOk(answer: Answer): boolean;
/**
 * The server will never accept this envelope (400 malformed, 413 too large, 401/403 bad key...). Everything else
 * that is not a success (429, 408, 5xx, and 3xx, as no redirect is followed) is worth sending again later.
 * @param {Answer} answer
 */
export function isPermanent(answer: Answer): boolean;
export const GZIP_THRESHOLD: number;
/** @typedef {import('./limits.js').Answer} Answer */
/** The envelope got no answer: connection refused or reset, a timeout, a TLS failure... */
export class DeliveryError extends Error {
}
export class Delivery {
    /**
     * @param {string} url the envelope endpoint, with its query (sentry_key, sentry_version)
     * @param {{
     *   connectTimeoutSeconds: number,
     *   readTimeoutSeconds: number,
     *   compress: boolean,
     *   headers?: Record<string, string>,
     *   caCerts?: string | Buffer | Array<string | Buffer>,
     * }} options
     */
    constructor(url: string, { connectTimeoutSeconds, readTimeoutSeconds, compress, headers, caCerts }: {
        connectTimeoutSeconds: number;
        readTimeoutSeconds: number;
        compress: boolean;
        headers?: Record<string, string>;
        caCerts?: string | Buffer | Array<string | Buffer>;
    });
    url: URL;
    module: typeof https | typeof http;
    /** @type {http.Agent} */
    agent: http.Agent;
    connectMs: number;
    readMs: number;
    compress: boolean;
    /** @type {Record<string, string>} */
    headers: Record<string, string>;
    /** Where envelopes go, without the query that holds the key. */
    get endpoint(): string;
    /**
     * Send one envelope; the server's answer, or a DeliveryError when there was none.
     * @param {Buffer} body
     * @returns {Promise<Answer>}
     */
    post(body: Buffer): Promise<Answer>;
    /**
     * @param {Buffer} payload
     * @param {boolean} gzipped
     * @returns {Promise<Answer>}
     */
    exchange(payload: Buffer, gzipped: boolean): Promise<Answer>;
    close(): void;
}
export type Answer = import("./limits.js").Answer;
import https from 'node:https';
import http from 'node:http';
