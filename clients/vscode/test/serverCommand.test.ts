import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { expandCommand, resolveServerCommand, ServerCommandInput } from '../src/serverCommand';

function input(overrides: Partial<ServerCommandInput>): ServerCommandInput {
    return {
        configuredCommand: '',
        args: ['serve'],
        workspaceFolders: [],
        trusted: true,
        platform: 'linux',
        homeDir: '/home/ada',
        isExecutable: () => false,
        ...overrides,
    };
}

test('the workspace .venv wins when there is no configured command', () => {
    const seen: string[] = [];
    const command = resolveServerCommand(
        input({
            workspaceFolders: ['/ws/app', '/ws/lib'],
            isExecutable: (file) => {
                seen.push(file);
                return file === '/ws/lib/.venv/bin/ouzel';
            },
        }),
    );
    assert.deepEqual(command, { command: '/ws/lib/.venv/bin/ouzel', args: ['serve'], cwd: '/ws/lib', source: 'venv' });
    // The first folder's environments are tried first, .venv before venv.
    assert.deepEqual(seen.slice(0, 4), [
        '/ws/app/.venv/bin/ouzel',
        '/ws/app/venv/bin/ouzel',
        '/ws/app/env/bin/ouzel',
        '/ws/lib/.venv/bin/ouzel',
    ]);
});

test("an untrusted workspace's venv is never run", () => {
    const command = resolveServerCommand(input({ workspaceFolders: ['/ws/app'], trusted: false, isExecutable: () => true }));
    assert.deepEqual(command, { command: 'ouzel', args: ['serve'], cwd: '/ws/app', source: 'path' });
});

test('without a venv the command is looked up on PATH', () => {
    const command = resolveServerCommand(input({ workspaceFolders: ['/ws/app'] }));
    assert.deepEqual(command, { command: 'ouzel', args: ['serve'], cwd: '/ws/app', source: 'path' });
    assert.equal(resolveServerCommand(input({ platform: 'win32' })).command, 'ouzel.exe');
    assert.equal(resolveServerCommand(input({})).cwd, undefined);
});

test('Windows virtual environments keep the executable in Scripts', () => {
    const command = resolveServerCommand(
        input({
            platform: 'win32',
            workspaceFolders: ['C:\\ws'],
            isExecutable: (file) => file === 'C:\\ws\\.venv\\Scripts\\ouzel.exe',
        }),
    );
    assert.equal(command.command, 'C:\\ws\\.venv\\Scripts\\ouzel.exe');
});

test('a configured command wins over the venv, with ~ and ${workspaceFolder} expanded', () => {
    const isExecutable = () => true;
    assert.deepEqual(
        resolveServerCommand(input({ configuredCommand: '~/bin/ouzel', isExecutable, args: ['serve', '--log-level', 'debug'] })),
        { command: '/home/ada/bin/ouzel', args: ['serve', '--log-level', 'debug'], cwd: undefined, source: 'setting' },
    );
    assert.equal(
        resolveServerCommand(input({ configuredCommand: '${workspaceFolder}/tools/ouzel', workspaceFolders: ['/ws'], isExecutable }))
            .command,
        '/ws/tools/ouzel',
    );
    // Relative paths with a separator are relative to the workspace; bare names go to PATH.
    assert.equal(
        resolveServerCommand(input({ configuredCommand: 'tools/ouzel', workspaceFolders: ['/ws'] })).command,
        '/ws/tools/ouzel',
    );
    assert.equal(resolveServerCommand(input({ configuredCommand: ' ouzel-dev ', workspaceFolders: ['/ws'] })).command, 'ouzel-dev');
});

test('expandCommand leaves other text alone', () => {
    assert.equal(expandCommand('/opt/ouzel~1/bin/ouzel', '/ws', '/home/ada'), '/opt/ouzel~1/bin/ouzel');
    assert.equal(expandCommand('${workspaceFolder}/x', undefined, '/h'), '${workspaceFolder}/x');
    assert.equal(expandCommand('~', undefined, '/h'), '/h');
});

test('the args array is copied, not shared', () => {
    const args = ['serve'];
    const command = resolveServerCommand(input({ args }));
    command.args.push('--stdio');
    assert.deepEqual(args, ['serve']);
});
