// A Node process with real @sentry/node on the spool transport, driven by the process tests. Its configuration is
// JSON in argv[2]: { dsn, settings, scenario, count?, flushMs?, shutdownTimeout?, sentry? (more init options) }. It reports on stdout, one JSON
// object a line: {"captured": <event id>} from beforeSend for every event handed to the transport, {"done": true}
// when its scenario has captured everything, {"state": ...} (the transport's state) when asked or before a planned
// exit. It reads commands from stdin, one a line: "state", "exit", "capture <n>" (n more errors, then {"spooled": n}
// once the transport has them all), "flush <ms>" (await Sentry.flush(ms), then {"flushed", "state"}), "sender"
// ({"sender": {"running", "next"}}: whether the sender loop is in a step and what it waits for until the next, so
// that a test knows that a lock attempt or a listing is behind).
//
// Scenarios:
//   capture    capture `count` errors, then wait for commands (the parent kills it or says "exit")
//   flush      capture `count` errors, await Sentry.flush(flushMs), report the state and exit 0
//   natural    capture `count` errors and leave: the process ends when its event loop is empty (no stdin)
//   unsent     capture `count` errors that the SDK drops itself (config.sentry: { sampleRate: 0 }), flush, exit 0
//   replay     capture nothing: await Sentry.flush(flushMs) (what earlier processes left), report, exit 0
//   uncaught   throw from a timer: @sentry/node's handler reports it and exits 1
//   unhandled  reject a promise nobody handles (unhandled rejections in "strict" mode: reported, exit 1)
//   burst      capture `count` errors, one per turn of the event loop; on SIGTERM: await Sentry.flush(2000), exit 0
//   exit       capture `count` errors (in one turn, so at most 64) and call process.exit(0) in the same turn, as soon
//              as the transport's send() has been called for the last of them (no await: its file is not written yet)
//   version    report the @sentry/node version and exit
//
// With `stackwatch: true` the process starts with @stackwatch/sdk's init instead (component "child", its signal
// handlers on, the test's spool settings): `capture`, `flush` and `burst` then capture all `count` errors in one
// turn of the event loop (init lifts @sentry/core's cut at 64), and `burst` relies on init's SIGTERM handler.

import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

import { makeSpoolTransport } from '../../src/transport/index.js';

// STACKWATCH_TEST_SENTRY_NODE=<path of another @sentry/node's package folder> runs the scenarios on that version
// (e.g. a 10.x installed elsewhere); by default, the devDependency.
const other = process.env.STACKWATCH_TEST_SENTRY_NODE;
/** @type {typeof import('@sentry/node')} */
const Sentry = other ? await import(pathToFileURL(`${other}/build/cjs/index.js`).href) : await import('@sentry/node');

const config = JSON.parse(process.argv[2]);
const { scenario, count = 1, flushMs = 10_000 } = config;

let processed = 0;

/** @param {unknown} message */
function say(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

function state() {
  const transport = /** @type {any} */ (Sentry.getClient()?.getTransport());
  return transport.state();
}

/**
 * For the `exit` scenario: a transport whose `count`-th send() is followed, in the same turn, by process.exit(0).
 * @param {ReturnType<typeof makeSpoolTransport>} factory
 * @returns {ReturnType<typeof makeSpoolTransport>}
 */
function exitAfterSends(factory) {
  return (options) => {
    const transport = factory(options);
    const send = transport.send.bind(transport);
    let sends = 0;
    transport.send = (envelope) => {
      const result = send(envelope);
      sends += 1;
      if (sends === count) {
        say({ state: transport.state() });
        process.exit(0);
      }
      return result;
    };
    return transport;
  };
}

const spoolTransport = makeSpoolTransport({ dsn: config.dsn, ...config.settings });
const options = {
  dsn: config.dsn,
  transport: scenario === 'exit' ? exitAfterSends(spoolTransport) : spoolTransport,
  shutdownTimeout: config.shutdownTimeout ?? 300,
  /** @param {any[]} defaults */
  integrations: (defaults) =>
    scenario === 'unhandled' ? [...defaults, Sentry.onUnhandledRejectionIntegration({ mode: 'strict' })] : defaults,
  ...config.sentry,
  /** @param {any} event */
  beforeSend(event) {
    processed += 1;
    say({ captured: event.event_id });
    return event;
  },
};
if (config.stackwatch) {
  const Stackwatch = await import('../../src/index.js');
  Stackwatch.init({ ...options, component: 'child', shutdownTimeoutMs: 2000 });
} else {
  Sentry.init(options);
}

if (scenario !== 'natural') {
  createInterface({ input: process.stdin }).on('line', async (line) => {
    const [command, arg] = line.split(' ');
    if (command === 'state') say({ state: state() });
    if (command === 'exit') {
      say({ state: state() });
      process.exit(0);
    }
    if (command === 'sender') {
      const { running, next } = /** @type {any} */ (Sentry.getClient()?.getTransport()).sender;
      say({ sender: { running, next } });
    }
    if (command === 'capture') await spoolMany(Number(arg));
    if (command === 'flush') say({ flushed: await Sentry.flush(Number(arg)), state: state() });
  });
}

/** @param {number} i */
function capture(i) {
  Sentry.captureException(new Error(`${scenario} error ${i}`));
}

/**
 * Capture `n` errors, 50 at a time: @sentry/core 11 processes at most 64 events at once (the client's own buffer,
 * transportOptions.bufferSize) and drops the rest as queue_overflow before any transport sees them, so a steady
 * stream of errors is what the spool gets in practice, not 500 in one turn of the event loop.
 * @param {number} n
 * @param {boolean} [done] whether to say {"done": true} at the end
 */
async function captureMany(n, done = true) {
  const base = processed;
  if (config.stackwatch) {
    for (let i = 0; i < n; i += 1) capture(base + i);
    while (processed < base + n) await new Promise((resolve) => setTimeout(resolve, 1));
    if (done) say({ done: true });
    return;
  }
  for (let i = 0; i < n; i += 1) {
    capture(base + i);
    if ((i + 1) % 50 === 0 || i + 1 === n) {
      while (processed < base + i + 1) await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  if (done) say({ done: true });
}

/**
 * Capture `n` errors and say {"spooled": n} once the transport has them all (beforeSend runs before it does).
 * @param {number} n
 */
async function spoolMany(n) {
  const transport = /** @type {any} */ (Sentry.getClient()?.getTransport());
  const target = transport.captures + n;
  await captureMany(n, false);
  while (transport.captures < target) await new Promise((resolve) => setTimeout(resolve, 1));
  say({ spooled: n });
}

async function flushAndExit() {
  const flushed = await Sentry.flush(flushMs);
  say({ flushed, state: state() });
  process.exit(0);
}

switch (scenario) {
  case 'capture':
    setInterval(() => {}, 1000); // alive until told or killed
    await captureMany(count);
    break;
  case 'flush':
    await captureMany(count);
    await flushAndExit();
    break;
  case 'replay':
    await flushAndExit();
    break;
  case 'unsent':
    await captureMany(count); // the SDK counts its drop just after beforeSend
    await flushAndExit();
    break;
  case 'natural':
    await captureMany(count);
    break;
  case 'uncaught':
    setTimeout(() => {
      throw new Error('uncaught boom');
    }, 10);
    break;
  case 'unhandled':
    setTimeout(() => {
      Promise.reject(new Error('unhandled boom'));
    }, 10);
    break;
  case 'burst': {
    if (!config.stackwatch) {
      process.on('SIGTERM', async () => {
        const flushed = await Sentry.flush(2000);
        say({ flushed, state: state() });
        process.exit(0);
      });
    }
    let i = 0;
    const next = () => {
      capture(i);
      i += 1;
      if (i < count) setImmediate(next);
      else say({ done: true });
    };
    say({ ready: true });
    next();
    setInterval(() => {}, 1000);
    break;
  }
  case 'exit':
    for (let i = 0; i < count; i += 1) capture(i);
    break;
  case 'version':
    say({ version: Sentry.SDK_VERSION });
    process.exit(0);
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
