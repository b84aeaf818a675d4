// The chat view's script, run inside the webview (bundled to dist/chat.js). It renders the
// state the extension posts and posts the user's intents back; it never talks to the server,
// never fetches anything (the CSP allows no connections) and puts model text into the page
// only as the extension's escaped HTML (chatMarkdown.ts) or as textContent.

interface Reference {
    path: string;
    line: number;
    endLine?: number;
    source?: string;
    label?: string;
}

interface ToolStep {
    name: string;
    summary: string;
    status: string;
    reason?: string;
}

interface ViewTurn {
    message: string;
    html: string;
    references: Reference[];
    status: string;
    error?: string;
    mode: string;
    tools: ToolStep[];
    progress?: string;
    summary?: string;
    note?: string;
    canUndo: boolean;
    undone?: string;
}

interface ViewState {
    conversationId?: string;
    title?: string;
    streaming: boolean;
    agentMode: boolean;
    rules?: { path: string; chars?: number; truncated?: boolean }[];
    turns: ViewTurn[];
}

interface HistoryItem {
    conversationId: string;
    title: string;
    updated: string;
    turns: number;
}

declare function acquireVsCodeApi(): { postMessage(message: unknown): void };

const vscode = acquireVsCodeApi();

function byId<T extends HTMLElement>(id: string): T {
    const element = document.getElementById(id);
    if (element === null) {
        throw new Error(`chat view: #${id} is missing`);
    }
    return element as T;
}

const transcript = byId<HTMLDivElement>('transcript');
const rulesLine = byId<HTMLDivElement>('rules');
const historyPanel = byId<HTMLDivElement>('history');
const input = byId<HTMLTextAreaElement>('input');
const askButton = byId<HTMLButtonElement>('ask');
const stopButton = byId<HTMLButtonElement>('stop');
const agentToggle = byId<HTMLInputElement>('agent-mode');
let streaming = false;

const PLACEHOLDERS = {
    chat: 'Ask ouzel (Enter sends, Shift+Enter: new line)',
    agent: 'Ask the agent to change files; you review every change (Enter sends)',
};

function element(tag: string, className: string, text?: string): HTMLElement {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) {
        node.textContent = text;
    }
    return node;
}

function referenceLink(reference: Reference): HTMLElement {
    const link = element('a', 'ref', `${reference.path}:${reference.line}`);
    link.dataset.path = reference.path;
    link.dataset.line = String(reference.line);
    link.title = [reference.source, reference.label].filter(Boolean).join(': ');
    return link;
}

function showMode(agent: boolean): void {
    agentToggle.checked = agent;
    input.placeholder = agent ? PLACEHOLDERS.agent : PLACEHOLDERS.chat;
    askButton.textContent = agent ? 'Run agent' : 'Ask';
}

function renderTurn(turn: ViewTurn, index: number): HTMLElement {
    const box = element('div', `turn status-${turn.status} mode-${turn.mode}`);
    box.dataset.turn = String(index);
    const question = element('div', 'question');
    if (turn.mode === 'agent') {
        question.appendChild(element('span', 'agent-badge', 'agent'));
    }
    question.appendChild(document.createTextNode(turn.message));
    box.appendChild(question);
    if (turn.mode === 'agent' && turn.tools.length > 0) {
        const tools = element('ol', 'tools');
        for (const step of turn.tools) {
            const item = element('li', `tool tool-${step.status}`, step.summary ? `${step.name}: ${step.summary}` : step.name);
            if (step.reason) {
                item.appendChild(element('span', 'tool-reason', ` (${step.status}: ${step.reason})`));
            }
            tools.appendChild(item);
        }
        box.appendChild(tools);
    }
    if (turn.status === 'streaming' && turn.progress) {
        box.appendChild(element('div', 'progress', turn.progress));
    }
    const answer = element('div', 'answer');
    // The extension's renderer escaped all model text; see chatMarkdown.ts.
    answer.innerHTML = turn.html;
    box.appendChild(answer);
    if (turn.references.length > 0) {
        const refs = element('div', 'references', 'References: ');
        turn.references.forEach((reference, position) => {
            if (position > 0) {
                refs.appendChild(document.createTextNode(', '));
            }
            refs.appendChild(referenceLink(reference));
        });
        box.appendChild(refs);
    }
    if (turn.summary) {
        box.appendChild(element('div', 'summary', turn.summary));
    }
    if (turn.undone) {
        box.appendChild(element('div', 'undone', turn.undone));
    } else if (turn.canUndo) {
        const actions = element('div', 'agent-actions');
        const undo = element('button', 'undo', 'Undo agent turn');
        undo.title = 'Restore every file this turn changed and delete the files it created';
        undo.dataset.undo = String(index);
        actions.appendChild(undo);
        box.appendChild(actions);
    }
    const notes: Record<string, string> = {
        streaming: '…',
        cancelled: 'stopped',
        interrupted: 'interrupted (the server stopped while answering)',
        error: `error: ${turn.error ?? 'the model failed'}`,
        limit: turn.note ?? 'stopped by a budget',
    };
    if (notes[turn.status]) {
        box.appendChild(element('div', 'note', notes[turn.status]));
    }
    return box;
}

function renderState(state: ViewState): void {
    streaming = state.streaming;
    askButton.disabled = streaming;
    stopButton.hidden = !streaming;
    showMode(state.agentMode);
    const rules = state.rules;
    rulesLine.textContent =
        rules === undefined
            ? 'Project rules: shown after the first answer.'
            : rules.length === 0
              ? 'Project rules: none (add AGENTS.md or .ouzel/rules.md).'
              : `Project rules: ${rules.map((rule) => rule.path + (rule.truncated ? ' (cut)' : '')).join(', ')}`;
    transcript.replaceChildren(...state.turns.map(renderTurn));
    if (state.turns.length === 0) {
        transcript.appendChild(
            element(
                'div',
                'empty',
                state.agentMode
                    ? 'Agent mode: describe a change. The agent reads the workspace and proposes edits; you review each one before it is written and can undo the whole turn.'
                    : 'Ask about your code. The selection and open files go with the question.',
            ),
        );
    }
    transcript.scrollTop = transcript.scrollHeight;
}

function renderHistory(items: HistoryItem[]): void {
    historyPanel.hidden = false;
    historyPanel.replaceChildren(element('div', 'history-head', items.length ? 'Past conversations' : 'No past conversations'));
    for (const item of items) {
        const row = element('button', 'history-item');
        row.dataset.conversation = item.conversationId;
        row.appendChild(element('span', 'history-title', item.title));
        row.appendChild(element('span', 'history-meta', ` ${item.turns} turn(s), ${item.updated.replace('T', ' ').slice(0, 16)}`));
        historyPanel.appendChild(row);
    }
}

window.addEventListener('message', (event: MessageEvent) => {
    const message = event.data as { type?: string; state?: ViewState; items?: HistoryItem[] };
    if (message.type === 'state' && message.state) {
        renderState(message.state);
    } else if (message.type === 'history' && message.items) {
        renderHistory(message.items);
    }
});

function ask(): void {
    const text = input.value.trim();
    if (!text || streaming) {
        return;
    }
    vscode.postMessage({ type: 'ask', text, mode: agentToggle.checked ? 'agent' : 'chat' });
    input.value = '';
}

agentToggle.addEventListener('change', () => {
    showMode(agentToggle.checked);
    vscode.postMessage({ type: 'setMode', agent: agentToggle.checked });
});

askButton.addEventListener('click', ask);
input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        ask();
    }
});
stopButton.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
byId('new').addEventListener('click', () => {
    historyPanel.hidden = true;
    vscode.postMessage({ type: 'newChat' });
});
byId('show-history').addEventListener('click', () => {
    if (historyPanel.hidden) {
        vscode.postMessage({ type: 'history' });
    } else {
        historyPanel.hidden = true;
    }
});

document.addEventListener('click', (event) => {
    const target = event.target as HTMLElement | null;
    const link = target?.closest<HTMLElement>('a.ref');
    if (link?.dataset.path) {
        event.preventDefault();
        vscode.postMessage({ type: 'openReference', path: link.dataset.path, line: Number(link.dataset.line) });
        return;
    }
    const undo = target?.closest<HTMLElement>('button[data-undo]');
    if (undo?.dataset.undo) {
        (undo as HTMLButtonElement).disabled = true;
        vscode.postMessage({ type: 'undo', turn: Number(undo.dataset.undo) });
        return;
    }
    const button = target?.closest<HTMLElement>('button[data-action]');
    const turn = button?.closest<HTMLElement>('.turn');
    if (button && turn) {
        vscode.postMessage({
            type: 'codeBlock',
            turn: Number(turn.dataset.turn),
            block: Number(button.dataset.block),
            mode: button.dataset.action,
        });
        return;
    }
    const row = target?.closest<HTMLElement>('.history-item');
    if (row?.dataset.conversation) {
        historyPanel.hidden = true;
        vscode.postMessage({ type: 'resume', conversationId: row.dataset.conversation });
    }
});

vscode.postMessage({ type: 'ready' });
