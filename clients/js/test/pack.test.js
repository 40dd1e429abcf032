// The npm package: what `npm pack` puts in it, and that the tarball works installed beside the live @sentry/node 10
// and 11 (its redaction rules come along: prepack copies rules.json to the package root, postpack removes it).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { startRecorder } from './support/recorder.js';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const RULES = fileURLToPath(new URL('../../../src/stackwatch/scrub/rules.json', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'stackwatch-pack-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/**
 * Run a command; its stdout, or a failure with its output.
 * @param {string} command
 * @param {string[]} args
 * @param {string} cwd
 */
function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} (in ${cwd}): ${result.error ?? ''}\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

/**
 * Every file under `dir`, relative to PACKAGE, with / between parts.
 * @param {string} dir
 * @returns {string[]}
 */
function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(PACKAGE, join(entry.parentPath, entry.name)).split('\\').join('/'));
}

test('npm pack holds the sources, the types, rules.json, README.md and LICENSE, and nothing of test/', () => {
  const [report] = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], PACKAGE));
  const packed = report.files.map((/** @type {{ path: string }} */ f) => f.path).sort();
  const expected = [...filesUnder(join(PACKAGE, 'src')), ...filesUnder(join(PACKAGE, 'types'))]
    .concat(['LICENSE', 'README.md', 'package.json', 'rules.json'])
    .sort();
  assert.deepEqual(packed, expected);
  assert.ok(!packed.some((/** @type {string} */ path) => path.startsWith('test/')));
  assert.ok(!existsSync(join(PACKAGE, 'rules.json')), 'postpack left the copy of rules.json behind');
});

/** The tarball, packed once (prepack and postpack of two packs at once would race on the copy of rules.json). */
function tarball() {
  if (!packed) {
    const [report] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', TMP], PACKAGE));
    packed = join(TMP, report.filename);
    assert.ok(!existsSync(join(PACKAGE, 'rules.json')), 'postpack left the copy of rules.json behind');
  }
  return packed;
}
/** @type {string | null} */
let packed = null;

const PROBE = `
import * as Stackwatch from '@stackwatch/sdk';
import * as Sentry from '@sentry/node';
const [dsn, spoolDir] = process.argv.slice(2);
const [text] = Stackwatch.scrubText('retry with Authorization: Bearer abc123def456ghi789');
const scrubbed = Stackwatch.scrubEvent({ message: 'GET https://x.io/v1?token=s3cr3tT0ken&page=2', extra: { password: 'hunter2!' } });
Stackwatch.init({ dsn, component: 'compat', spoolDir });
await Stackwatch.workflowScope({ workflowId: 'wf-c', runId: 'run-c', stepId: 's1', attempt: 1 }, async () => {
  Stackwatch.captureException(new Error('compat failed with token=' + process.env.PROBE_SECRET));
});
const flushed = await Stackwatch.flush(10000);
process.stdout.write(JSON.stringify({ text, scrubbed, flushed, sentry: Sentry.SDK_VERSION, rules: Stackwatch.RULES_URL.href }));
`;

for (const major of ['10', '11']) {
  test(`the tarball works installed beside the live @sentry/node ${major}, with the rules it carries`, async () => {
    // test/compat/sentry-node-<major> holds a locked @sentry/node (make installs it); the tarball is unpacked into
    // its node_modules as npm would install it.
    const project = fileURLToPath(new URL(`./compat/sentry-node-${major}/`, import.meta.url));
    const sentry = JSON.parse(readFileSync(join(project, 'node_modules', '@sentry', 'node', 'package.json'), 'utf8'));
    assert.equal(sentry.version.split('.')[0], major);
    const installed = join(project, 'node_modules', '@stackwatch', 'sdk');
    rmSync(installed, { recursive: true, force: true });
    mkdirSync(installed, { recursive: true });
    run('tar', ['-xzf', tarball(), '-C', installed, '--strip-components=1'], project);
    const probe = join(project, 'probe.mjs');
    writeFileSync(probe, PROBE);
    const recorder = await startRecorder();
    const secret = `zq${randomBytes(10).toString('hex')}`;
    try {
      // Asynchronously: the recorder answers from this process's event loop.
      const { stdout } = await promisify(execFile)(process.execPath, [probe, recorder.dsn(), join(TMP, `spool-${major}`)], {
        cwd: project, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PROBE_SECRET: secret },
      });
      const out = JSON.parse(stdout);
      assert.equal(out.sentry.split('.')[0], major);
      assert.equal(out.text, 'retry with Authorization: Bearer [Filtered:bearer]');
      assert.equal(out.scrubbed.message, 'GET https://x.io/v1?token=[Filtered:secret_param]&page=2');
      assert.equal(out.scrubbed.extra.password, '[Filtered]');
      assert.equal(out.rules, pathToFileURL(join(realpathSync(installed), 'rules.json')).href);
      assert.deepEqual(JSON.parse(readFileSync(join(installed, 'rules.json'), 'utf8')), JSON.parse(readFileSync(RULES, 'utf8')));
      assert.ok(existsSync(join(installed, 'types', 'index.d.ts')));
      assert.ok(!existsSync(join(installed, 'test')));
      assert.equal(out.flushed, true);
      const events = recorder.events;
      assert.equal(events.length, 1);
      assert.equal(events[0].tags.component, 'compat');
      assert.equal(events[0].tags.run_id, 'run-c');
      assert.equal(events[0].contexts.workflow.step_id, 's1');
      assert.equal(JSON.stringify(events[0]).includes(secret), false);
      assert.match(events[0].exception.values.at(-1).value, /token=\[Filtered:secret_param\]/);
    } finally {
      await recorder.close();
      rmSync(probe, { force: true });
      rmSync(installed, { recursive: true, force: true });
    }
  });
}

test('in a checkout the repository rules.json is read, even beside a copy at the package root', () => {
  const checkout = join(TMP, 'checkout');
  const rulesDir = join(checkout, 'src', 'stackwatch', 'scrub');
  mkdirSync(rulesDir, { recursive: true });
  cpSync(RULES, join(rulesDir, 'rules.json'));
  cpSync(join(PACKAGE, 'src'), join(checkout, 'clients', 'js', 'src'), { recursive: true });
  // A stale copy that would not load at all: it must not be read while the repository's file is there.
  writeFileSync(join(checkout, 'clients', 'js', 'rules.json'), JSON.stringify({ format: 0 }));
  // The engine alone (the package entry also imports @sentry/node, which this copy has no node_modules for).
  const entry = pathToFileURL(join(checkout, 'clients', 'js', 'src', 'scrub', 'index.js')).href;
  const script = `console.log((await import('${entry}')).RULES_URL.href)`;
  const where = () => run(process.execPath, ['--input-type=module', '-e', script], TMP).trim();
  assert.equal(where(), pathToFileURL(join(rulesDir, 'rules.json')).href);
  // Without the repository (an installed package), the copy is what there is.
  cpSync(RULES, join(checkout, 'clients', 'js', 'rules.json'));
  rmSync(join(checkout, 'src'), { recursive: true });
  assert.equal(where(), pathToFileURL(join(checkout, 'clients', 'js', 'rules.json')).href);
});
