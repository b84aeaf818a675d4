// VS Code UI pieces: read-only Markdown views and the status bar tooltip.
import * as vscode from 'vscode';

export const VIEW_SCHEME = 'ouzel';

/** Read-only documents `ouzel:/status.md` and `ouzel:/context.md`. */
export class ViewProvider implements vscode.TextDocumentContentProvider {
    private readonly contents = new Map<string, string>();
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changed.event;

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.contents.get(uri.path) ?? '';
    }

    async show(name: string, markdown: string): Promise<void> {
        const uri = vscode.Uri.from({ scheme: VIEW_SCHEME, path: `/${name}.md` });
        this.contents.set(uri.path, markdown);
        this.changed.fire(uri);
        const document = await vscode.workspace.openTextDocument(uri);
        await vscode.window.showTextDocument(document, { preview: true, viewColumn: vscode.ViewColumn.Beside });
    }

    dispose(): void {
        this.changed.dispose();
    }
}

const TOOLTIP_COMMANDS: [string, string][] = [
    ['Log (click)', 'ouzel.showOutput'],
    ['Status', 'ouzel.showStatus'],
    ['Toggle', 'ouzel.toggleCompletions'],
    ['Restart', 'ouzel.restartServer'],
];

/** The status tooltip with links to the commands a user reaches for from there. */
export function statusTooltip(text: string): vscode.MarkdownString {
    const tooltip = new vscode.MarkdownString();
    for (const line of text.split('\n')) {
        tooltip.appendText(line);
        tooltip.appendMarkdown('  \n');
    }
    tooltip.appendMarkdown('\n' + TOOLTIP_COMMANDS.map(([label, id]) => `[${label}](command:${id})`).join(' · '));
    tooltip.isTrusted = { enabledCommands: TOOLTIP_COMMANDS.map(([, id]) => id) };
    return tooltip;
}
