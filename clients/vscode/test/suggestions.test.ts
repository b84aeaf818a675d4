import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { advance, ContentChange, ghostText, SuggestionTracker } from '../src/suggestions';

const URI = 'file:///ws/calc.py';

function insert(line: number, character: number, text: string): ContentChange[] {
    return [{ range: { start: { line, character }, end: { line, character } }, text }];
}

function tracker(ghost = 'a + b\n    # done', item: unknown = { command: 'ouzel.accepted' }): SuggestionTracker {
    const suggestions = new SuggestionTracker();
    suggestions.show({ uri: URI, anchor: { line: 2, character: 10 }, insertText: 'return ' + ghost, ghost, item });
    return suggestions;
}

test('ghost text is the part of the item after what is already typed', () => {
    assert.equal(ghostText('return a + b', 'return '), 'a + b');
    assert.equal(ghostText('return a + b', ''), 'return a + b');
    assert.equal(ghostText('return a + b', 'return x'), undefined);
    assert.equal(ghostText('return', 'return'), undefined);
    assert.equal(ghostText('', ''), undefined);
});

test('advance moves over lines and CRLF', () => {
    assert.deepEqual(advance({ line: 1, character: 4 }, 'abc'), { line: 1, character: 7 });
    assert.deepEqual(advance({ line: 1, character: 4 }, 'a\n  bc'), { line: 2, character: 4 });
    assert.deepEqual(advance({ line: 1, character: 4 }, 'a\r\nb'), { line: 2, character: 1 });
    assert.deepEqual(advance({ line: 0, character: 0 }, '😀'), { line: 0, character: 2 });
});

test('a partial accept reports how much of the item is now in the document', () => {
    const suggestions = tracker();
    suggestions.expectPartialAccept();
    const first = suggestions.onDidChange(URI, insert(2, 10, 'a '));
    assert.deepEqual(first, { item: { command: 'ouzel.accepted' }, acceptedLength: 'return a '.length, acceptedText: 'a ' });
    suggestions.expectPartialAccept();
    const second = suggestions.onDidChange(URI, insert(2, 12, '+ b\n'));
    assert.equal(second?.acceptedLength, 'return a + b\n'.length);
    assert.deepEqual(suggestions.current?.anchor, { line: 3, character: 0 });
    assert.equal(suggestions.current?.ghost, '    # done');
});

test('typing through the ghost text is not an accept, but keeps tracking it', () => {
    const suggestions = tracker();
    assert.equal(suggestions.onDidChange(URI, insert(2, 10, 'a')), undefined);
    assert.equal(suggestions.current?.ghost, ' + b\n    # done');
    suggestions.expectPartialAccept();
    assert.equal(suggestions.onDidChange(URI, insert(2, 11, ' + '))?.acceptedLength, 'return a + '.length);
});

test('a different edit ends the suggestion', () => {
    for (const change of [
        insert(2, 10, 'x'), // not the ghost text
        insert(2, 9, 'a'), // not at the cursor
        insert(5, 10, 'a'), // another line
        [{ range: { start: { line: 2, character: 8 }, end: { line: 2, character: 10 } }, text: 'a' }], // replaces text
        [...insert(2, 10, 'a'), ...insert(2, 11, ' ')], // several changes at once
    ]) {
        const suggestions = tracker();
        suggestions.expectPartialAccept();
        assert.equal(suggestions.onDidChange(URI, change), undefined);
        assert.equal(suggestions.current, undefined);
    }
});

test('edits in other documents are ignored', () => {
    const suggestions = tracker();
    suggestions.expectPartialAccept();
    assert.equal(suggestions.onDidChange('file:///ws/other.py', insert(2, 10, 'a ')), undefined);
    assert.notEqual(suggestions.current, undefined);
});

test('the partial-accept mark is used once, by the next edit only', () => {
    const suggestions = tracker();
    suggestions.expectPartialAccept();
    suggestions.endPartialAccept(); // the wrapped command made no edit
    assert.equal(suggestions.onDidChange(URI, insert(2, 10, 'a ')), undefined);
    assert.notEqual(suggestions.current, undefined);
});

test('accepting everything, a whole accept and clear all end tracking', () => {
    const all = tracker('ab');
    all.expectPartialAccept();
    assert.equal(all.onDidChange(URI, insert(2, 10, 'ab'))?.acceptedLength, 'return ab'.length);
    assert.equal(all.current, undefined);

    const whole = tracker();
    whole.acceptedWhole();
    assert.equal(whole.current, undefined);
    whole.expectPartialAccept();
    assert.equal(whole.onDidChange(URI, insert(2, 10, 'a')), undefined);
});
