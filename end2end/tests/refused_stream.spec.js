// A stream the server refuses (too many open for this user) is not shown
// as "reconnecting" for ever: the page says why live updates stopped.
const { test, expect } = require('@playwright/test');
const http = require('http');
const { signedInContext } = require('./helpers');

// Open one raw event stream with `cookie`; resolves with its request once
// the server answered 200.
function openStream(baseURL, path, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, baseURL), { headers: { cookie, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode === 200) resolve(req);
      else reject(new Error(`stream answered ${res.statusCode}`));
    });
    req.on('error', reject);
  });
}

test('a refused stream says too many tabs are open', async ({ browser, baseURL }) => {
  // Lena: no other browser test uses her inbox.
  const context = await signedInContext(browser, 4);
  const session = (await context.cookies()).find((c) => c.name === 'herald_session');
  const cookie = `herald_session=${session.value}`;
  // Fill her streams up to the server's cap (HERALD_MAX_STREAMS_PER_USER, 32).
  const held = [];
  try {
    for (;;) {
      try {
        held.push(await openStream(baseURL, '/api/users/4/events', cookie));
      } catch (e) {
        expect(e.message).toContain('429');
        break;
      }
      expect(held.length).toBeLessThan(1000);
    }
    const page = await context.newPage();
    await page.goto('/');
    await expect(page.locator('.page[data-hydrated="true"]')).toBeVisible();
    const live = page.getByTestId('live');
    await expect(live).toHaveAttribute('data-state', 'refused-too-many', { timeout: 10_000 });
    await expect(live).toContainText('too many open tabs');
  } finally {
    held.forEach((req) => req.destroy());
    await context.close();
  }
});
