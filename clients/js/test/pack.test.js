// The npm package: what `npm pack` puts in it, and that the tarball works installed in a project of its own (its
// redaction rules come along: prepack copies rules.json to the package root, postpack removes it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const RULES = fileURLToPath(new URL('../../../src/stackwatch/scrub/rules.json', import.meta.url));
const SENTRY = JSON.parse(readFileSync(join(PACKAGE, 'node_modules', '@sentry', 'node', 'package.json'), 'utf8'));
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

test('the tarball installed in an empty project masks secrets with the rules it carries', () => {
  const [report] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', TMP], PACKAGE));
  const tarball = join(TMP, report.filename);
  assert.ok(!existsSync(join(PACKAGE, 'rules.json')), 'postpack left the copy of rules.json behind');
  const project = join(TMP, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pack-check', private: true, type: 'module' }));
  // The SDK and its peer, @sentry/node, in the version this package is developed against (from npm's cache when
  // it has them).
  const install = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
  run('npm', [...install, tarball, `@sentry/node@${SENTRY.version}`], project);
  const script = `
    const sdk = await import('@stackwatch/sdk');
    await import('@sentry/node');
    const [text] = sdk.scrubText('retry with Authorization: Bearer abc123def456ghi789');
    const event = sdk.scrubEvent({ message: 'GET https://x.io/v1?token=s3cr3tT0ken&page=2', extra: { password: 'hunter2!' } });
    console.log(JSON.stringify({ text, event, rules: sdk.RULES_URL.href }));
  `;
  const out = JSON.parse(run(process.execPath, ['--input-type=module', '-e', script], project));
  assert.equal(out.text, 'retry with Authorization: Bearer [Filtered:bearer]');
  assert.equal(out.event.message, 'GET https://x.io/v1?token=[Filtered:secret_param]&page=2');
  assert.equal(out.event.extra.password, '[Filtered]');
  const installed = realpathSync(join(project, 'node_modules', '@stackwatch', 'sdk'));
  assert.equal(out.rules, pathToFileURL(join(installed, 'rules.json')).href);
  assert.deepEqual(JSON.parse(readFileSync(join(installed, 'rules.json'), 'utf8')), JSON.parse(readFileSync(RULES, 'utf8')));
  assert.ok(existsSync(join(installed, 'types', 'index.d.ts')));
  assert.ok(!existsSync(join(installed, 'test')));
});

test('in a checkout the repository rules.json is read, even beside a copy at the package root', () => {
  const checkout = join(TMP, 'checkout');
  const rulesDir = join(checkout, 'src', 'stackwatch', 'scrub');
  mkdirSync(rulesDir, { recursive: true });
  cpSync(RULES, join(rulesDir, 'rules.json'));
  cpSync(join(PACKAGE, 'src'), join(checkout, 'clients', 'js', 'src'), { recursive: true });
  // A stale copy that would not load at all: it must not be read while the repository's file is there.
  writeFileSync(join(checkout, 'clients', 'js', 'rules.json'), JSON.stringify({ format: 0 }));
  const entry = pathToFileURL(join(checkout, 'clients', 'js', 'src', 'index.js')).href;
  const script = `console.log((await import('${entry}')).RULES_URL.href)`;
  const where = () => run(process.execPath, ['--input-type=module', '-e', script], TMP).trim();
  assert.equal(where(), pathToFileURL(join(rulesDir, 'rules.json')).href);
  // Without the repository (an installed package), the copy is what there is.
  cpSync(RULES, join(checkout, 'clients', 'js', 'rules.json'));
  rmSync(join(checkout, 'src'), { recursive: true });
  assert.equal(where(), pathToFileURL(join(checkout, 'clients', 'js', 'rules.json')).href);
});
