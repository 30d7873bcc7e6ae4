// Two people in two browsers: Bruno sends, Emma sees it arrive live.
const { test, expect } = require('@playwright/test');
const { signedInContext, openTab, pickRecipient } = require('./helpers');

async function openAs(browser, userId, viewport) {
  return openTab(await signedInContext(browser, userId, viewport ? { viewport } : {}));
}

test('Bruno sends to Emma; Emma sees it without reloading', async ({ browser }, testInfo) => {
  const emma = await openAs(browser, 1);
  const bruno = await openAs(browser, 2);

  // A marker that a reload would wipe out.
  await emma.page.evaluate(() => { window.__heraldNoReload = true; });

  // A refused send says why (the server function answers 400).
  await pickRecipient(bruno.page, 'em', 'Emma');
  await bruno.page.getByTestId('message').fill('   ');
  await bruno.page.getByTestId('send').click();
  await expect(bruno.page.getByTestId('send-status')).toHaveText('Not sent: message must not be empty');

  const text = `Hello Emma, it is Bruno (${Date.now()})`;
  await bruno.page.getByTestId('message').fill(text);
  await bruno.page.getByTestId('send').click();
  await expect(bruno.page.getByTestId('send-status')).toHaveText('Sent to Emma.');
  await expect(bruno.page.getByTestId('message')).toHaveValue('');

  const item = emma.page.getByTestId('inbox').locator('li.item').first();
  await expect(item).toContainText(text, { timeout: 5_000 });
  await expect(item.locator('.from')).toHaveText('Bruno');
  await expect(item.locator('time')).toHaveText(/just now|s ago/);
  expect(await emma.page.evaluate(() => window.__heraldNoReload)).toBe(true);

  // Bruno's own inbox did not get it.
  await expect(bruno.page.getByTestId('inbox').or(bruno.page.getByTestId('empty'))).not.toContainText(text);

  const shot = testInfo.outputPath('emma-inbox.png');
  await emma.page.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('emma-inbox', { path: shot, contentType: 'image/png' });

  // The stored inbox survives a reload.
  await emma.page.reload();
  await expect(emma.page.getByTestId('inbox')).toContainText(text);

  expect(emma.errors).toEqual([]);
  expect(bruno.errors).toEqual([]);
  await emma.context.close();
  await bruno.context.close();
});

test('signing in and the empty inbox work on a phone-sized screen', async ({ browser }, testInfo) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await page.goto('/');
  await expect(page.getByTestId('sign-in')).toBeVisible();
  await expect(page.locator('.page[data-hydrated="true"]')).toBeVisible();
  await page.getByRole('button', { name: 'Lena' }).click();
  await expect(page.getByTestId('me')).toHaveText('Lena');
  await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'live');
  await expect(page.getByTestId('empty')).toHaveText('No notifications yet.');
  // Nothing overflows horizontally on a phone.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  const shot = testInfo.outputPath('lena-phone.png');
  await page.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('lena-phone', { path: shot, contentType: 'image/png' });

  // Signing out brings the sign-in screen back.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByTestId('sign-in')).toBeVisible();
  await context.close();
});
