import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { codeBlocks, escapeHtml, renderMarkdown } from '../src/chatMarkdown';

/** The tags a rendered answer may contain; anything else would be the model's HTML. */
const ALLOWED_TAGS = new Set(['p', 'br', 'strong', 'em', 'code', 'pre', 'ul', 'li', 'a', 'div', 'span', 'button']);

function tags(html: string): string[] {
    return [...html.matchAll(/<\/?([a-zA-Z][\w-]*)/g)].map((match) => match[1].toLowerCase());
}

test('escapeHtml escapes the five HTML characters', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('HTML in the model text is shown, never interpreted', () => {
    const attacks = [
        '<script>alert(1)</script>',
        '<img src=x onerror=alert(1)>',
        '<iframe src="https://evil.example"></iframe>',
        '[click](javascript:alert(1))',
        '**<b onclick=x>bold</b>**',
        '`<svg onload=alert(1)>`',
        '```html\n<script>fetch("https://evil.example")</script>\n```',
        '<a href="https://evil.example">x</a> geometry.py:3',
        '"><img src=x onerror=alert(1)>.py:1',
    ];
    for (const attack of attacks) {
        const html = renderMarkdown(attack);
        for (const tag of tags(html)) {
            assert.ok(ALLOWED_TAGS.has(tag), `${tag} in ${html}`);
        }
        assert.doesNotMatch(html, /<(script|img|iframe|svg|b)\b/i, html);
        // No tag of the output carries an event handler or a link target.
        assert.doesNotMatch(html, /<[a-z][^>]*\s(on\w+|href|src)=/i, html);
    }
});

test('prose: paragraphs, line breaks, bold, emphasis, inline code and lists', () => {
    assert.equal(renderMarkdown('Hello **you**\nand *this*\n\n`x < 1`'), '<p>Hello <strong>you</strong><br>and <em>this</em></p><p><code>x &lt; 1</code></p>');
    assert.equal(renderMarkdown('- one\n- two'), '<ul><li>one</li><li>two</li></ul>');
    assert.equal(renderMarkdown('## Title'), '<p>Title</p>');
});

test('file:line citations become reference links the extension opens', () => {
    const html = renderMarkdown('See geometry.py:3 and pkg/util.py:10-12 (or `calc.py:7`).');
    assert.match(html, /<a class="ref" data-path="geometry\.py" data-line="3">geometry\.py:3<\/a>/);
    assert.match(html, /<a class="ref" data-path="pkg\/util\.py" data-line="10">pkg\/util\.py:10-12<\/a>/);
    assert.match(html, /<code><a class="ref" data-path="calc\.py" data-line="7">calc\.py:7<\/a><\/code>/);
    // A time or a URL port is not a file reference.
    assert.doesNotMatch(renderMarkdown('at 10:30 on localhost:8080'), /class="ref"/);
});

test('code blocks are escaped, carry Insert / Apply buttons, and are extracted as written', () => {
    const answer = 'Here:\n\n```python\ndef f(x):\n    return x < 1\n```\nand\n~~~\nplain\n~~~\n';
    const html = renderMarkdown(answer);
    assert.match(html, /<span class="lang">python<\/span><button data-action="insert" data-block="0"/);
    assert.match(html, /data-action="apply" data-block="1"/);
    assert.match(html, /<pre><code>def f\(x\):\n    return x &lt; 1\n<\/code><\/pre>/);
    assert.deepEqual(codeBlocks(answer), [
        { language: 'python', code: 'def f(x):\n    return x < 1\n' },
        { language: '', code: 'plain\n' },
    ]);
    assert.doesNotMatch(renderMarkdown(answer, false), /<button/);
});

test('a fence still streaming renders as code so far', () => {
    const partial = 'Try\n```py\nprint("hi")';
    assert.deepEqual(codeBlocks(partial), [{ language: 'py', code: 'print("hi")\n' }]);
    assert.match(renderMarkdown(partial), /<pre><code>print\(&quot;hi&quot;\)\n<\/code><\/pre>/);
    assert.equal(renderMarkdown(''), '');
});

test('CRLF, emoji and CJK text pass through intact', () => {
    const html = renderMarkdown('面积 😀 **粗**\r\n\r\n```\r\nx = "😀"\r\n```');
    assert.equal(html, '<p>面积 😀 <strong>粗</strong></p><div class="code-block"><div class="code-head"><button data-action="insert" data-block="0" title="Insert before the cursor line (you confirm the change)">Insert</button><button data-action="apply" data-block="0" title="Replace the selected lines (you confirm the change)">Apply to selection</button></div><pre><code>x = &quot;😀&quot;\n</code></pre></div>');
});
