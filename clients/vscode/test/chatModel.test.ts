import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
    applyProgress,
    applyResult,
    emptyChat,
    failTurn,
    historyItems,
    MAX_MESSAGE_CHARS,
    parseWebviewMessage,
    startTurn,
    stateFromLoad,
    viewState,
} from '../src/chatModel';
import { chatHtml, contentSecurityPolicy, makeNonce } from '../src/chatHtml';

test('webview messages are checked field by field', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ask', text: '  where?  ' }), { type: 'ask', text: 'where?', mode: 'chat' });
    assert.deepEqual(parseWebviewMessage({ type: 'stop' }), { type: 'stop' });
    assert.deepEqual(parseWebviewMessage({ type: 'resume', conversationId: 'c-1' }), { type: 'resume', conversationId: 'c-1' });
    assert.deepEqual(parseWebviewMessage({ type: 'openReference', path: 'a.py', line: 3 }), { type: 'openReference', path: 'a.py', line: 3 });
    assert.deepEqual(parseWebviewMessage({ type: 'codeBlock', turn: 0, block: 1, mode: 'apply' }), {
        type: 'codeBlock',
        turn: 0,
        block: 1,
        mode: 'apply',
    });
    const malformed: unknown[] = [
        null,
        'ask',
        [],
        {},
        { type: 'exec', command: 'rm -rf /' },
        { type: 'ask' },
        { type: 'ask', text: '   ' },
        { type: 'ask', text: 'x'.repeat(MAX_MESSAGE_CHARS + 1) },
        { type: 'ask', text: 42 },
        { type: 'resume', conversationId: '' },
        { type: 'openReference', path: 'a.py', line: 0 },
        { type: 'openReference', path: 'a.py', line: 1.5 },
        { type: 'openReference', path: '', line: 1 },
        { type: 'codeBlock', turn: -1, block: 0, mode: 'apply' },
        { type: 'codeBlock', turn: 0, block: 0, mode: 'write-anywhere' },
    ];
    for (const raw of malformed) {
        assert.equal(parseWebviewMessage(raw), undefined, JSON.stringify(raw));
    }
});

test('a streamed turn: begin, deltas, references in the first report, then the result', () => {
    let state = startTurn(emptyChat(), 'What does area return?', 'tok-1');
    assert.equal(viewState(state).streaming, true);
    state = applyProgress(state, { kind: 'begin', title: 'Ouzel chat', conversationId: 'c-1', turnId: 't-1' });
    const reference = { uri: 'file:///w/geometry.py', path: 'geometry.py', line: 1, endLine: 2, source: 'selection', label: 'area' };
    state = applyProgress(state, { kind: 'report', conversationId: 'c-1', turnId: 't-1', delta: 'It returns ', references: [reference] });
    state = applyProgress(state, { kind: 'report', conversationId: 'c-1', turnId: 't-1', delta: '`width * height` (geometry.py:2).' });
    assert.equal(state.conversationId, 'c-1');
    assert.equal(state.turns[0].reply, 'It returns `width * height` (geometry.py:2).');
    assert.deepEqual(state.turns[0].references, [reference]);
    const streamingView = viewState(state);
    assert.match(streamingView.turns[0].html, /data-path="geometry\.py" data-line="2"/);
    state = applyProgress(state, { kind: 'end', message: 'done', conversationId: 'c-1', turnId: 't-1' });
    state = applyResult(state, {
        conversationId: 'c-1',
        turnId: 't-1',
        reply: 'It returns `width * height` (geometry.py:2).',
        references: [reference],
        rules: [{ path: 'AGENTS.md', chars: 20, truncated: false }],
        stopReason: 'stop',
        cancelled: false,
        error: null,
    });
    const view = viewState(state);
    assert.equal(view.streaming, false);
    assert.equal(view.turns[0].status, 'done');
    assert.deepEqual(view.rules, [{ path: 'AGENTS.md', chars: 20, truncated: false }]);
    // The next question continues the conversation and keeps the earlier turn.
    state = startTurn(state, 'And perimeter?', 'tok-2');
    assert.equal(state.turns.length, 2);
    assert.equal(state.conversationId, 'c-1');
});

test('while a local model reads a long prompt the turn says how far, until the first text', () => {
    let state = startTurn(emptyChat(), 'Explain this file', 'tok-1');
    state = applyProgress(state, { kind: 'begin', title: 'Ouzel chat', conversationId: 'c-1', turnId: 't-1' });
    state = applyProgress(state, { kind: 'report', message: 'reading the prompt: 640 of 2,900 tokens', percentage: 22 });
    assert.equal(viewState(state).turns[0].progress, 'reading the prompt: 640 of 2,900 tokens');
    state = applyProgress(state, { kind: 'report', message: 'generating…', delta: 'It ' });
    assert.equal(viewState(state).turns[0].progress, undefined);
    assert.equal(state.turns[0].reply, 'It ');
});

test('garbage progress values and results leave the state usable', () => {
    let state = startTurn(emptyChat(), 'hi', 'tok');
    for (const value of [null, 7, 'report', [], { kind: 'report', delta: 5 }, { kind: 'report', references: 'x' }]) {
        state = applyProgress(state, value);
    }
    assert.equal(state.turns[0].reply, '');
    assert.deepEqual(state.turns[0].references, []);
    state = applyProgress(state, { kind: 'report', delta: 'ok', references: [{ path: 'a.py' }, { path: 'b.py', line: 2 }] });
    assert.deepEqual(state.turns[0].references.map((r) => r.path), ['b.py']);
    const failed = applyResult(state, 'nonsense');
    assert.equal(failed.turns[0].status, 'error');
    assert.equal(failed.streamingToken, undefined);
    // Progress after the turn ended does not change it.
    assert.equal(applyProgress(failed, { kind: 'report', delta: 'late' }).turns[0].reply, 'ok');
    // Progress without any turn is ignored.
    assert.deepEqual(applyProgress(emptyChat(), { kind: 'report', delta: 'x' }).turns, []);
});

test('stop, model errors and request failures are shown on the turn', () => {
    const state = startTurn(emptyChat(), 'long essay', 'tok');
    const stopped = applyResult(state, { reply: 'Sorting is', stopReason: 'cancelled', cancelled: true });
    assert.equal(stopped.turns[0].status, 'cancelled');
    assert.equal(stopped.turns[0].reply, 'Sorting is');
    const errored = applyResult(state, { reply: '', stopReason: 'error', error: 'remote not allowed' });
    assert.equal(errored.turns[0].status, 'error');
    assert.equal(errored.turns[0].error, 'remote not allowed');
    const dead = failTurn(state, 'the connection closed');
    assert.deepEqual([dead.turns[0].status, dead.turns[0].error, dead.streamingToken], ['error', 'the connection closed', undefined]);
});

test('a loaded conversation replaces the view; interrupted turns say so', () => {
    const previous = { ...emptyChat(), rules: [{ path: 'AGENTS.md' }] };
    const loaded = stateFromLoad(
        {
            conversationId: 'c-9',
            title: 'area',
            turns: [
                { turnId: 't-1', message: 'q1', reply: 'a1', references: [], status: 'done' },
                { turnId: 't-2', message: 'q2', reply: 'a', references: [], status: 'interrupted' },
                'garbage',
            ],
        },
        previous,
    );
    assert.equal(loaded.conversationId, 'c-9');
    assert.deepEqual(loaded.turns.map((turn) => turn.status), ['done', 'interrupted']);
    assert.deepEqual(loaded.rules, [{ path: 'AGENTS.md' }]);
    assert.equal(stateFromLoad({ turns: 'x' }, previous), previous);
});

test('history items from ouzel/chatList', () => {
    const items = historyItems({
        conversations: [
            { conversationId: 'c-2', title: 'perimeter', created: '2026-01-01T00:00:00Z', updated: '2026-01-02T10:11:12Z', turns: 2 },
            { conversationId: 'c-1', title: '', updated: 3, turns: -1 },
            { title: 'no id' },
        ],
    });
    assert.deepEqual(items, [
        { conversationId: 'c-2', title: 'perimeter', updated: '2026-01-02T10:11:12Z', turns: 2 },
        { conversationId: 'c-1', title: '(untitled)', updated: '', turns: 0 },
    ]);
    assert.deepEqual(historyItems(null), []);
});

test('the page has a strict CSP: one nonce script, nothing remote, no connections', () => {
    const nonce = makeNonce((size) => new Uint8Array(size).map((_, index) => index * 7));
    assert.match(nonce, /^[A-Za-z0-9]{32}$/);
    const csp = contentSecurityPolicy(nonce);
    assert.match(csp, /^default-src 'none'; /);
    assert.match(csp, new RegExp(`script-src 'nonce-${nonce}';`));
    assert.match(csp, /connect-src 'none'/);
    assert.doesNotMatch(csp, /unsafe|https?:|\*/);
    const html = chatHtml(nonce, 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/chat.js');
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((match) => match[0]);
    assert.deepEqual(scripts, [`<script nonce="${nonce}" src="https://file+.vscode-resource.vscode-cdn.net/ext/dist/chat.js">`]);
    assert.match(html, new RegExp(`<meta http-equiv="Content-Security-Policy" content="${csp}">`));
});
