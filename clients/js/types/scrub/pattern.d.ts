/**
 * A pattern in Python's spelling as JavaScript source and flags (always with `u`).
 * @param {string} pattern
 * @returns {{ source: string, flags: string }}
 */
export function toJavaScript(pattern: string): {
    source: string;
    flags: string;
};
export class PatternError extends Error {
}
