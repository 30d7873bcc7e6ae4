// The inbox people expect: a live unread badge shared by every tab, click to
// read, mark all read, archive, filters, load more, desktop alerts, and both
// themes. Real server, real broker, real Chromium.
const { test, expect } = require('@playwright/test');
const { signedInContext, openTab } = require('./helpers');
const fs = require('fs');
const path = require('path');

async function tokenOf(request, user) {
  const res = await request.post('/api/session', { data: { user } });
  expect(res.status()).toBe(200);
  return (await res.json()).token;
}

async function api(request, method, url, token, data) {
  const res = await request.fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}` },
    data,
  });
  return res;
}

async function send(request, token, to, message, extra = {}) {
  const res = await api(request, 'POST', '/api/notifications', token, { to, message, ...extra });
  expect(res.status()).toBe(202);
  return res.json();
}

// Where screenshots go: docs/screenshots when scripts/test asks for them.
function shotPath(testInfo, name) {
  const dir = process.env.HERALD_SCREENSHOTS_DIR;
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, name);
  }
  return testInfo.outputPath(name);
}

test('two tabs of Emma: the badge rises with Bruno\'s sends and drops to 0 in both when one marks all read', async ({ browser, request }, testInfo) => {
  const emmaToken = await tokenOf(request, 1);
  const brunoToken = await tokenOf(request, 2);
  // Start from a known badge: earlier tests may have left Emma unread ones.
  expect((await api(request, 'POST', '/api/users/1/notifications/read-all', emmaToken)).status()).toBe(200);

  const emma = await signedInContext(browser, 1);
  const tab1 = await openTab(emma);
  const tab2 = await openTab(emma);
  for (const tab of [tab1, tab2]) {
    await expect(tab.page.getByTestId('badge')).toHaveAttribute('data-unread', '0');
  }

  const stamp = Date.now();
  await send(request, brunoToken, 1, `Server down (${stamp})`, { category: 'alert', priority: 5 });
  await send(request, brunoToken, 1, `@emma can you look? (${stamp})`, { category: 'mention' });
  await send(request, brunoToken, 1, `FYI: deploy at 5 (${stamp})`);
  for (const tab of [tab1, tab2]) {
    await expect(tab.page.getByTestId('badge')).toHaveAttribute('data-unread', '3');
    await expect(tab.page.locator('li.item.unread')).toHaveCount(3);
  }
  const first = (page) => page.getByTestId('inbox').locator('li.item').first();
  await expect(first(tab1.page)).toContainText('FYI: deploy at 5');
  await expect(tab1.page.getByTestId('inbox')).toContainText('alert');
  await expect(tab1.page.getByTestId('inbox')).toContainText('P5');

  // Clicking an item reads it; the other tab follows.
  await first(tab1.page).locator('.text').click();
  await expect(first(tab1.page)).not.toHaveClass(/unread/);
  await expect(tab2.page.getByTestId('badge')).toHaveAttribute('data-unread', '2');
  await expect(first(tab2.page)).toHaveAttribute('data-read', 'true');

  // Light and dark, following the system.
  for (const scheme of ['light', 'dark']) {
    await tab1.page.emulateMedia({ colorScheme: scheme });
    const shot = shotPath(testInfo, `inbox-${scheme}.png`);
    await tab1.page.screenshot({ path: shot, fullPage: true });
    await testInfo.attach(`inbox-${scheme}`, { path: shot, contentType: 'image/png' });
  }
  const bg = async (scheme) => {
    await tab1.page.emulateMedia({ colorScheme: scheme });
    return tab1.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  };
  expect(await bg('light')).not.toEqual(await bg('dark'));

  // "Mark all read" in one tab; the other drops to 0 without reloading.
  await tab1.page.getByTestId('mark-all-read').click();
  for (const tab of [tab1, tab2]) {
    await expect(tab.page.getByTestId('badge')).toHaveAttribute('data-unread', '0');
    await expect(tab.page.locator('li.item.unread')).toHaveCount(0);
    expect(await tab.page.evaluate(() => window.__heraldNoReload)).toBe(true);
  }

  // Archive from tab 2: it leaves both inboxes and shows under "archived".
  const archivedText = `@emma can you look? (${stamp})`;
  const item = tab2.page.getByTestId('inbox').locator('li.item', { hasText: archivedText });
  await item.getByTestId('toggle-archive').click();
  for (const tab of [tab1, tab2]) {
    await expect(tab.page.getByTestId('inbox')).not.toContainText(archivedText);
  }
  await tab1.page.getByTestId('view-archived').click();
  await expect(tab1.page.getByTestId('inbox')).toContainText(archivedText);

  // Category filter.
  await tab2.page.getByTestId('view-inbox').click();
  await tab2.page.getByTestId('category-alert').click();
  await expect(tab2.page).toHaveURL(/category=alert/);
  const alerts = tab2.page.getByTestId('inbox').locator('li.item');
  await expect(alerts.first()).toContainText(`Server down (${stamp})`);
  for (const text of await alerts.allTextContents()) {
    expect(text).toContain('alert');
  }
  // And by priority: P4 and up only.
  await tab2.page.getByTestId('urgent').click();
  await expect(tab2.page).toHaveURL(/min_priority=4/);
  await expect(alerts.first()).toContainText(`Server down (${stamp})`);
  for (const text of await alerts.allTextContents()) {
    expect(text).toMatch(/P[45]/);
  }

  // Delete from the API: both tabs drop it.
  const list = await (await api(request, 'GET', '/api/users/1/notifications?category=alert', emmaToken)).json();
  const down = list.notifications.find((n) => n.message === `Server down (${stamp})`);
  expect((await api(request, 'DELETE', `/api/notifications/${down.id}`, emmaToken)).status()).toBe(204);
  await expect(tab2.page.getByTestId('inbox').or(tab2.page.getByTestId('empty'))).not.toContainText(`Server down (${stamp})`);

  expect(tab1.errors).toEqual([]);
  expect(tab2.errors).toEqual([]);
  await emma.close();
});

test('a long inbox loads more on request', async ({ browser, request }) => {
  const rick = await tokenOf(request, 3);
  const lena = await tokenOf(request, 4);
  const before = (await (await api(request, 'GET', '/api/users/3/notifications/count', rick)).json()).total;
  const stamp = Date.now();
  for (let i = 0; i < 55; i++) {
    await send(request, lena, 3, `page test ${stamp} #${i}`);
  }
  const context = await signedInContext(browser, 3);
  for (let tries = 0; ; tries++) {
    const c = await (await api(request, 'GET', '/api/users/3/notifications/count', rick)).json();
    if (c.total >= before + 55) break;
    expect(tries).toBeLessThan(100);
    await new Promise((r) => setTimeout(r, 100));
  }
  const { page } = await openTab(context);
  const items = page.getByTestId('inbox').locator('li.item');
  await expect(items).toHaveCount(50);
  await expect(items.first()).toContainText(`page test ${stamp} #54`);
  await page.getByTestId('load-more').click();
  await expect(items).toHaveCount(Math.min(before + 55, 100));
  await expect(page.getByTestId('inbox')).toContainText(`page test ${stamp} #0`);
  await context.close();
});

test('desktop alerts are opt-in and fire only while the tab is hidden', async ({ browser, request }) => {
  const bruno = await tokenOf(request, 2);
  const context = await signedInContext(browser, 3);
  // Record what the page asks the Notification API for, and let the test
  // say whether the tab is hidden.
  await context.addInitScript(() => {
    window.__alerts = [];
    window.__hidden = false;
    class RecordingNotification {
      constructor(title, options) { window.__alerts.push({ title, body: options && options.body }); }
      static get permission() { return 'granted'; }
      static requestPermission() { return Promise.resolve('granted'); }
    }
    window.Notification = RecordingNotification;
    Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });
  });
  const { page } = await openTab(context);
  const stamp = Date.now();

  await send(request, bruno, 3, `not opted in (${stamp})`);
  await expect(page.getByTestId('inbox')).toContainText(`not opted in (${stamp})`);
  await page.getByTestId('alerts').check();
  await expect(page.getByTestId('alerts')).toBeChecked();
  await send(request, bruno, 3, `visible tab (${stamp})`);
  await expect(page.getByTestId('inbox')).toContainText(`visible tab (${stamp})`);
  await page.evaluate(() => { window.__hidden = true; });
  await send(request, bruno, 3, `hidden tab (${stamp})`);
  await expect(page.getByTestId('inbox')).toContainText(`hidden tab (${stamp})`);
  const alerts = await page.evaluate(() => window.__alerts);
  expect(alerts).toEqual([{ title: 'Bruno · Herald', body: `hidden tab (${stamp})` }]);
  await context.close();
});
