// A child process for test/init.test.js: init with a slow transport that appends each envelope to a file, capture,
// say "ready", then wait to be signalled. Arguments: <output file> <extra SIGTERM listener: yes|no>.
import { appendFileSync } from 'node:fs';
import * as Sentry from '@sentry/node';
import * as Stackwatch from '../../src/index.js';

const [output, extra] = process.argv.slice(2);
Stackwatch.init({
  dsn: 'http://public@127.0.0.1:9/1',
  component: 'worker',
  transport: (options) =>
    Sentry.createTransport(options, async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      appendFileSync(output, `${Buffer.from(request.body).length}\n`);
      return { statusCode: 200 };
    }),
});
if (extra === 'yes') {
  process.on('SIGTERM', () => {
    setTimeout(() => process.exit(7), 1000);
  });
}
for (let i = 0; i < 3; i += 1) Stackwatch.captureException(new Error(`burst ${i}`));
setInterval(() => {}, 1000);
process.stdout.write('ready\n');
