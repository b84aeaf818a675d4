// The chat webview's page: a strict Content-Security-Policy (nothing remote, no inline script,
// no connections; only the extension's own dist/chat.js with a fresh nonce), the layout and
// its styles in VS Code's theme colours. Plain logic, unit-tested.

/** The CSP: `default-src 'none'` and exactly one script, the nonce'd bundle. */
export function contentSecurityPolicy(nonce: string): string {
    return [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        "img-src 'none'",
        "font-src 'none'",
        "connect-src 'none'",
        "frame-src 'none'",
        "form-action 'none'",
        "base-uri 'none'",
    ].join('; ');
}

const STYLE = `
body { padding: 0 8px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); display: flex; flex-direction: column; height: 100vh; box-sizing: border-box; margin: 0; }
.toolbar { display: flex; gap: 6px; padding: 6px 0; }
.rules { font-size: 0.9em; opacity: 0.8; padding-bottom: 4px; }
#transcript { flex: 1; overflow-y: auto; }
#history { border: 1px solid var(--vscode-panel-border); padding: 4px; margin-bottom: 6px; }
.history-item { display: block; width: 100%; text-align: left; margin: 2px 0; background: none; color: var(--vscode-foreground); border: none; cursor: pointer; padding: 2px 4px; }
.history-item:hover { background: var(--vscode-list-hoverBackground); }
.history-meta { opacity: 0.7; font-size: 0.9em; }
.turn { border-top: 1px solid var(--vscode-panel-border); padding: 6px 0; }
.question { font-weight: bold; white-space: pre-wrap; }
.answer pre { background: var(--vscode-textCodeBlock-background); padding: 6px; overflow-x: auto; margin: 0; }
.answer code { font-family: var(--vscode-editor-font-family); }
.code-block { margin: 6px 0; }
.code-head { display: flex; gap: 6px; align-items: center; }
.code-head .lang { opacity: 0.7; flex: 1; }
.note { opacity: 0.7; font-style: italic; }
.status-error .note { color: var(--vscode-errorForeground); opacity: 1; }
a.ref { color: var(--vscode-textLink-foreground); cursor: pointer; text-decoration: underline; }
.references { font-size: 0.9em; margin-top: 4px; }
.composer { display: flex; gap: 6px; padding: 6px 0; }
#input { flex: 1; resize: vertical; min-height: 3em; background: var(--vscode-input-background); color: var(--vscode-input-foreground); border: 1px solid var(--vscode-input-border, transparent); font-family: inherit; }
button { background: var(--vscode-button-background); color: var(--vscode-button-foreground); border: none; padding: 2px 8px; cursor: pointer; }
button:disabled { opacity: 0.5; cursor: default; }
.mode { display: flex; align-items: center; gap: 4px; margin-left: auto; cursor: pointer; }
.agent-badge { font-size: 0.85em; opacity: 0.8; border: 1px solid var(--vscode-panel-border); padding: 0 4px; margin-right: 4px; }
.tools { list-style: none; padding: 0; margin: 4px 0; font-size: 0.9em; }
.tool { padding: 1px 0; font-family: var(--vscode-editor-font-family); }
.tool::before { content: '\\2713 '; color: var(--vscode-testing-iconPassed, inherit); }
.tool-refused::before { content: '\\2715 '; color: var(--vscode-errorForeground); }
.tool-failed::before { content: '! '; color: var(--vscode-editorWarning-foreground); }
.tool-reason { opacity: 0.8; }
.progress { opacity: 0.7; font-size: 0.9em; }
.summary { margin-top: 4px; font-size: 0.9em; }
.agent-actions { margin-top: 4px; }
.undone { opacity: 0.8; font-style: italic; }
`;

export function chatHtml(nonce: string, scriptUri: string): string {
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style nonce="${nonce}">${STYLE}</style>
<title>ouzel chat</title>
</head>
<body>
<div class="toolbar">
<button id="new" title="Start a new conversation">New chat</button>
<button id="show-history" title="Past conversations of this workspace">History</button>
<label class="mode" title="Agent mode: the agent reads the workspace and proposes changes to files; you review each one (Refactor Preview) and can undo the whole turn"><input type="checkbox" id="agent-mode"> Agent</label>
</div>
<div id="rules" class="rules"></div>
<div id="history" hidden></div>
<div id="transcript" aria-live="polite"></div>
<div class="composer">
<textarea id="input" placeholder="Ask ouzel (Enter sends, Shift+Enter: new line)" aria-label="Ask ouzel"></textarea>
<button id="ask">Ask</button>
<button id="stop" hidden>Stop</button>
</div>
<script nonce="${nonce}" src="${scriptUri}"></script>
</body>
</html>`;
}

/** A nonce for one page: 32 characters from [A-Za-z0-9] from a random source. */
export function makeNonce(random: (size: number) => Uint8Array): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    return [...random(32)].map((byte) => alphabet[byte % alphabet.length]).join('');
}
