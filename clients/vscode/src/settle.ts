// After an agent turn (or its undo) the server has written the files itself (docs/AGENT.md):
// the editor's documents it edited through `workspace/applyEdit` hold the same text as the
// disk but are marked modified. Settling saves exactly those, so no "dirty" dot and no
// "the file changed on disk" conflict is left behind. A document whose text differs from the
// disk (the user typed meanwhile, or the server did not write it) is left alone.
import * as vscode from 'vscode';
import { savingChangesText, textEqualsDisk } from './agent';

/** Documents open in the editor that are one of `uris` or one of `paths` (relative to a
 *  workspace folder, or absolute). */
export function documentsFor(uris: readonly string[], paths: readonly string[]): vscode.TextDocument[] {
    const wantedUris = new Set(uris);
    const wantedPaths = new Set(paths);
    return vscode.workspace.textDocuments.filter((document) => {
        if (document.uri.scheme !== 'file' || document.isClosed) {
            return false;
        }
        if (wantedUris.has(document.uri.toString())) {
            return true;
        }
        return wantedPaths.has(document.uri.fsPath) || wantedPaths.has(vscode.workspace.asRelativePath(document.uri, false));
    });
}

async function diskBytes(uri: vscode.Uri): Promise<Uint8Array | undefined> {
    try {
        return await vscode.workspace.fs.readFile(uri);
    } catch {
        return undefined;
    }
}

/** Reverting needs the document's editor to be the active one; the previous editor comes back. */
async function revert(document: vscode.TextDocument): Promise<boolean> {
    const previous = vscode.window.activeTextEditor;
    await vscode.window.showTextDocument(document, { preview: false, preserveFocus: false });
    await vscode.commands.executeCommand('workbench.action.files.revert');
    if (previous !== undefined && previous.document !== document && !previous.document.isClosed) {
        await vscode.window.showTextDocument(previous.document, { viewColumn: previous.viewColumn, preserveFocus: false });
    }
    return !document.isDirty;
}

async function settleOne(document: vscode.TextDocument): Promise<'settled' | 'differs' | 'clean'> {
    if (!document.isDirty) {
        return 'clean';
    }
    const disk = await diskBytes(document.uri);
    if (disk === undefined || !textEqualsDisk(document.getText(), disk)) {
        return 'differs';
    }
    const config = vscode.workspace.getConfiguration(undefined, document);
    // Format on save and the like would change the text the user reviewed: revert instead
    // (the text already is the disk's).
    if (savingChangesText((key) => config.get(key))) {
        return (await revert(document)) ? 'settled' : 'differs';
    }
    return (await document.save()) ? 'settled' : 'differs';
}

/** Marks the documents of `uris`/`paths` whose text equals the disk as unmodified. The server
 *  may still be writing the last file when its answer arrives: a differing document is looked
 *  at again for up to `waitMs`. Returns the paths settled and those left modified. */
export async function settleDocuments(
    uris: readonly string[],
    paths: readonly string[],
    log: (line: string) => void,
    waitMs = 2000,
): Promise<{ settled: string[]; left: string[] }> {
    const settled: string[] = [];
    let pending = documentsFor(uris, paths);
    const deadline = Date.now() + waitMs;
    for (;;) {
        const differing: vscode.TextDocument[] = [];
        for (const document of pending) {
            try {
                const outcome = await settleOne(document);
                if (outcome === 'settled') {
                    settled.push(vscode.workspace.asRelativePath(document.uri, false));
                } else if (outcome === 'differs') {
                    differing.push(document);
                }
            } catch (error) {
                log(`[ouzel] agent: could not mark ${document.uri.fsPath} as saved: ${String(error)}`);
            }
        }
        pending = differing.filter((document) => !document.isClosed && document.isDirty);
        if (pending.length === 0 || Date.now() >= deadline) {
            break;
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const left = pending.map((document) => vscode.workspace.asRelativePath(document.uri, false));
    if (settled.length > 0 || left.length > 0) {
        log(`[ouzel] agent: documents saved (text equal to disk): ${JSON.stringify(settled)}; left modified: ${JSON.stringify(left)}`);
    }
    return { settled, left };
}
