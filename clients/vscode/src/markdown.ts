// Server answers (`ouzel/status`, `ouzel/context`) as readable Markdown. Pure logic.
//
// The server's feature areas add their own sections, so the shape is not fixed: this renders
// any JSON, with long or multi-line strings (code, prompts) as fenced blocks.

const FENCE_MIN_LENGTH = 80;

function fence(text: string, language = ''): string {
    // A fence longer than any backtick run inside keeps the block intact.
    const longestRun = Math.max(2, ...(text.match(/`+/g) ?? []).map((run) => run.length));
    const ticks = '`'.repeat(longestRun + 1);
    return `${ticks}${language}\n${text}${text.endsWith('\n') ? '' : '\n'}${ticks}`;
}

function humanKey(key: string): string {
    const spaced = key
        .replace(/_/g, ' ')
        .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
        .toLowerCase();
    return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function isScalar(value: unknown): boolean {
    return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

function scalarText(value: unknown): string {
    if (value === null) {
        return '—';
    }
    if (typeof value === 'string') {
        return value === '' ? '""' : value.replace(/\n/g, ' ');
    }
    return String(value);
}

function isBlock(value: unknown): value is string {
    return typeof value === 'string' && (value.includes('\n') || value.length > FENCE_MIN_LENGTH);
}

/** A language id for fenced code from sibling fields such as `language` or `path`. */
function languageOf(record: Record<string, unknown>): string {
    const language = record['language'] ?? record['languageId'];
    if (typeof language === 'string') {
        return language;
    }
    const file = record['path'] ?? record['displayPath'] ?? record['display_path'] ?? record['file'] ?? record['uri'];
    if (typeof file === 'string') {
        const extension = file.split('.').pop() ?? '';
        const known: Record<string, string> = {
            py: 'python', js: 'javascript', ts: 'typescript', go: 'go', rs: 'rust',
            java: 'java', c: 'c', h: 'c', cpp: 'cpp', md: 'markdown', lua: 'lua',
        };
        return known[extension] ?? '';
    }
    return '';
}

function render(value: unknown, depth: number, lines: string[], language = ''): void {
    const heading = '#'.repeat(Math.min(depth + 2, 6));
    if (isBlock(value)) {
        lines.push(fence(value, language), '');
        return;
    }
    if (isScalar(value)) {
        lines.push(scalarText(value), '');
        return;
    }
    if (Array.isArray(value)) {
        if (value.length === 0) {
            lines.push('(none)', '');
        } else if (value.every((item) => isScalar(item) && !isBlock(item))) {
            lines.push(...value.map((item) => `- ${scalarText(item)}`), '');
        } else {
            value.forEach((item, index) => {
                lines.push(`${heading} ${index + 1}`, '');
                render(item, depth + 1, lines, language);
            });
        }
        return;
    }
    const record = value as Record<string, unknown>;
    const childLanguage = languageOf(record) || language;
    const simple = Object.entries(record).filter(([, item]) => isScalar(item) && !isBlock(item));
    if (simple.length > 0) {
        lines.push(...simple.map(([key, item]) => `- **${humanKey(key)}**: ${scalarText(item)}`), '');
    }
    for (const [key, item] of Object.entries(record)) {
        if (isScalar(item) && !isBlock(item)) {
            continue;
        }
        lines.push(`${heading} ${humanKey(key)}`, '');
        render(item, depth + 1, lines, childLanguage);
    }
}

export function toMarkdown(title: string, value: unknown): string {
    const lines = [`# ${title}`, ''];
    render(value, 0, lines);
    return lines.join('\n').replace(/\n{3,}/g, '\n\n');
}
