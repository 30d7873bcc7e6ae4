// The page's live stream survives a server restart: it shows
// "reconnecting…", reconnects by itself, and the inbox is complete afterwards,
// including what was stored while it was disconnected.
//
// This test runs Herald processes of its own (the binary scripts/test built),
// all sharing one store, topic and consumer group, one after the other:
//   A serves Emma's page → A stops → B (another port) accepts Bruno's send and
//   stores it → B stops → A starts again on its port → Emma's EventSource
//   reconnects with Last-Event-ID and gets the missed notification.
const { test, expect } = require('@playwright/test');
const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function startHerald(port, env) {
  const proc = spawn(process.env.HERALD_E2E_BIN, [], {
    env: { ...process.env, ...env, LEPTOS_SITE_ADDR: `127.0.0.1:${port}` },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/health`);
      if (res.ok) return proc;
    } catch (_) { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`Herald on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stop(proc) {
  return new Promise((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.kill('SIGTERM');
  });
}

test('the inbox reconnects by itself and misses nothing', async ({ browser }, testInfo) => {
  test.skip(!process.env.HERALD_E2E_BIN || !process.env.KAFKA_BROKERS, 'run through ./scripts/test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-e2e-'));
  const id = `${Date.now()}-${process.pid}`;
  const env = {
    // One secret for every process, so the page's cookie outlives restarts.
    HERALD_AUTH: 'on',
    HERALD_JWT_SECRET: `reconnect-secret-${id}`,
    DATABASE_URL: `sqlite://${dir}/herald.db`,
    HERALD_TOPIC: `reconnect-${id}`,
    HERALD_CONSUMER_GROUP: `reconnect-${id}`,
  };
  const portA = await freePort();
  const portB = await freePort();
  let a = await startHerald(portA, env);
  let b;
  try {
    const context = await browser.newContext();
    const signIn = await context.request.post(`http://127.0.0.1:${portA}/api/session`, { data: { user: 1 } });
    expect(signIn.status()).toBe(200);
    const emmaToken = (await signIn.json()).token;
    const brunoToken = (await (await fetch(`http://127.0.0.1:${portA}/api/session`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 2 }),
    })).json()).token;
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${portA}/`);
    await expect(page.locator('.page[data-hydrated="true"]')).toBeVisible();
    await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'live');

    // One notification arrives live first.
    const send = async (port, message) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/notifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${brunoToken}` },
        body: JSON.stringify({ to: 1, message }),
      });
      expect(res.status).toBe(202);
    };
    await send(portA, 'before the restart');
    await expect(page.getByTestId('inbox')).toContainText('before the restart');

    expect(await stop(a)).toBe(0);
    await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'reconnecting');

    // Stored while the page is disconnected.
    b = await startHerald(portB, env);
    await send(portB, 'sent while you were away');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${portB}/api/users/1/notifications`, {
        headers: { authorization: `Bearer ${emmaToken}` },
      });
      const body = await res.json();
      if (body.notifications.some((n) => n.message === 'sent while you were away')) break;
      if (Date.now() > deadline) throw new Error('not stored');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await stop(b)).toBe(0);
    b = undefined;

    a = await startHerald(portA, env);
    await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'live', { timeout: 20_000 });
    const items = page.getByTestId('inbox').locator('li.item');
    await expect(items.first()).toContainText('sent while you were away');
    await expect(items).toHaveCount(2);

    const shot = testInfo.outputPath('emma-after-reconnect.png');
    await page.screenshot({ path: shot, fullPage: true });
    await testInfo.attach('emma-after-reconnect', { path: shot, contentType: 'image/png' });
    await context.close();
  } finally {
    if (b) await stop(b);
    await stop(a);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
