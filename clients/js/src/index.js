/**
 * `@stackwatch/sdk`. So far it holds the redaction engine, which runs the same rules as the server and the Python
 * SDK (`scrubEvent`, `scrubText`, `keyRule`; see docs/redaction.md). `init`, the workflow scopes and the durable
 * transport come on top of it.
 */

export * from './scrub/index.js';
