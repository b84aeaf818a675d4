import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { AUTH_FAILED, errorText, explainStartFailure } from '../src/errors';

test('a refused token names both ways to give it', () => {
    const error = Object.assign(new Error('Authentication failed'), { code: AUTH_FAILED });
    const text = explainStartFailure(error);
    assert.match(text, /refused the token/);
    assert.match(text, /ouzel\.server\.tokenFile/);
    assert.match(text, /OUZEL_TOKEN/);
});

test('a missing executable says how to install or configure it', () => {
    const spawnError = Object.assign(new Error('spawn /ws/.venv/bin/ouzel ENOENT'), { code: 'ENOENT' });
    assert.match(explainStartFailure(spawnError), /cannot find the `ouzel` executable.*ouzel\.server\.command/);
    assert.match(explainStartFailure(new Error('spawn ouzel ENOENT')), /cannot find/);
});

test('an executable that cannot run points at the setting', () => {
    const error = Object.assign(new Error('spawn /tmp/ouzel EACCES'), { code: 'EACCES' });
    assert.match(explainStartFailure(error), /cannot be run \(spawn \/tmp\/ouzel EACCES\).*ouzel\.server\.command/);
});

test('anything else keeps its own message', () => {
    const tcp = new Error('cannot reach the ouzel server at tcp 127.0.0.1:2087 (ECONNREFUSED). Start it with …');
    assert.equal(explainStartFailure(tcp), tcp.message);
    assert.equal(explainStartFailure('plain text'), 'plain text');
    assert.equal(explainStartFailure(undefined), 'undefined');
    assert.equal(errorText(new Error('x')), 'x');
});
