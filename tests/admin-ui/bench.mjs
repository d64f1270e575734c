// Measures the admin UI in Chromium against a running Galley (scripts/bench-admin-ui
// starts it): time to interactive of the tables page and of a 1,000,000-row table's
// grid, frames over 50 ms during a scripted scroll of that grid, and the compressed
// size of each bundle. Prints one line per figure.
import { readdir, readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const base = process.env.BENCH_URL;
const email = process.env.BENCH_EMAIL;
const password = process.env.BENCH_PASSWORD;
const table = process.env.BENCH_TABLE ?? 'big';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
await page.goto(`${base}/admin/`);
await page.getByLabel('Email').fill(email);
await page.getByLabel('Password').fill(password);
await page.getByRole('button', { name: 'Sign in' }).click();
await page.getByRole('heading', { name: 'Tables' }).waitFor();

/** Milliseconds from a fresh load of `hash` until `ready` is visible and the page answers
 *  an input (a click on the theme button handled within the same measurement). */
async function timeToInteractive(hash, ready) {
  const runs = [];
  for (let i = 0; i < 5; i++) {
    await page.goto('about:blank');
    const started = Date.now();
    await page.goto(`${base}/admin/${hash}`);
    await ready().waitFor();
    await page.getByRole('button', { name: /^Theme:/ }).click();
    await page.getByRole('button', { name: /^Theme:/ }).click();
    await page.getByRole('button', { name: /^Theme:/ }).click();
    runs.push(Date.now() - started);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)];
}

const tables = await timeToInteractive('#/tables', () => page.getByRole('link', { name: table, exact: true }));
console.log(`tables page, time to interactive (median of 5): ${tables} ms`);
const grid = await timeToInteractive(`#/data/${table}`, () =>
  page.getByRole('grid', { name: `Rows of ${table}` }).locator('.grid-body .grid-row').first(),
);
console.log(`grid of ${table}, time to interactive (median of 5): ${grid} ms`);
console.log(`grid of ${table}: ${await page.getByText(/^~\d+ rows$/).innerText()} (estimated count)`);

// A scripted scroll: 10 s of steady scrolling through the grid, frames timed by rAF.
const frames = await page.evaluate(async () => {
  const grid = document.querySelector('.grid');
  const deltas = [];
  let last = performance.now();
  const end = last + 10_000;
  await new Promise((resolve) => {
    function step(now) {
      deltas.push(now - last);
      last = now;
      grid.scrollTop += 600;
      if (now < end) requestAnimationFrame(step);
      else resolve();
    }
    requestAnimationFrame(step);
  });
  return { count: deltas.length, slow: deltas.filter((d) => d > 50).length, worst: Math.max(...deltas), top: grid.scrollTop };
});
console.log(
  `scripted scroll, 10 s at 600 px per frame: ${frames.count} frames, ${frames.slow} over 50 ms, worst ${frames.worst.toFixed(0)} ms, reached row ${Math.round(frames.top / 34)}`,
);
// The far end of a table beyond what a browser can scroll in pixels: jump there (sorted by
// id), and the last row shows.
await page.getByRole('button', { name: 'id', exact: true }).click();
await page.waitForFunction(() => {
  const row = document.querySelector('.grid-body .grid-row[aria-rowindex="2"]');
  return row?.querySelectorAll('.cell')[1]?.textContent?.trim() === '1' && document.querySelector('.grid').scrollHeight > 1_000_000;
});
const started = Date.now();
await page.evaluate(() => {
  const grid = document.querySelector('.grid');
  grid.scrollTop = grid.scrollHeight;
});
// Shown when the row whose index is the grid's row count carries its data.
const lastId = await page.waitForFunction(
  () => {
    const grid = document.querySelector('.grid');
    const count = Number(grid.getAttribute('aria-rowcount'));
    const row = document.querySelector(`.grid-body .grid-row[aria-rowindex="${count}"]`);
    const id = row?.querySelectorAll('.cell')[1]?.textContent?.trim();
    return id && id !== '…' ? id : null;
  },
  null,
  { timeout: 30_000 },
).catch(async (error) => {
  console.log(await page.evaluate(() => {
    const grid = document.querySelector('.grid');
    const rows = [...document.querySelectorAll('.grid-body .grid-row')].map((r) => `${r.getAttribute('aria-rowindex')}:${r.querySelectorAll('.cell')[1]?.textContent?.trim()}@${r.style.top}`);
    return JSON.stringify({ count: grid.getAttribute('aria-rowcount'), top: grid.scrollTop, height: grid.scrollHeight, client: grid.clientHeight, rows: rows.slice(0, 3).concat(rows.slice(-3)), errors: document.querySelector('.error')?.textContent });
  }));
  throw error;
});
console.log(`jump to the last row of ${table}: shown after ${Date.now() - started} ms (id ${await lastId.jsonValue()})`);
await browser.close();

const dist = new URL('../../admin-ui/dist/assets/', import.meta.url);
for (const file of (await readdir(dist)).sort()) {
  const bytes = await readFile(new URL(file, dist));
  console.log(`bundle ${file}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
