import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
    AGENT_UNDO_COMMAND,
    agentMessageProblem,
    agentParams,
    agentResult,
    changedSomething,
    filesSummary,
    limitNote,
    MAX_AGENT_MESSAGE_CHARS,
    savingChangesText,
    textEqualsDisk,
    toolStep,
    toolSteps,
    touchedUris,
    undoResult,
    undoSummary,
} from '../src/agent';
import {
    applyProgress,
    applyResult,
    ChatState,
    emptyChat,
    markUndone,
    parseWebviewMessage,
    startTurn,
    stateFromLoad,
    viewState,
} from '../src/chatModel';

const RESULT = {
    conversationId: 'c-1',
    turnId: 't-1',
    status: 'done',
    answer: 'Renamed `area` to `surface` in both files.',
    files: [
        { path: 'geometry.py', uri: 'file:///w/geometry.py', created: false, hunks: 2, accepted: 2 },
        { path: 'shapes.py', uri: 'file:///w/shapes.py', created: true, hunks: 1, accepted: 1 },
    ],
    edits: { proposed: 2, applied: 2, rejected: 0, refused: 0, retried: 1 },
    steps: 5,
    tokens: 3120,
    backend: 'remote',
    error: null,
    undo: { title: 'Undo this agent turn', command: 'ouzel.agent.undo', arguments: [{ turnId: 't-1' }] },
};

test('the params of ouzel.agent: message and token, the conversation, the editor and selection', () => {
    assert.deepEqual(agentParams({ message: 'rename area', workDoneToken: 'tok' }), { message: 'rename area', workDoneToken: 'tok' });
    const selection = { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } };
    assert.deepEqual(
        agentParams({ message: 'm', workDoneToken: 'tok', conversationId: 'c-1', uri: 'file:///w/a.py', selection }),
        { message: 'm', workDoneToken: 'tok', conversationId: 'c-1', textDocument: { uri: 'file:///w/a.py' }, selection },
    );
    // A selection without its document means nothing to the server: left out.
    assert.deepEqual(agentParams({ message: 'm', workDoneToken: 'tok', selection }), { message: 'm', workDoneToken: 'tok' });
});

test('the input box of "Ask the agent" refuses empty and too long tasks', () => {
    assert.match(agentMessageProblem('   ') ?? '', /Say what/);
    assert.match(agentMessageProblem('x'.repeat(MAX_AGENT_MESSAGE_CHARS + 1)) ?? '', /At most 20,000/);
    assert.equal(agentMessageProblem('rename area to surface'), undefined);
});

test('tool steps from progress reports are checked', () => {
    assert.deepEqual(toolStep({ name: 'read_file', summary: 'geometry.py lines 1-40', status: 'ok' }), {
        name: 'read_file',
        summary: 'geometry.py lines 1-40',
        status: 'ok',
    });
    assert.deepEqual(toolStep({ name: 'read_file', summary: '../../etc/passwd', status: 'refused', reason: 'outside the workspace' }), {
        name: 'read_file',
        summary: '../../etc/passwd',
        status: 'refused',
        reason: 'outside the workspace',
    });
    // An unknown status is shown as ok only if it is not one of the three: never as a refusal.
    assert.equal(toolStep({ name: 'grep', status: 'weird' })?.status, 'ok');
    for (const bad of [null, 'read_file', {}, { name: '' }, { name: 3 }, []]) {
        assert.equal(toolStep(bad), undefined, JSON.stringify(bad));
    }
    assert.deepEqual(toolSteps([{ name: 'a' }, null, { name: 'b', summary: 's', status: 'failed' }]), [
        { name: 'a', summary: '', status: 'ok' },
        { name: 'b', summary: 's', status: 'failed' },
    ]);
    assert.deepEqual(toolSteps('nope'), []);
});

test('the result of a turn: files, edit counts and the undo offered', () => {
    const result = agentResult(RESULT);
    assert.ok(result);
    assert.equal(result.status, 'done');
    assert.equal(result.answer, RESULT.answer);
    assert.equal(result.files.length, 2);
    assert.equal(result.files[1].created, true);
    assert.equal(result.edits.retried, 1);
    assert.equal(result.undoTurnId, 't-1');
    assert.equal(result.error, undefined);
    assert.ok(changedSomething(result));
    assert.deepEqual(touchedUris(result), ['file:///w/geometry.py', 'file:///w/shapes.py']);
    assert.equal(filesSummary(result), '2 file(s) changed: geometry.py (2 of 2 changes), shapes.py (created)');

    const rejected = agentResult({
        ...RESULT,
        files: [{ path: 'geometry.py', created: false, hunks: 2, accepted: 0 }],
        edits: { proposed: 1, applied: 0, rejected: 1, refused: 1, retried: 0 },
    });
    assert.ok(rejected);
    assert.equal(changedSomething(rejected), false);
    assert.equal(filesSummary(rejected), '0 file(s) changed: geometry.py (0 of 2 changes); 1 edit(s) refused; 1 rejected by you');
    // An undo naming another command is not offered.
    assert.equal(agentResult({ ...RESULT, undo: { command: 'rm', arguments: [{ turnId: 't-1' }] } })?.undoTurnId, undefined);
    // No undo field: nothing to undo.
    assert.equal(agentResult({ ...RESULT, undo: null })?.undoTurnId, undefined);
    assert.equal(agentResult({ ...RESULT, undo: { command: AGENT_UNDO_COMMAND } })?.undoTurnId, 't-1');

    const unknown = agentResult({ status: 'exploded' });
    assert.equal(unknown?.status, 'error');
    assert.match(unknown?.error ?? '', /unknown status "exploded"/);
    assert.equal(agentResult(null), undefined);
    assert.equal(agentResult({ answer: 'no status' }), undefined);
    assert.match(limitNote('steps') ?? '', /step budget/);
    assert.match(limitNote('time') ?? '', /time budget/);
    assert.equal(limitNote('done'), undefined);
});

test('the result of ouzel.agent.undo', () => {
    const result = undoResult({ turnId: 't-1', restored: ['geometry.py'], deleted: ['shapes.py'] });
    assert.deepEqual(result, { turnId: 't-1', restored: ['geometry.py'], deleted: ['shapes.py'] });
    assert.equal(undoSummary(result!), 'undid the agent turn: restored geometry.py; deleted shapes.py');
    assert.equal(undoSummary({ restored: [], deleted: [] }), 'undid the agent turn (nothing to restore)');
    assert.equal(undoResult({ turnId: 't-1' }), undefined);
    assert.equal(undoResult('done'), undefined);
    assert.deepEqual(undoResult({ restored: ['a', 3, null] }), { turnId: undefined, restored: ['a'], deleted: [] });
});

test('a document is settled only when its text is exactly what is on disk', () => {
    const utf8 = (s: string) => new TextEncoder().encode(s);
    assert.ok(textEqualsDisk('def surface():\n    pass\n', utf8('def surface():\n    pass\n')));
    assert.ok(textEqualsDisk('x = "é"\r\n', utf8('x = "é"\r\n')));
    assert.ok(textEqualsDisk('x\n', new Uint8Array([0xef, 0xbb, 0xbf, ...utf8('x\n')])));
    assert.equal(textEqualsDisk('x\n', utf8('x\r\n')), false);
    assert.equal(textEqualsDisk('x\n', utf8('x\ny\n')), false);
    assert.equal(textEqualsDisk('\ufffd', new Uint8Array([0xff])), false);
});

test('format on save and the like make saving change the text: then the document is reverted', () => {
    const settings = (values: Record<string, unknown>) => (key: string) => values[key];
    assert.equal(savingChangesText(settings({})), false);
    assert.equal(savingChangesText(settings({ 'editor.formatOnSave': false, 'editor.codeActionsOnSave': {} })), false);
    assert.equal(savingChangesText(settings({ 'editor.formatOnSave': true })), true);
    assert.equal(savingChangesText(settings({ 'files.trimTrailingWhitespace': true })), true);
    assert.equal(savingChangesText(settings({ 'editor.codeActionsOnSave': { 'source.organizeImports': 'explicit' } })), true);
    assert.equal(savingChangesText(settings({ 'editor.codeActionsOnSave': { 'source.organizeImports': 'never' } })), false);
    assert.equal(savingChangesText(settings({ 'editor.codeActionsOnSave': ['source.fixAll'] })), true);
});

test('the chat view: the agent toggle, an ask in agent mode and the undo button are checked messages', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ask', text: ' rename ', mode: 'agent' }), { type: 'ask', text: 'rename', mode: 'agent' });
    assert.deepEqual(parseWebviewMessage({ type: 'ask', text: 'where?' }), { type: 'ask', text: 'where?', mode: 'chat' });
    assert.deepEqual(parseWebviewMessage({ type: 'setMode', agent: true }), { type: 'setMode', agent: true });
    assert.deepEqual(parseWebviewMessage({ type: 'undo', turn: 2 }), { type: 'undo', turn: 2 });
    for (const bad of [
        { type: 'ask', text: 'x', mode: 'root' },
        { type: 'setMode', agent: 'yes' },
        { type: 'undo', turn: -1 },
        { type: 'undo', turnId: 't-1' },
    ]) {
        assert.equal(parseWebviewMessage(bad), undefined, JSON.stringify(bad));
    }
});

test('an agent turn streams tool steps and text, then offers undo until it is undone', () => {
    let state: ChatState = { ...emptyChat(), agentMode: true };
    state = startTurn(state, 'Rename area to surface', 'tok-a', 'agent');
    state = applyProgress(state, { kind: 'begin', title: 'Ouzel agent', cancellable: true, conversationId: 'c-1', turnId: 't-1', mode: 'agent' });
    state = applyProgress(state, {
        kind: 'report',
        conversationId: 'c-1',
        turnId: 't-1',
        message: 'step 1/30: read_file geometry.py',
        tool: { name: 'read_file', summary: 'geometry.py lines 1-40', status: 'ok' },
    });
    state = applyProgress(state, { kind: 'report', conversationId: 'c-1', turnId: 't-1', message: 'step 2/30', delta: 'I will rename ' });
    state = applyProgress(state, {
        kind: 'report',
        conversationId: 'c-1',
        turnId: 't-1',
        message: 'step 3/30: read_file /etc/passwd',
        tool: { name: 'read_file', summary: '/etc/passwd', status: 'refused', reason: 'absolute paths are refused' },
    });
    let view = viewState(state);
    assert.equal(view.agentMode, true);
    assert.equal(view.streaming, true);
    assert.equal(view.turns[0].mode, 'agent');
    assert.equal(view.turns[0].progress, 'step 3/30: read_file /etc/passwd');
    assert.deepEqual(
        view.turns[0].tools.map((step) => [step.name, step.status]),
        [
            ['read_file', 'ok'],
            ['read_file', 'refused'],
        ],
    );
    assert.equal(view.turns[0].canUndo, false);
    assert.match(view.turns[0].html, /I will rename/);

    state = applyResult(state, RESULT);
    view = viewState(state);
    assert.equal(view.streaming, false);
    assert.equal(view.turns[0].status, 'done');
    assert.equal(view.turns[0].progress, undefined);
    assert.match(view.turns[0].html, /Renamed/);
    assert.equal(view.turns[0].summary, '2 file(s) changed: geometry.py (2 of 2 changes), shapes.py (created)');
    assert.equal(view.turns[0].canUndo, true);
    assert.equal(state.turns[0].agent?.undoTurnId, 't-1');

    state = markUndone(state, 't-1', 'undid the agent turn: restored geometry.py; deleted shapes.py');
    view = viewState(state);
    assert.equal(view.turns[0].canUndo, false);
    assert.equal(view.turns[0].undone, 'undid the agent turn: restored geometry.py; deleted shapes.py');
    // An unknown turn changes nothing.
    assert.equal(markUndone(state, 't-9', 'x'), state);
});

test('an agent turn stopped by a budget, one that failed, and a chat turn next to them', () => {
    let state = startTurn(emptyChat(), 'Do a lot', 'tok-a', 'agent');
    state = applyResult(state, { ...RESULT, status: 'steps', files: [], edits: { proposed: 0 }, undo: null });
    let view = viewState(state);
    assert.equal(view.turns[0].status, 'limit');
    assert.match(view.turns[0].note ?? '', /step budget/);
    assert.equal(view.turns[0].canUndo, false);
    assert.equal(view.turns[0].summary, undefined);

    state = startTurn(state, 'Again', 'tok-b', 'agent');
    state = applyResult(state, { status: 'error', answer: '', error: 'no model for routing.agent', files: [], edits: {} });
    view = viewState(state);
    assert.equal(view.turns[1].status, 'error');
    assert.equal(view.turns[1].error, 'no model for routing.agent');

    state = startTurn(state, 'A question', 'tok-c');
    state = applyResult(state, { conversationId: 'c-1', turnId: 't-3', reply: 'An answer.', stopReason: 'stop' });
    view = viewState(state);
    assert.equal(view.turns[2].mode, 'chat');
    assert.equal(view.turns[2].status, 'done');
    assert.deepEqual(view.turns[2].tools, []);

    state = startTurn(state, 'Bad answer', 'tok-d', 'agent');
    state = applyResult(state, 'not an object');
    assert.equal(viewState(state).turns[3].status, 'error');
});

test('a resumed conversation shows agent turns with their tools', () => {
    const loaded = stateFromLoad(
        {
            conversationId: 'c-1',
            title: 'Rename',
            turns: [
                { turnId: 't-1', message: 'What is area?', reply: 'A function.', status: 'done', mode: 'chat' },
                {
                    turnId: 't-2',
                    message: 'Rename area',
                    reply: 'Renamed.',
                    status: 'done',
                    mode: 'agent',
                    tools: [{ name: 'read_file', summary: 'geometry.py', status: 'ok' }, { bogus: true }],
                },
                { turnId: 't-3', message: 'Much more', reply: '', status: 'time', mode: 'agent', tools: [] },
            ],
        },
        { turns: [], agentMode: true },
    );
    const view = viewState(loaded);
    assert.equal(view.agentMode, true);
    assert.deepEqual(
        view.turns.map((turn) => [turn.mode, turn.status, turn.tools.length, turn.canUndo]),
        [
            ['chat', 'done', 0, false],
            ['agent', 'done', 1, false],
            ['agent', 'limit', 0, false],
        ],
    );
    assert.match(view.turns[2].note ?? '', /time budget/);
});
