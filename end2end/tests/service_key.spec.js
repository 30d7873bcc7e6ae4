// A backend service sends with an API key: Emma sees its notification live,
// with its title, its action button, and a click that opens its link.
const { test, expect } = require('@playwright/test');
const { execFileSync } = require('child_process');
const { signedInContext, openTab } = require('./helpers');

test('a service notification with title, link and action appears live and opens its link', async ({ browser, baseURL }) => {
  test.skip(!process.env.HERALD_E2E_BIN || !process.env.E2E_DATABASE_URL, 'run through ./scripts/test');
  // `server keys create` against the store of the running server.
  const name = `Shop ${Date.now()}`;
  const out = execFileSync(process.env.HERALD_E2E_BIN, ['keys', 'create', '--name', name, '--scopes', 'send'], {
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL, RUST_LOG: 'warn' },
  }).toString();
  const key = out.split('\n')[0];
  expect(key).toMatch(/^hk_[0-9a-f]{64}$/);

  const emma = await openTab(await signedInContext(browser, 1));
  // Links stay on this server: the machine has no other network.
  const link = `${baseURL}/api/health?order=48213`;
  const res = await emma.context.request.post('/api/notifications', {
    headers: { Authorization: `Bearer ${key}` },
    data: {
      to: 1,
      title: 'Your order shipped',
      message: `Order 48213 left the warehouse (${Date.now()})`,
      link,
      actions: [{ label: 'Track', url: `${baseURL}/api/health?track=48213` }],
    },
  });
  expect(res.status()).toBe(202);

  const item = emma.page.getByTestId('inbox').locator('li.item').first();
  await expect(item.getByTestId('title')).toHaveText('Your order shipped', { timeout: 5_000 });
  await expect(item.locator('.from')).toHaveText(name);
  await expect(item.locator('.avatar.service')).toBeVisible();
  await expect(item.getByTestId('action')).toHaveText('Track');
  expect(await emma.page.evaluate(() => window.__heraldNoReload)).toBe(true);

  // A click on the notification opens its link in a new tab.
  const [popup] = await Promise.all([
    emma.context.waitForEvent('page'),
    item.getByTestId('title').click(),
  ]);
  await popup.waitForLoadState();
  expect(popup.url()).toBe(link);
  await expect(item).toHaveAttribute('data-read', 'true');

  expect(emma.errors).toEqual([]);
  await emma.context.close();
});
