// Running a worker as its own process: init Stackwatch with the worker's component, start consuming, and when the
// broker says stop, let the running jobs end and send what is still buffered before exiting.
import * as Stackwatch from '@stackwatch/sdk';

import { queue } from './queue.js';

/**
 * @param {string} component
 * @param {() => Promise<void>} start
 */
export async function runWorker(component, start) {
  // The DSN comes from STACKWATCH_DSN, the spool folder from STACKWATCH_SPOOL_DIR.
  Stackwatch.init({ component, environment: process.env.MESHHOOK_ENV ?? 'development' });
  await start();
  await queue.closed();
  await Stackwatch.flush(5_000);
  process.exit(0);
}
