// How the language client reaches the server: a child process (stdio) or a TCP socket.
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as vscode from 'vscode';
import { ServerOptions, StreamInfo } from 'vscode-languageclient/node';
import { resolveServerCommand, ServerCommand } from './serverCommand';

export type Mode = 'stdio' | 'tcp';

export interface ConnectionSettings {
    mode: Mode;
    command: string;
    args: string[];
    host: string;
    port: number;
}

export function readConnectionSettings(): ConnectionSettings {
    const config = vscode.workspace.getConfiguration('ouzel.server');
    return {
        mode: config.get<string>('mode') === 'tcp' ? 'tcp' : 'stdio',
        command: config.get<string>('command') ?? '',
        args: config.get<string[]>('args') ?? ['serve'],
        host: config.get<string>('host') || '127.0.0.1',
        port: config.get<number>('port') ?? 2087,
    };
}

function isExecutable(file: string): boolean {
    try {
        fs.accessSync(file, fs.constants.X_OK);
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}

export function localServerCommand(settings: ConnectionSettings): ServerCommand {
    return resolveServerCommand({
        configuredCommand: settings.command,
        args: settings.args,
        workspaceFolders: (vscode.workspace.workspaceFolders ?? [])
            .filter((folder) => folder.uri.scheme === 'file')
            .map((folder) => folder.uri.fsPath),
        platform: process.platform,
        homeDir: os.homedir(),
        isExecutable,
    });
}

export function connectTcp(host: string, port: number, timeoutMs = 10000): Promise<StreamInfo> {
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port });
        const fail = (reason: string) => {
            socket.destroy();
            reject(
                new Error(
                    `cannot reach the ouzel server at ${host}:${port} (${reason}). Start it with ` +
                        `\`ouzel serve --tcp ${host}:${port}\`, or set "ouzel.server.mode": "stdio".`,
                ),
            );
        };
        socket.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs / 1000} s`));
        socket.once('error', (error) => fail(error.message));
        socket.once('connect', () => {
            socket.setTimeout(0);
            socket.removeAllListeners('error');
            resolve({ reader: socket, writer: socket });
        });
    });
}

export interface Endpoint {
    serverOptions: ServerOptions;
    /** Shown in the status tooltip and the log. */
    description: string;
}

export function endpoint(settings: ConnectionSettings): Endpoint {
    if (settings.mode === 'tcp') {
        return {
            serverOptions: () => connectTcp(settings.host, settings.port),
            description: `tcp ${settings.host}:${settings.port}`,
        };
    }
    const command = localServerCommand(settings);
    return {
        serverOptions: { command: command.command, args: command.args, options: { cwd: command.cwd } },
        description: `stdio ${[command.command, ...command.args].join(' ')} (${command.source})`,
    };
}
