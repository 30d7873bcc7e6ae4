// Shared steps of the browser tests.
const { expect } = require('@playwright/test');

// A browser context signed in as `user` through the demo sign-in (the
// answer's HttpOnly cookie lands in the context).
async function signedInContext(browser, user, options = {}) {
  const context = await browser.newContext(options);
  const res = await context.request.post('/api/session', { data: { user } });
  expect(res.status()).toBe(200);
  return context;
}

// A new tab of `context` on the inbox, hydrated and with its stream live.
// Collects page errors and anything the page's Content Security Policy
// blocked, and marks the window so a test can prove no reload.
async function openTab(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) errors.push(m.text());
  });
  await page.goto('/');
  await expect(page.locator('.page[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByTestId('live')).toHaveAttribute('data-state', 'live');
  await page.evaluate(() => { window.__heraldNoReload = true; });
  return { page, errors, context };
}

// Pick the composer's recipient the way a person does: type the start of
// the name, click the suggestion.
async function pickRecipient(page, typed, name) {
  await page.getByTestId('recipient').fill(typed);
  await page.getByTestId('suggestions').getByRole('option', { name: new RegExp(`^${name} #\\d+$`) }).click();
  await expect(page.getByTestId('recipient')).toHaveValue(name);
}

module.exports = { signedInContext, openTab, pickRecipient };
