// The errors the workers raise on purpose. Everything else (a TypeError in a transform, a SyntaxError in a stored
// definition) is what JavaScript throws by itself.

/** A target answered with a status that is not 2xx. */
export class HttpStatusError extends Error {
  /**
   * @param {string} method
   * @param {URL} url
   * @param {number} status
   * @param {string} [detail] the start of the response body
   */
  constructor(method, url, status, detail = '') {
    super(`${method} ${url.origin}${url.pathname} answered ${status}${detail ? `: ${detail}` : ''}`);
    this.name = 'HttpStatusError';
    this.status = status;
  }
}

/** A step that failed on every attempt; `cause` is the last attempt's error. */
export class StepFailedError extends Error {
  /**
   * @param {string} message
   * @param {{ cause: unknown }} options
   */
  constructor(message, options) {
    super(message, options);
    this.name = 'StepFailedError';
  }
}

/** A workflow definition that cannot be used; `cause` says why. */
export class DefinitionError extends Error {
  /**
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = 'DefinitionError';
  }
}
