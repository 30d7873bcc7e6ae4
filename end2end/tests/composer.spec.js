// The composer finds recipients by typing, as it must with a directory of
// millions: Bruno types "ri", picks Rick, and Rick's page gets the message.
const { test, expect } = require('@playwright/test');
const { signedInContext, openTab, pickRecipient } = require('./helpers');

test('Bruno finds Rick by typing "ri" and sends to him', async ({ browser }) => {
  const rick = await openTab(await signedInContext(browser, 3));
  const bruno = await openTab(await signedInContext(browser, 2));
  const page = bruno.page;
  const suggestions = page.getByTestId('suggestions').getByRole('option');

  // Nobody picked yet: nothing to send to.
  await expect(page.getByTestId('send')).toBeDisabled();

  await page.getByTestId('recipient').fill('ri');
  await expect(suggestions).toHaveText(['Rick #3']);
  // Case does not matter; the sender is never suggested to himself.
  await page.getByTestId('recipient').fill('BR');
  await expect(page.getByTestId('suggestions')).toBeEmpty();
  await page.getByTestId('recipient').fill('zz-nobody');
  await expect(page.getByTestId('suggestions')).toBeEmpty();
  await expect(page.getByTestId('send')).toBeDisabled();

  await pickRecipient(page, 'ri', 'Rick');
  await expect(page.getByTestId('suggestions')).toBeEmpty();
  const text = `Found you by typing, Rick (${Date.now()})`;
  await page.getByTestId('message').fill(text);
  await page.getByTestId('send').click();
  await expect(page.getByTestId('send-status')).toHaveText('Sent to Rick.');

  const item = rick.page.getByTestId('inbox').locator('li.item').first();
  await expect(item).toContainText(text);
  await expect(item.locator('.from')).toHaveText('Bruno');

  // Changing the text drops the pick: no send to a half-typed name.
  await page.getByTestId('recipient').fill('Ric');
  await expect(page.getByTestId('send')).toBeDisabled();

  expect(rick.errors).toEqual([]);
  expect(bruno.errors).toEqual([]);
  await rick.context.close();
  await bruno.context.close();
});
