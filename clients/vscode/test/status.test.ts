import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { initialStatus, modelFromStatus, ProgressTracker, renderStatus, shortModelName, StatusState } from '../src/status';

function running(overrides: Partial<StatusState> = {}): StatusState {
    return { ...initialStatus('stdio ouzel serve (venv)', true), connection: 'running', ...overrides };
}

test('starting, running, off, stopped and failed read differently', () => {
    assert.match(renderStatus(initialStatus('x', true)).text, /loading~spin.*starting/);
    assert.equal(renderStatus(running()).text, '$(sparkle) ouzel');
    assert.equal(renderStatus(running({ enabled: false })).text, '$(circle-slash) ouzel · off');
    const stopped = renderStatus(running({ connection: 'stopped' }));
    assert.equal(stopped.severity, 'warning');
    assert.match(stopped.text, /stopped/);
    const failed = renderStatus(running({ connection: 'failed', error: 'cannot find ouzel' }));
    assert.equal(failed.severity, 'error');
    assert.match(failed.text, /\$\(error\) ouzel · server failed/);
    assert.match(failed.tooltip, /error: cannot find ouzel/);
});

test('the model, the last latency and progress show in the text', () => {
    assert.equal(renderStatus(running({ model: 'gemma3', lastLatencyMs: 142.4 })).text, '$(sparkle) ouzel · gemma3 · 142 ms');
    const indexing = renderStatus(
        running({ model: 'gemma3', lastLatencyMs: 90, progress: { title: 'Indexing', message: '120/400 files', percentage: 30 } }),
    );
    assert.equal(indexing.text, '$(sync~spin) ouzel · gemma3 · indexing 30%');
    assert.match(indexing.tooltip, /indexing 30%: 120\/400 files/);
    assert.match(indexing.tooltip, /last completion: 90 ms/);
});

test('an error is a warning until the next success clears it', () => {
    const rendered = renderStatus(running({ error: 'completion failed: timeout' }));
    assert.equal(rendered.severity, 'warning');
    assert.match(rendered.text, /^\$\(warning\) ouzel/);
    assert.equal(renderStatus(running({ error: undefined })).severity, 'normal');
});

test('the tooltip names the endpoint and counts suggestions', () => {
    const tooltip = renderStatus(running({ shown: 7, accepted: 3 })).tooltip;
    assert.match(tooltip, /ouzel \(stdio ouzel serve \(venv\)\)/);
    assert.match(tooltip, /suggestions shown 7, accepted 3/);
});

test('progress: begin, report, end; the newest active one is current', () => {
    const tracker = new ProgressTracker();
    assert.equal(tracker.current(), undefined);
    tracker.update('a', { kind: 'begin', title: 'Indexing', percentage: 0 });
    tracker.update(7, { kind: 'begin', title: 'Loading model' });
    assert.equal(tracker.current()?.title, 'Loading model');
    tracker.update(7, { kind: 'end' });
    tracker.update('a', { kind: 'report', message: '3/10', percentage: 30 });
    assert.deepEqual(tracker.current(), { title: 'Indexing', message: '3/10', percentage: 30 });
    tracker.update('unknown', { kind: 'report', percentage: 99 });
    tracker.update('a', 'garbage');
    tracker.update('a', null);
    assert.equal(tracker.current()?.percentage, 30);
    tracker.update('a', { kind: 'end' });
    assert.equal(tracker.current(), undefined);
});

test('percentages outside 0..100 are clamped', () => {
    assert.match(renderStatus(running({ progress: { title: 'Indexing', percentage: 250 } })).text, /indexing 100%/);
    assert.match(renderStatus(running({ progress: { title: 'Indexing', percentage: -5 } })).text, /indexing 0%/);
});

test('the model comes from the status "model" section', () => {
    assert.deepEqual(
        modelFromStatus({ version: '0.1', model: { profile: 'local', path: '/m/gemma-3-270m-Q4_K_M.gguf', state: 'ready' } }),
        { name: 'gemma-3-270m-Q4_K_M' },
    );
    assert.deepEqual(modelFromStatus({ model: { profile: 'local', path: 'embedded', state: 'loading' } }), { name: 'embedded' });
    assert.deepEqual(modelFromStatus({ model: { profile: 'remote', state: 'none' } }), { name: 'remote' });
    assert.deepEqual(modelFromStatus({ model: { profile: null, state: 'none' } }), {});
    assert.deepEqual(modelFromStatus({ model: 'qwen2.5-coder' }), { name: 'qwen2.5-coder' });
    assert.deepEqual(modelFromStatus({ model: '' }), {});
    assert.deepEqual(modelFromStatus(null), {});
    assert.deepEqual(modelFromStatus('model'), {});
    assert.equal(shortModelName('C:\\models\\x.GGUF'), 'x');
});

test('a model that failed to load is an error', () => {
    assert.deepEqual(modelFromStatus({ model: { path: '/m/x.gguf', state: 'failed', error: 'not a GGUF file' } }), {
        name: 'x',
        error: 'model x unavailable: not a GGUF file',
    });
    assert.equal(modelFromStatus({ model: { state: 'failed' } }).error, 'model unavailable: it could not load');
});
