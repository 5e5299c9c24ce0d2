// Drives the Airlock inbox in headless Chromium (Debian's, through
// playwright-core): logs in, waits on the pending list — without reloading —
// for a held statement to appear, opens it and approves it. Saves
// screenshots of the pending list and the request page.
//
//   node inbox_browser.js <inbox-url> <user> <password> <screenshot-dir>
//
// Prints one JSON line: {"request": "<id>", "statement": "<text shown>"}.
// Exits non-zero with the reason on any failure.
'use strict';

const { chromium } = require('playwright-core');

async function main() {
  const [url, user, password, shots] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${url}/login`);
    await page.fill('input[name=username]', user);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL(`${url}/`), page.click('#login button[type=submit]')]);
    // Tell the test the list is open; the held statement is sent after this.
    console.error('ready');
    const row = page.locator('#pending-rows tr.request');
    await row.first().waitFor({ timeout: 30000 });
    // The list was loaded before the request existed: it arrived live.
    await page.screenshot({ path: `${shots}/pending-list.png`, fullPage: true });
    const id = await row.first().getAttribute('data-id');
    await Promise.all([page.waitForURL(`${url}/requests/${id}`), row.first().locator('a.open').click()]);
    const statement = await page.locator('#statement').innerText();
    await page.screenshot({ path: `${shots}/request-page.png`, fullPage: true });
    await page.fill('textarea[name=reason]', 'approved in the browser test');
    await page.click('#approve');
    await page.locator('#flash').waitFor({ timeout: 10000 });
    const flash = await page.locator('#flash').innerText();
    if (!flash.includes('recorded')) throw new Error(`not recorded: ${flash}`);
    console.log(JSON.stringify({ request: id, statement }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
