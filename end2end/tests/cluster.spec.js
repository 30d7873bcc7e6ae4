// Two instances of Herald on one PostgreSQL store: a page on either one is
// the same inbox, live. scripts/test starts both (CLUSTER_A_URL,
// CLUSTER_B_URL) with the same broker, group, database and token secret.
const { test, expect } = require('@playwright/test');
const { signedInContext, pickRecipient } = require('./helpers');

const A = process.env.CLUSTER_A_URL;
const B = process.env.CLUSTER_B_URL;

// A tab of `context` on `base`'s inbox, hydrated and live.
async function tabOn(context, base) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/`);
  await expect(page.locator('.page[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'live');
  await page.evaluate(() => { window.__heraldNoReload = true; });
  return { page, errors };
}

test('Emma on instance A, Bruno on B: Bruno\'s send and Emma\'s read reach every tab on either instance', async ({ browser }) => {
  expect(A && B, 'scripts/test passes CLUSTER_A_URL and CLUSTER_B_URL').toBeTruthy();
  // Cookies do not depend on the port: Emma's session from A is valid on B
  // too (one token secret), as it would be behind one load balancer.
  const emma = await signedInContext(browser, 1, { baseURL: A });
  const bruno = await signedInContext(browser, 2, { baseURL: B });
  const emmaA = await tabOn(emma, A);
  const emmaB = await tabOn(emma, B);
  const brunoB = await tabOn(bruno, B);

  // A known badge to start from (other tests may have left unread ones).
  await emmaA.page.getByTestId('mark-all-read').click();
  for (const tab of [emmaA, emmaB]) {
    await expect(tab.page.getByTestId('badge')).toHaveAttribute('data-unread', '0');
  }

  const text = `Across instances, from Bruno on B (${Date.now()})`;
  await pickRecipient(brunoB.page, 'Em', 'Emma');
  await brunoB.page.getByTestId('message').fill(text);
  await brunoB.page.getByTestId('send').click();
  await expect(brunoB.page.getByTestId('send-status')).toHaveText('Sent to Emma.');

  for (const tab of [emmaA, emmaB]) {
    const item = tab.page.getByTestId('inbox').locator('li.item').first();
    await expect(item).toContainText(text);
    await expect(item).toHaveClass(/unread/);
    await expect(tab.page.getByTestId('badge')).toHaveAttribute('data-unread', '1');
  }

  // Reading it on A updates Emma's tab on B.
  await emmaA.page.getByTestId('inbox').locator('li.item').first().locator('.text').click();
  await expect(emmaB.page.getByTestId('badge')).toHaveAttribute('data-unread', '0');
  await expect(emmaB.page.getByTestId('inbox').locator('li.item').first()).toHaveAttribute('data-read', 'true');

  for (const tab of [emmaA, emmaB, brunoB]) {
    expect(await tab.page.evaluate(() => window.__heraldNoReload)).toBe(true);
    expect(tab.errors).toEqual([]);
  }
  await emma.close();
  await bruno.close();
});
