import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { toMarkdown } from '../src/markdown';

test('scalars become a list with readable names', () => {
    const text = toMarkdown('ouzel status', { version: '0.1.0', openDocuments: 2, position_encoding: 'utf-16', ok: true, none: null });
    assert.match(text, /^# ouzel status\n/);
    assert.match(text, /- \*\*Version\*\*: 0\.1\.0/);
    assert.match(text, /- \*\*Open documents\*\*: 2/);
    assert.match(text, /- \*\*Position encoding\*\*: utf-16/);
    assert.match(text, /- \*\*Ok\*\*: true/);
    assert.match(text, /- \*\*None\*\*: —/);
});

test('code and long text become fenced blocks in the right language', () => {
    const text = toMarkdown('context', {
        snippets: [{ path: 'pkg/util.py', score: 0.5, text: 'def f():\n    return 1\n' }],
        prompt: 'x'.repeat(100),
    });
    assert.match(text, /## Snippets\n\n### 1\n\n- \*\*Path\*\*: pkg\/util\.py\n- \*\*Score\*\*: 0\.5\n\n#### Text\n\n```python\ndef f\(\):\n    return 1\n```/);
    assert.match(text, /## Prompt\n\n```\nx{100}\n```/);
});

test('the language also comes from a displayPath (ouzel/context parts)', () => {
    const text = toMarkdown('context', { parts: [{ source: 'definition', displayPath: 'lib/geo.rs', text: 'fn area() {}\n' }] });
    assert.match(text, /```rust\nfn area\(\) \{\}\n```/);
});

test('backticks inside code cannot end the fence early', () => {
    const text = toMarkdown('t', { code: 'a\n```\nb' });
    assert.match(text, /````\na\n```\nb\n````/);
});

test('lists of scalars, empty lists and nesting', () => {
    const text = toMarkdown('t', { folders: ['/a', '/b'], empty: [], index: { files: 3, state: { phase: 'idle' } } });
    assert.match(text, /## Folders\n\n- \/a\n- \/b/);
    assert.match(text, /## Empty\n\n\(none\)/);
    assert.match(text, /## Index\n\n- \*\*Files\*\*: 3\n\n### State\n\n- \*\*Phase\*\*: idle/);
});

test('a bare value still renders', () => {
    assert.equal(toMarkdown('t', null), '# t\n\n—\n');
    assert.equal(toMarkdown('t', 'line1\nline2'), '# t\n\n```\nline1\nline2\n```\n');
});
