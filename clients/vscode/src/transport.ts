// TCP and TLS streams to a running `ouzel serve --tcp`, and the token it may require.
// Node APIs only (no `vscode` import), so the unit tests run them against real sockets.
import * as fs from 'fs';
import * as net from 'net';
import * as tls from 'tls';

export const TOKEN_ENV = 'OUZEL_TOKEN';

export interface TcpTarget {
    host: string;
    port: number;
    tls: boolean;
    /** PEM file of the CA that signed the server's certificate (e.g. a self-signed one). */
    caFile?: string;
    timeoutMs?: number;
}

function describe(target: TcpTarget): string {
    return `${target.tls ? 'tls' : 'tcp'} ${target.host}:${target.port}`;
}

function failure(target: TcpTarget, reason: string): Error {
    let hint = `Start it with \`ouzel serve --tcp ${target.host}:${target.port}\`, or set "ouzel.server.mode": "stdio".`;
    if (/certificate|self[- ]signed|CERT|unable to verify/i.test(reason)) {
        hint = 'Set "ouzel.server.tlsCa" to the CA certificate (PEM) that signed the server\'s certificate.';
    } else if (/EPROTO|wrong version number|packet length too long/i.test(reason)) {
        hint = 'The server does not speak TLS there: unset "ouzel.server.tls" or start it with --tls-cert/--tls-key.';
    }
    return new Error(`cannot reach the ouzel server at ${describe(target)} (${reason}). ${hint}`);
}

/** A connected socket; rejects with an error that says what to do. */
export function openStream(target: TcpTarget): Promise<net.Socket> {
    const timeoutMs = target.timeoutMs ?? 10000;
    return new Promise((resolve, reject) => {
        let socket: net.Socket;
        try {
            if (target.tls) {
                socket = tls.connect({
                    host: target.host,
                    port: target.port,
                    servername: net.isIP(target.host) ? undefined : target.host,
                    ca: target.caFile ? fs.readFileSync(target.caFile) : undefined,
                });
            } else {
                socket = net.connect({ host: target.host, port: target.port });
            }
        } catch (error) {
            reject(failure(target, error instanceof Error ? error.message : String(error)));
            return;
        }
        const fail = (reason: string) => {
            socket.destroy();
            reject(failure(target, reason));
        };
        socket.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs / 1000} s`));
        socket.once('error', (error) => fail(error.message));
        socket.once(target.tls ? 'secureConnect' : 'connect', () => {
            socket.setTimeout(0);
            socket.removeAllListeners('error');
            resolve(socket);
        });
    });
}

export interface TokenResult {
    token?: string;
    /** Why a configured token could not be read. */
    problem?: string;
}

/** The server's token: from `tokenFile` when set, else from `$OUZEL_TOKEN`. */
export function readToken(tokenFile: string, env: NodeJS.ProcessEnv): TokenResult {
    if (tokenFile !== '') {
        try {
            const token = fs.readFileSync(tokenFile, 'utf8').trim();
            return token === '' ? { problem: `${tokenFile} is empty` } : { token };
        } catch (error) {
            return { problem: `cannot read the token file ${tokenFile}: ${(error as Error).message}` };
        }
    }
    const token = env[TOKEN_ENV]?.trim();
    return token ? { token } : {};
}
