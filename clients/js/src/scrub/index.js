// The redaction engine of @stackwatch/sdk: the same rules (rules.json) and the same results as Python's
// stackwatch.scrub, which the server runs again on every event. docs/redaction.md describes what is removed.

export { FILTERED, foldKey, keyRule, scrubEvent } from './event.js';
export { clearCache, scrubText } from './text.js';
export { ALLOWED_KEYS, OPTIONAL_RULES, RULES, RULES_URL } from './rules.js';

/** @typedef {import('./text.js').ScrubOptions} ScrubOptions */
/** @typedef {import('./text.js').Remark} Remark */
/** @typedef {import('./rules.js').Rule} Rule */
