// Drives the Airlock inbox's session browser in headless Chromium (Debian's,
// through playwright-core) as an auditor: filters the session list by
// application with the form, opens the one session listed, follows the
// hold record's link to the request page, follows the request page's
// replay link back to the hold, and downloads the filtered list as CSV.
//
//   node audit_browser.js <inbox-url> <user> <password> <application> <screenshot-dir>
//
// Prints one JSON line: {"rows": N, "list_url": "...", "request": "<id>",
// "replay_url": "...", "target_visible": bool, "csv": "<downloaded text>"}.
// Exits non-zero with the reason on any failure.
'use strict';

const fs = require('fs');
const { chromium } = require('playwright-core');

async function main() {
  const [url, user, password, application, shots] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 700 } });
    const page = await context.newPage();
    await page.goto(`${url}/login`);
    await page.fill('input[name=username]', user);
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL(`${url}/`), page.click('#login button[type=submit]')]);

    await page.goto(`${url}/sessions`);
    await page.fill('#filter-application', application);
    await Promise.all([page.waitForURL(/application=/), page.click('#filter-apply')]);
    const listUrl = page.url();
    const rows = await page.locator('#sessions tr.session').count();
    await page.screenshot({ path: `${shots}/sessions-filtered.png`, fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
    const csv = fs.readFileSync(await download.path(), 'utf8');

    await Promise.all([page.waitForURL(/\/sessions\/[^/?]+$/), page.locator('#sessions a.replay').first().click()]);
    const hold = page.locator('#transcript a.request').first();
    const request = (await hold.getAttribute('href')).replace('/requests/', '');
    await Promise.all([page.waitForURL(`${url}/requests/${request}`), hold.click()]);
    await Promise.all([page.waitForURL(/#request-/), page.click('#replay-link')]);
    const replayUrl = page.url();
    // The hold record the link names is on screen.
    const target = page.locator(`[id="request-${decodeURIComponent(request)}"]`);
    await target.waitFor({ timeout: 10000 });
    const targetVisible = await target.evaluate((el) => {
      const r = el.getBoundingClientRect();
      return r.top >= 0 && r.top < window.innerHeight;
    });
    await page.screenshot({ path: `${shots}/replay-at-request.png` });
    console.log(JSON.stringify({
      rows, list_url: listUrl, request: decodeURIComponent(request), replay_url: replayUrl,
      target_visible: targetVisible, csv,
    }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
