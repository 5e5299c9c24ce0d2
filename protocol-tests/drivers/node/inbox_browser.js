// Drives the Airlock inbox in headless Chromium (Debian's, through
// playwright-core): logs in, waits on the pending list — without reloading —
// for a held statement to appear, opens it and approves it. Saves
// screenshots of the pending list and the request page.
//
//   node inbox_browser.js <inbox-url> <user> <password> <screenshot-dir> [approve|live]
//
// With SSO_PASSWORD set, signs in through the inbox's single sign-on
// instead: <user> and SSO_PASSWORD go into the identity provider's form
// (saved as login-sso.png and provider-login.png).
//
// approve (default, desktop viewport): Enter in the batch reason field must
// not decide anything; then the request is opened and approved.
// live (phone viewport): opens the request, says "opened <id>" on stderr,
// and waits until the page, without reloading, shows it decided elsewhere
// with its buttons disabled.
//
// Prints one JSON line: {"request": "<id>", "statement": "<text shown>"}.
// Exits non-zero with the reason on any failure.
'use strict';

const { chromium } = require('playwright-core');

async function main() {
  const [url, user, password, shots, mode = 'approve'] = process.argv.slice(2);
  const phone = mode === 'live';
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({
      viewport: phone ? { width: 390, height: 844 } : { width: 1200, height: 800 },
      isMobile: phone,
      hasTouch: phone,
    });
    await page.goto(`${url}/login`);
    if (process.env.SSO_PASSWORD) {
      // Single sign-on: the inbox sends the browser to the identity
      // provider's own login form and takes it back signed in.
      await page.screenshot({ path: `${shots}/login-sso.png`, fullPage: true });
      await Promise.all([page.waitForSelector('#idp-login'), page.click('#sso')]);
      await page.screenshot({ path: `${shots}/provider-login.png`, fullPage: true });
      await page.fill('#idp-login input[name=login]', user);
      await page.fill('#idp-login input[name=password]', process.env.SSO_PASSWORD);
      await Promise.all([page.waitForURL(`${url}/`), page.click('#idp-login button[type=submit]')]);
      const who = await page.locator('nav').innerText();
      console.error(`signed in: ${who.replace(/\s+/g, ' ')}`);
    } else {
      await page.fill('input[name=username]', user);
      await page.fill('input[name=password]', password);
      await Promise.all([page.waitForURL(`${url}/`), page.click('#login button[type=submit]')]);
    }
    // Tell the test the list is open; the held statement is sent after this.
    console.error('ready');
    const row = page.locator('#pending-rows tr.request');
    await row.first().waitFor({ timeout: 30000 });
    // The list was loaded before the request existed: it arrived live.
    await page.screenshot({ path: `${shots}/pending-list.png`, fullPage: true });
    const id = await row.first().getAttribute('data-id');
    if (!phone) {
      // Enter in the batch reason field decides nothing.
      await row.first().locator('input[type=checkbox]').check();
      await page.fill('#batch input[name=reason]', 'pressing enter');
      await page.press('#batch input[name=reason]', 'Enter');
      await page.waitForTimeout(700);
      if (page.url() !== `${url}/`) throw new Error(`Enter submitted the batch form: ${page.url()}`);
    }
    await Promise.all([page.waitForURL(`${url}/requests/${id}`), row.first().locator('a.open').click()]);
    const statement = await page.locator('#statement').innerText();
    if (phone) {
      await page.screenshot({ path: `${shots}/request-page-phone.png`, fullPage: true });
      const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
      if (wide) throw new Error('the request page scrolls sideways on a phone');
      console.error(`opened ${id}`);
      await page.waitForFunction(
        () => Array.from(document.querySelectorAll('#decide button[name=verdict]')).every((b) => b.disabled)
          && document.getElementById('decided-elsewhere').textContent.includes('approved'),
        null,
        { timeout: 20000 },
      );
      await page.screenshot({ path: `${shots}/request-decided-elsewhere.png`, fullPage: true });
      console.log(JSON.stringify({ request: id, statement }));
      return;
    }
    await page.screenshot({ path: `${shots}/request-page.png`, fullPage: true });
    await page.fill('textarea[name=reason]', 'approved in the browser test');
    // Enter in the reason box writes a new line; it decides nothing.
    await page.press('textarea[name=reason]', 'Enter');
    await page.waitForTimeout(300);
    if (page.url() !== `${url}/requests/${id}`) throw new Error(`Enter submitted the decision: ${page.url()}`);
    await Promise.all([page.waitForURL(`${url}/requests/${id}?decided=1`), page.click('#approve')]);
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
