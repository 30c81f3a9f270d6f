/**
 * The user guide stays in step with the code: docs/compatibility.md has a row for every URI form
 * the parser accepts (worded as src/uri/forms.ts words it, which is what users see in errors),
 * and every relative link in the guide reaches an existing file and heading.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FORMS } from '../../src/uri/forms.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const DOCS = path.join(REPO, 'docs');

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return markdownFiles(full);
    return entry.name.endsWith('.md') ? [full] : [];
  }).sort();
}

/** The guide, and the deployment README it links to and from. */
const PAGES = [...markdownFiles(DOCS), path.join(REPO, 'deploy', 'kubernetes', 'README.md')];

/** Text outside code: fenced blocks, indented blocks and inline code hold examples, not links. */
function prose(markdown: string): string {
  return markdown
    .replace(/^```[\s\S]*?^```/gm, '')
    .split('\n').filter((line) => !/^( {4}|\t)/.test(line)).join('\n')
    .replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const headings = prose(readFileSync(file, 'utf8')).split('\n').filter((l) => /^#{1,6} /.test(l));
  return new Set(headings.map((h) => slug(h.replace(/^#+ /, ''))));
}

describe('docs', () => {
  it('compatibility.md has a table row for every URI form of src/uri/forms.ts', () => {
    const rows = readFileSync(path.join(DOCS, 'compatibility.md'), 'utf8').split('\n').filter((l) => l.startsWith('|'));
    const forms = Object.entries(FORMS);
    assert.ok(forms.length >= 13, 'the URI table is read');
    for (const [name, form] of forms) {
      assert.ok(rows.some((row) => row.includes(`\`${form}\``)), `docs/compatibility.md has no row for the ${name} form \`${form}\``);
    }
  });

  it('every backend page is linked from the index', () => {
    const index = readFileSync(path.join(DOCS, 'README.md'), 'utf8');
    for (const page of readdirSync(path.join(DOCS, 'backends'))) {
      assert.ok(index.includes(`(backends/${page})`), `docs/README.md does not link backends/${page}`);
    }
  });

  it('relative links reach existing files and headings', () => {
    let checked = 0;
    for (const page of PAGES) {
      for (const match of prose(readFileSync(page, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1] ?? '';
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [file = '', anchor] = target.split('#');
        const resolved = file === '' ? page : path.resolve(path.dirname(page), file);
        const where = `${path.relative(REPO, page)} -> ${target}`;
        assert.ok(existsSync(resolved), `${where}: no such file`);
        if (anchor !== undefined) {
          assert.ok(statSync(resolved).isFile() && resolved.endsWith('.md'), `${where}: an anchor needs a Markdown file`);
          assert.ok(anchorsOf(resolved).has(anchor), `${where}: no heading with that anchor`);
        }
        checked++;
      }
    }
    assert.ok(checked > 40, `only ${checked} links found`);
  });
});
