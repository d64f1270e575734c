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
await browser.close();

const dist = new URL('../../admin-ui/dist/assets/', import.meta.url);
for (const file of (await readdir(dist)).sort()) {
  const bytes = await readFile(new URL(file, dist));
  console.log(`bundle ${file}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
