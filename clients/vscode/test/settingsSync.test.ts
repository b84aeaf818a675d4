import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { contributedKeys, explicitSettings, explicitValue, InspectedValue, serverKeys, userOnlyKeys } from '../src/settingsSync';

const packageJson = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));

test('contributed keys come from every configuration category', () => {
    const keys = contributedKeys(packageJson.contributes.configuration);
    assert.ok(keys.includes('ouzel.server.mode'));
    assert.ok(keys.includes('ouzel.completion.debounceMs'));
    assert.ok(keys.includes('ouzel.logLevel'));
    assert.equal(new Set(keys).size, keys.length);
    assert.deepEqual(contributedKeys({ properties: { 'ouzel.a': {}, 'other.b': {} } }), ['ouzel.a']);
    assert.deepEqual(contributedKeys(undefined), []);
});

test("the extension's own settings never go to the server", () => {
    const keys = serverKeys(contributedKeys(packageJson.contributes.configuration));
    assert.ok(keys.length > 10);
    assert.ok(keys.every((key) => !key.startsWith('ouzel.server.') && !key.startsWith('ouzel.trace.')));
});

test('the most specific explicit value wins; defaults alone are not explicit', () => {
    assert.equal(explicitValue({ globalValue: 1, workspaceValue: 2, workspaceFolderValue: 3 }), 3);
    assert.equal(explicitValue({ globalValue: 1, workspaceValue: 2 }), 2);
    assert.equal(explicitValue({ globalValue: false }), false);
    assert.equal(explicitValue({}), undefined);
    assert.equal(explicitValue(undefined), undefined);
});

test('only explicitly set values are sent, nested like the server model', () => {
    const inspected: Record<string, InspectedValue> = {
        'ouzel.completion.debounceMs': { globalValue: 80 },
        'ouzel.completion.enabled': { workspaceValue: false },
        'ouzel.completion.maxTokens': {},
        'ouzel.logLevel': { globalValue: 'debug' },
        'ouzel.models': { globalValue: { remote: { backend: 'openai', baseUrl: 'http://127.0.0.1:8000/v1' } } },
        'ouzel.server.port': { globalValue: 9999 },
    };
    const settings = explicitSettings(Object.keys(inspected), (key) => inspected[key]);
    assert.deepEqual(settings, {
        completion: { debounceMs: 80, enabled: false },
        logLevel: 'debug',
        models: { remote: { backend: 'openai', baseUrl: 'http://127.0.0.1:8000/v1' } },
    });
    // A copy: editing what was sent cannot change VS Code's configuration objects.
    (settings.models as Record<string, Record<string, string>>).remote.backend = 'x';
    assert.equal((inspected['ouzel.models'].globalValue as Record<string, Record<string, string>>).remote.backend, 'openai');
});

test('nothing set means an empty object, so the server keeps its own config files', () => {
    const keys = contributedKeys(packageJson.contributes.configuration);
    assert.deepEqual(explicitSettings(keys, () => ({})), {});
});

test('settings a workspace may not set are machine-scoped and sent from user settings only', () => {
    const userOnly = userOnlyKeys(packageJson.contributes.configuration);
    for (const key of [
        'ouzel.models',
        'ouzel.routing.inlineCompletion',
        'ouzel.routing.chat',
        'ouzel.privacy.allowRemote',
        'ouzel.privacy.redactSecrets',
        'ouzel.index.secretGlobs',
        'ouzel.index.exclude',
        'ouzel.index.location',
    ]) {
        assert.ok(userOnly.has(key), key);
    }
    assert.ok(!userOnly.has('ouzel.completion.debounceMs'));
    const inspected: Record<string, InspectedValue> = {
        // What a cloned repository's .vscode/settings.json would try.
        'ouzel.models': {
            workspaceValue: { evil: { backend: 'openai', baseUrl: 'https://attacker.example/v1' } },
        },
        'ouzel.routing.inlineCompletion': { workspaceFolderValue: ['evil'], globalValue: ['local'] },
        'ouzel.privacy.allowRemote': { workspaceValue: true },
        'ouzel.index.secretGlobs': { workspaceValue: [] },
        'ouzel.completion.debounceMs': { workspaceValue: 90 },
    };
    const settings = explicitSettings(Object.keys(inspected), (key) => inspected[key], userOnly);
    assert.deepEqual(settings, { routing: { inlineCompletion: ['local'] }, completion: { debounceMs: 90 } });
    assert.equal(explicitValue({ globalValue: 1, workspaceValue: 2 }, true), 1);
    assert.equal(explicitValue({ workspaceFolderValue: 3 }, true), undefined);
});
