import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
    instructionProblem,
    MAX_INSTRUCTION_CHARS,
    needsInstruction,
    ProgressFollower,
    runArgument,
    runOutcome,
    withRunOptions,
} from '../src/codeActions';

const EDIT = {
    action: 'edit',
    textDocument: { uri: 'file:///w/geometry.py', version: 3 },
    range: { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } },
    instruction: null,
    workDoneToken: null,
};

test('the run argument is one object with an action', () => {
    assert.equal(runArgument([EDIT]), EDIT);
    for (const args of [undefined, [], [EDIT, EDIT], ['edit'], [null], [{ action: 3 }], [[EDIT]]]) {
        assert.equal(runArgument(args as unknown[] | undefined), undefined, JSON.stringify(args));
    }
});

test('only "edit" without an instruction asks the user', () => {
    assert.equal(needsInstruction(EDIT), true);
    assert.equal(needsInstruction({ ...EDIT, instruction: '   ' }), true);
    assert.equal(needsInstruction({ ...EDIT, instruction: 'add types' }), false);
    assert.equal(needsInstruction({ ...EDIT, action: 'docstring' }), false);
});

test('instructions must be non-empty and at most 2,000 characters', () => {
    assert.match(instructionProblem('') ?? '', /Say what to change/);
    assert.match(instructionProblem(' \n ') ?? '', /Say what to change/);
    assert.match(instructionProblem('x'.repeat(MAX_INSTRUCTION_CHARS + 1)) ?? '', /At most 2,000 characters \(this is 2,001\)/);
    assert.equal(instructionProblem('x'.repeat(MAX_INSTRUCTION_CHARS)), undefined);
    assert.equal(instructionProblem('使用 pathlib 😀'), undefined);
});

test('the argument sent carries our token and the trimmed instruction; the original is untouched', () => {
    const sent = withRunOptions(EDIT, 'tok-1', '  add type hints ');
    assert.deepEqual(sent, { ...EDIT, workDoneToken: 'tok-1', instruction: 'add type hints' });
    assert.equal(EDIT.workDoneToken, null);
    assert.equal(withRunOptions({ action: 'docstring', instruction: null }, 'tok-2').instruction, null);
});

test('results become a message of the right severity', () => {
    assert.deepEqual(runOutcome({ status: 'applied', message: 'Ouzel: Add a docstring: 2 change(s) proposed', hunks: 2 }), {
        severity: 'info',
        text: 'ouzel: Ouzel: Add a docstring: 2 change(s) proposed',
    });
    assert.equal(runOutcome({ status: 'refused', message: 'elision marker' }).severity, 'warning');
    assert.equal(runOutcome({ status: 'stale' }).text, 'ouzel: the document changed while the model worked; nothing was applied');
    assert.equal(runOutcome({ status: 'failed', message: 'no model' }).severity, 'error');
    assert.equal(runOutcome({ status: 'rejected' }).severity, 'info');
    assert.deepEqual(runOutcome({ status: 'answered', message: 'done', conversationId: 'c-1' }), {
        severity: 'info',
        text: 'ouzel: done',
        conversationId: 'c-1',
    });
    for (const garbage of [null, undefined, 'applied', { status: 3 }, []]) {
        assert.equal(runOutcome(garbage).severity, 'error', JSON.stringify(garbage));
    }
    assert.equal(runOutcome({ status: 'new-status' }).severity, 'warning');
});

test('progress values become the notification text', () => {
    const follower = new ProgressFollower();
    assert.deepEqual(follower.update({ kind: 'begin', title: 'Ouzel: Add a docstring to area', cancellable: true }), {
        message: 'waiting for the model…',
        done: false,
    });
    assert.equal(follower.heading, 'Ouzel: Add a docstring to area');
    assert.deepEqual(follower.update({ kind: 'report', message: 'generating…', delta: '    """Return' }), {
        message: 'generating… (13 characters)',
        done: false,
    });
    assert.deepEqual(follower.update({ kind: 'report', delta: ' the area."""' }), { message: 'generating… (26 characters)', done: false });
    assert.deepEqual(follower.update({ kind: 'end', message: '2 change(s) proposed' }), { message: '2 change(s) proposed', done: true });
    for (const garbage of [null, 'report', { kind: 'other' }, []]) {
        assert.deepEqual(follower.update(garbage), { done: false });
    }
});
