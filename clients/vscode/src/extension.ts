// Entry point: only activates and deactivates; everything else lives in controller.ts.
import * as vscode from 'vscode';
import { OuzelController } from './controller';

let controller: OuzelController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    controller = new OuzelController(context);
    context.subscriptions.push(controller);
    await controller.start();
}

export async function deactivate(): Promise<void> {
    await controller?.stop();
    controller = undefined;
}
