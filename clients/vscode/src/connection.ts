// How the language client reaches the server: a child process (stdio) or TCP/TLS.
import * as fs from 'fs';
import { Socket } from 'net';
import * as os from 'os';
import * as vscode from 'vscode';
import { ServerOptions } from 'vscode-languageclient/node';
import { resolveServerCommand, ServerCommand } from './serverCommand';
import { openStream, readToken, TokenResult } from './transport';

export type Mode = 'stdio' | 'tcp';

export interface ConnectionSettings {
    mode: Mode;
    command: string;
    args: string[];
    host: string;
    port: number;
    tokenFile: string;
    tls: boolean;
    tlsCa: string;
}

export function readConnectionSettings(): ConnectionSettings {
    const config = vscode.workspace.getConfiguration('ouzel.server');
    return {
        mode: config.get<string>('mode') === 'tcp' ? 'tcp' : 'stdio',
        command: config.get<string>('command') ?? '',
        args: config.get<string[]>('args') ?? ['serve'],
        host: config.get<string>('host') || '127.0.0.1',
        port: config.get<number>('port') ?? 2087,
        tokenFile: expandHome(config.get<string>('tokenFile') ?? ''),
        tls: config.get<boolean>('tls') ?? false,
        tlsCa: expandHome(config.get<string>('tlsCa') ?? ''),
    };
}

function expandHome(file: string): string {
    const trimmed = file.trim();
    return trimmed === '~' || trimmed.startsWith('~/') ? os.homedir() + trimmed.slice(1) : trimmed;
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
        // An untrusted folder's .venv/bin/ouzel could be anything: don't run it.
        trusted: vscode.workspace.isTrusted,
        platform: process.platform,
        homeDir: os.homedir(),
        isExecutable,
    });
}

export interface Endpoint {
    serverOptions: ServerOptions;
    /** Shown in the status tooltip and the log. */
    description: string;
    /** The token for `initializationOptions.authToken` (TCP only). */
    token: TokenResult;
    /**
     * Opens the connection before the language client exists, so a server that is down is
     * reported once, in our words (the client's own start-up error says only "couldn't
     * create connection"). The client then uses that connection; a restart opens a new one.
     */
    preflight(): Promise<void>;
}

export function endpoint(settings: ConnectionSettings): Endpoint {
    if (settings.mode === 'tcp') {
        const target = {
            host: settings.host,
            port: settings.port,
            tls: settings.tls,
            caFile: settings.tlsCa || undefined,
        };
        let opened: Socket | undefined;
        return {
            serverOptions: async () => {
                const socket = opened ?? (await openStream(target));
                opened = undefined;
                return { reader: socket, writer: socket };
            },
            description: `${settings.tls ? 'tls' : 'tcp'} ${settings.host}:${settings.port}`,
            token: readToken(settings.tokenFile, process.env),
            preflight: async () => {
                opened = await openStream(target);
            },
        };
    }
    const command = localServerCommand(settings);
    return {
        serverOptions: { command: command.command, args: command.args, options: { cwd: command.cwd } },
        description: `stdio ${[command.command, ...command.args].join(' ')} (${command.source})`,
        token: {},
        preflight: async () => {},
    };
}
