// Start-up failures in words a user can act on. Pure logic: no `vscode` import.

/** The server's answer to `initialize` without the right token (see server/remote.py). */
export const AUTH_FAILED = -32001;

export function errorText(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): unknown {
    return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** Why the language server did not start, and what to change. */
export function explainStartFailure(error: unknown): string {
    const message = errorText(error);
    if (errorCode(error) === AUTH_FAILED) {
        return (
            "the server refused the token. Put the server's token in the file named by " +
            '"ouzel.server.tokenFile" or in the OUZEL_TOKEN environment variable.'
        );
    }
    if (errorCode(error) === 'ENOENT' || /\bENOENT\b/.test(message)) {
        return (
            "cannot find the `ouzel` executable. Install ouzel into the workspace's .venv " +
            '(pip install ouzel), or set "ouzel.server.command".'
        );
    }
    if (errorCode(error) === 'EACCES' || /\bEACCES\b/.test(message)) {
        return `the \`ouzel\` executable cannot be run (${message}): check "ouzel.server.command".`;
    }
    return message;
}
