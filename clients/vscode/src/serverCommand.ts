// Which `ouzel` executable to start in stdio mode. Pure logic: no `vscode` import, so the
// unit tests run under plain node.
import * as path from 'path';

export interface ServerCommandInput {
    /** `ouzel.server.command`; empty means "find it". */
    configuredCommand: string;
    /** `ouzel.server.args`. */
    args: readonly string[];
    /** File-system paths of the open workspace folders, in order. */
    workspaceFolders: readonly string[];
    /** Workspace trust: an untrusted folder's virtual environment is never run. */
    trusted: boolean;
    platform: NodeJS.Platform;
    homeDir: string;
    isExecutable: (file: string) => boolean;
}

export interface ServerCommand {
    command: string;
    args: string[];
    /** Working directory for the process: the first workspace folder, if any. */
    cwd?: string;
    /** Where the command came from, shown in the status tooltip and the log. */
    source: 'setting' | 'venv' | 'path';
}

/** Virtual environment folders searched in each workspace folder, most common first. */
export const VENV_NAMES = ['.venv', 'venv', 'env'];

export function venvExecutable(venv: string, platform: NodeJS.Platform): string {
    return platform === 'win32'
        ? path.win32.join(venv, 'Scripts', 'ouzel.exe')
        : path.posix.join(venv, 'bin', 'ouzel');
}

/** `~` and `${workspaceFolder}` in a configured command, as users write them in settings. */
export function expandCommand(command: string, workspaceFolder: string | undefined, homeDir: string): string {
    let expanded = command.trim();
    if (expanded === '~' || expanded.startsWith('~/')) {
        expanded = homeDir + expanded.slice(1);
    }
    if (workspaceFolder !== undefined) {
        expanded = expanded.split('${workspaceFolder}').join(workspaceFolder);
    }
    return expanded;
}

export function resolveServerCommand(input: ServerCommandInput): ServerCommand {
    const firstFolder = input.workspaceFolders[0];
    const args = [...input.args];
    const configured = input.configuredCommand.trim();
    if (configured !== '') {
        let command = expandCommand(configured, firstFolder, input.homeDir);
        const pathApi = input.platform === 'win32' ? path.win32 : path.posix;
        // A relative path with a separator is relative to the workspace, like VS Code's own
        // settings; a bare name is looked up on PATH by the OS.
        if (firstFolder !== undefined && !pathApi.isAbsolute(command) && /[\\/]/.test(command)) {
            command = pathApi.join(firstFolder, command);
        }
        return { command, args, cwd: firstFolder, source: 'setting' };
    }
    for (const folder of input.trusted ? input.workspaceFolders : []) {
        for (const name of VENV_NAMES) {
            const pathApi = input.platform === 'win32' ? path.win32 : path.posix;
            const candidate = venvExecutable(pathApi.join(folder, name), input.platform);
            if (input.isExecutable(candidate)) {
                return { command: candidate, args, cwd: folder, source: 'venv' };
            }
        }
    }
    const command = input.platform === 'win32' ? 'ouzel.exe' : 'ouzel';
    return { command, args, cwd: firstFolder, source: 'path' };
}
