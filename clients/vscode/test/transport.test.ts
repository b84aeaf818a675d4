import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { openStream, readToken } from '../src/transport';

let dir: string;
let cert: string;
let key: string;

before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ouzel-transport-'));
    cert = path.join(dir, 'cert.pem');
    key = path.join(dir, 'key.pem');
    // A self-signed certificate for 127.0.0.1 and localhost, made by Debian's openssl.
    execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
    ], { stdio: 'ignore' });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A loopback echo server (plain or TLS) on a free port. */
async function listen(secure: boolean): Promise<{ port: number; close: () => Promise<void> }> {
    const sockets: net.Socket[] = [];
    const echo = (socket: net.Socket) => {
        sockets.push(socket);
        socket.on('error', () => {});
        socket.pipe(socket);
    };
    const server = secure
        ? tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, echo)
        : net.createServer(echo);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    return {
        port,
        close: () =>
            new Promise((resolve) => {
                server.close(() => resolve());
                sockets.forEach((socket) => socket.destroy());
            }),
    };
}

async function roundTrip(socket: net.Socket, text: string): Promise<string> {
    const received = new Promise<string>((resolve) => socket.once('data', (data) => resolve(data.toString())));
    socket.write(text);
    const answer = await received;
    socket.destroy();
    return answer;
}

test('plain TCP connects and carries bytes both ways', async () => {
    const server = await listen(false);
    try {
        const socket = await openStream({ host: '127.0.0.1', port: server.port, tls: false });
        assert.equal(await roundTrip(socket, 'Content-Length: 2\r\n\r\n{}'), 'Content-Length: 2\r\n\r\n{}');
    } finally {
        await server.close();
    }
});

test('nobody listening: the error says how to start the server', async () => {
    const server = await listen(false);
    const port = server.port;
    await server.close();
    await assert.rejects(openStream({ host: '127.0.0.1', port, tls: false }), (error: Error) => {
        assert.match(error.message, new RegExp(`cannot reach the ouzel server at tcp 127.0.0.1:${port}`));
        assert.match(error.message, /ECONNREFUSED/);
        assert.match(error.message, new RegExp(`ouzel serve --tcp 127.0.0.1:${port}`));
        return true;
    });
});

test('TLS with the CA that signed the certificate works, for a name and for an address', async () => {
    const server = await listen(true);
    try {
        for (const host of ['localhost', '127.0.0.1']) {
            const socket = await openStream({ host, port: server.port, tls: true, caFile: cert });
            assert.equal(await roundTrip(socket, 'hello'), 'hello');
        }
    } finally {
        await server.close();
    }
});

test('an unknown self-signed certificate is refused with the setting to fix it', async () => {
    const server = await listen(true);
    try {
        await assert.rejects(openStream({ host: '127.0.0.1', port: server.port, tls: true }), /ouzel\.server\.tlsCa/);
    } finally {
        await server.close();
    }
});

test('TLS to a plain server fails clearly instead of hanging', async () => {
    const server = await listen(false);
    try {
        await assert.rejects(
            openStream({ host: '127.0.0.1', port: server.port, tls: true, caFile: cert, timeoutMs: 3000 }),
            /cannot reach the ouzel server at tls 127\.0\.0\.1/,
        );
    } finally {
        await server.close();
    }
});

test('a server that accepts but never answers the TLS handshake times out', async () => {
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
        await assert.rejects(
            openStream({ host: '127.0.0.1', port, tls: true, caFile: cert, timeoutMs: 300 }),
            /no answer in 0.3 s/,
        );
    } finally {
        accepted.forEach((socket) => socket.destroy());
        await new Promise((resolve) => silent.close(resolve));
    }
});

test('a missing CA file is reported, not thrown', async () => {
    await assert.rejects(
        openStream({ host: '127.0.0.1', port: 1, tls: true, caFile: path.join(dir, 'missing.pem') }),
        /cannot reach the ouzel server.*ENOENT/,
    );
});

test('the token comes from the file, else from OUZEL_TOKEN', () => {
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, '  s3cret-token-value \n');
    assert.deepEqual(readToken(file, { OUZEL_TOKEN: 'from-env' }), { token: 's3cret-token-value' });
    assert.deepEqual(readToken('', { OUZEL_TOKEN: ' from-env ' }), { token: 'from-env' });
    assert.deepEqual(readToken('', {}), {});
    assert.deepEqual(readToken('', { OUZEL_TOKEN: '  ' }), {});
    fs.writeFileSync(file, '\n');
    assert.match(readToken(file, {}).problem ?? '', /is empty/);
    assert.match(readToken(path.join(dir, 'nope'), { OUZEL_TOKEN: 'x' }).problem ?? '', /cannot read the token file/);
});
