// Bundles the extension and its dependencies into dist/extension.js, and the chat view's
// webview script into dist/chat.js (a browser script: no Node, no VS Code API but the webview's).
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const options = {
    entryPoints: ['src/extension.ts'],
    bundle: true,
    outfile: 'dist/extension.js',
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    external: ['vscode'],
    sourcemap: production ? false : 'linked',
    minify: production,
    logLevel: 'warning',
};

const webview = {
    entryPoints: ['src/webview/chat.ts'],
    bundle: true,
    outfile: 'dist/chat.js',
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: false,
    minify: production,
    logLevel: 'warning',
};

if (watch) {
    for (const each of [options, webview]) {
        const context = await esbuild.context(each);
        await context.watch();
    }
} else {
    await Promise.all([esbuild.build(options), esbuild.build(webview)]);
}
