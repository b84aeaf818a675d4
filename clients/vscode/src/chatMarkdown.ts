// Safe Markdown for the chat view: model text becomes HTML in which everything the model wrote
// is escaped. Only these tags are produced: p, br, strong, em, code, pre, ul, li, a (no href:
// a `data-path`/`data-line` reference the extension opens), div and button for code blocks.
// The webview's CSP forbids scripts other than its own, so even a bug here cannot run code.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
    return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

export interface CodeBlock {
    language: string;
    code: string;
}

/** Fenced code blocks of a (possibly still streaming) answer; an unclosed fence counts. */
export function codeBlocks(text: string): CodeBlock[] {
    return splitBlocks(text)
        .filter((part): part is CodeBlock & { kind: 'code' } => part.kind === 'code')
        .map(({ language, code }) => ({ language, code }));
}

type Part = { kind: 'text'; text: string } | { kind: 'code'; language: string; code: string };

function splitBlocks(text: string): Part[] {
    const parts: Part[] = [];
    const lines = text.replace(/\r\n?/g, '\n').split('\n');
    let prose: string[] = [];
    let index = 0;
    while (index < lines.length) {
        const fence = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/.exec(lines[index]);
        if (fence === null) {
            prose.push(lines[index]);
            index += 1;
            continue;
        }
        if (prose.length > 0) {
            parts.push({ kind: 'text', text: prose.join('\n') });
            prose = [];
        }
        const closing = fence[1];
        const code: string[] = [];
        index += 1;
        while (index < lines.length && lines[index].trim() !== closing) {
            code.push(lines[index]);
            index += 1;
        }
        index += 1; // the closing fence (or past the end while streaming)
        parts.push({ kind: 'code', language: fence[2], code: code.length > 0 ? code.join('\n') + '\n' : '' });
    }
    if (prose.length > 0) {
        parts.push({ kind: 'text', text: prose.join('\n') });
    }
    return parts;
}

// `path/to/file.py:12` or `file.py:12-14`, as the model is asked to cite (docs/CHAT.md 5).
const REFERENCE = /(^|[\s(`[])((?:[\w.-]+\/)*[\w.-]+\.[A-Za-z0-9]+):(\d+)(?:-(\d+))?/g;

/** Escaped inline text with `code`, **bold**, *emphasis* and file:line links. */
function inline(text: string): string {
    const pieces = text.split(/(`[^`\n]+`)/);
    return pieces
        .map((piece, index) => {
            if (index % 2 === 1) {
                return `<code>${linkReferences(escapeHtml(piece.slice(1, -1)))}</code>`;
            }
            let html = escapeHtml(piece);
            html = html.replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>');
            html = html.replace(/(^|[\s(])\*([^*\s][^*\n]*)\*/g, '$1<em>$2</em>');
            return linkReferences(html);
        })
        .join('');
}

/** Runs on escaped text: the captured path holds only [\w./-], so it needs no escaping. */
function linkReferences(html: string): string {
    return html.replace(REFERENCE, (_match, before: string, path: string, line: string, end?: string) => {
        const label = end === undefined ? `${path}:${line}` : `${path}:${line}-${end}`;
        return `${before}<a class="ref" data-path="${path}" data-line="${line}">${label}</a>`;
    });
}

function proseHtml(text: string): string {
    const blocks = text.split(/\n\s*\n/).filter((block) => block.trim());
    return blocks
        .map((block) => {
            const lines = block.split('\n').filter((line) => line.trim());
            if (lines.every((line) => /^\s*(?:[-*+]|\d+[.)])\s+/.test(line))) {
                const items = lines.map((line) => `<li>${inline(line.replace(/^\s*(?:[-*+]|\d+[.)])\s+/, ''))}</li>`);
                return `<ul>${items.join('')}</ul>`;
            }
            return `<p>${lines.map((line) => inline(line.replace(/^#{1,6}\s+/, ''))).join('<br>')}</p>`;
        })
        .join('');
}

/** HTML for one answer. `actions`: code blocks get Insert / Apply buttons naming their index. */
export function renderMarkdown(text: string, actions = true): string {
    let block = 0;
    return splitBlocks(text)
        .map((part) => {
            if (part.kind === 'text') {
                return proseHtml(part.text);
            }
            const index = block++;
            const language = part.language ? `<span class="lang">${escapeHtml(part.language)}</span>` : '';
            const buttons = actions
                ? `<button data-action="insert" data-block="${index}" title="Insert before the cursor line (you confirm the change)">Insert</button>` +
                  `<button data-action="apply" data-block="${index}" title="Replace the selected lines (you confirm the change)">Apply to selection</button>`
                : '';
            return `<div class="code-block"><div class="code-head">${language}${buttons}</div><pre><code>${escapeHtml(part.code)}</code></pre></div>`;
        })
        .join('');
}
