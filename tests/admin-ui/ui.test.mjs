// The admin UI in Chromium against a real `galley serve` (tests/admin-ui/run starts it
// and passes the setup link it printed). The tests run in order: the first creates the
// admin the others sign in as.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const setupLink = process.env.ADMIN_SETUP_LINK;
const shots = process.env.ADMIN_SCREENSHOTS;
assert.ok(setupLink, 'ADMIN_SETUP_LINK (tests/admin-ui/run sets it)');
const base = new URL(setupLink).origin;
const email = 'first-admin@example.com';
const password = 'correct horse battery admin';

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
});
after(async () => {
  await browser?.close();
});

/** A fresh context (no cookies) and page; script errors and CSP violations are collected. */
async function open({ width = 1280, height = 800, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    // Chromium logs every 4xx answer as a failed load; those the UI expects (the session
    // check's 401, a refused sign-in) are asserted where they happen. Script errors and
    // Content-Security-Policy violations ("Refused to ...") are not.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(message.text());
    }
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  return { context, page, problems };
}

async function screenshot(page, name) {
  if (!shots) return;
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: `${shots}/${name}-${scheme}.png`, fullPage: true });
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

async function signIn(page, who = email, secret = password) {
  await page.goto(`${base}/admin/`);
  await page.getByLabel('Email').fill(who);
  await page.getByLabel('Password').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('the first admin is created through the link galley serve printed', async () => {
  const { context, page, problems } = await open();
  await page.goto(setupLink);
  await page.getByRole('heading', { name: 'Create the first admin' }).waitFor();
  await screenshot(page, 'setup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Confirm password').fill('something else entirely');
  await page.getByText('The passwords differ.').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Create admin' }).isDisabled(), true);
  await page.getByLabel('Confirm password').fill(password);
  await page.getByRole('button', { name: 'Create admin' }).click();
  await page.getByRole('heading', { name: 'Tables' }).waitFor();
  await page.getByText(email).waitFor();
  // The session is an HttpOnly cookie: the page's script cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'galley_admin');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(session.path, '/admin');
  await screenshot(page, 'tables-empty');
  assert.deepEqual(problems, []);
  await context.close();

  // The link is one-time.
  const again = await open();
  await again.page.goto(setupLink);
  await again.page.getByLabel('Email').fill('second@example.com');
  await again.page.getByLabel('Password', { exact: true }).fill(password);
  await again.page.getByLabel('Confirm password').fill(password);
  await again.page.getByRole('button', { name: 'Create admin' }).click();
  const alert = again.page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /invalid, used or expired/);
  assert.match(await alert.innerText(), /Request id: [0-9a-f-]{36}/);
  await again.context.close();
});

test('an admin signs in and out; a wrong password is answered in words with the request id', async () => {
  const { context, page, problems } = await open();
  await signIn(page, email, 'not the password at all');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /invalid email or password/);
  assert.match(await alert.innerText(), /Request id: [0-9a-f-]{36}/);
  await screenshot(page, 'sign-in-refused');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Tables' }).waitFor();
  // Reloading keeps the session (server-side, in the cookie).
  await page.reload();
  await page.getByRole('heading', { name: 'Tables' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  await screenshot(page, 'sign-in');
  // Signed out on the server too: the old cookie opens nothing.
  const status = await page.evaluate(async () => (await fetch('/admin/v1/tables')).status);
  assert.equal(status, 401);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a browser without a session sees only the sign-in page and gets 401 from /admin/v1', async () => {
  const signedIn = await open();
  await signIn(signedIn.page);
  await signedIn.page.getByRole('heading', { name: 'Tables' }).waitFor();

  const stranger = await open();
  await stranger.page.goto(`${base}/admin/#/tables`);
  await stranger.page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal(await stranger.page.getByRole('heading', { name: 'Tables' }).count(), 0);
  const answer = await stranger.page.evaluate(async () => {
    const response = await fetch('/admin/v1/tables');
    return { status: response.status, body: await response.json() };
  });
  assert.equal(answer.status, 401);
  assert.equal(answer.body.code, 'unauthorized');
  await stranger.context.close();
  await signedIn.context.close();
});

test('on a phone-sized screen the sections sit behind a menu button', async () => {
  const { context, page, problems } = await open({ width: 390, height: 844 });
  await signIn(page);
  await page.getByRole('heading', { name: 'Tables' }).waitFor();
  const menu = page.getByRole('button', { name: 'Menu' });
  assert.equal(await menu.isVisible(), true);
  assert.equal(await page.getByRole('link', { name: 'Tables', exact: true }).isVisible(), false);
  await menu.click();
  assert.equal(await page.getByRole('link', { name: 'Tables', exact: true }).isVisible(), true);
  assert.equal(await menu.getAttribute('aria-expanded'), 'true');
  await screenshot(page, 'tables-phone');
  // Nothing wider than the screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  assert.deepEqual(problems, []);
  await context.close();
});

/** Rows put in a table behind the UI's back, through the REST API. */
async function insertRows(table, rows) {
  const key = process.env.ADMIN_SERVICE_KEY;
  assert.ok(key, 'ADMIN_SERVICE_KEY (tests/admin-ui/run sets it)');
  const response = await fetch(`${base}/rest/v1/${table}`, {
    method: 'POST',
    headers: { apikey: key, authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'return=representation' },
    body: JSON.stringify(rows),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return response.json();
}

/** Fills the first column row of the New table form and any more given. */
async function newTable(page, name, columns) {
  await page.goto(`${base}/admin/#/tables`);
  await page.getByRole('link', { name: 'New table' }).click();
  await page.getByLabel('Table name').fill(name);
  for (const [index, column] of columns.entries()) {
    if (index > 0) await page.getByRole('button', { name: 'Add column' }).click();
    const n = index + 1;
    await page.getByLabel(`Column ${n} name`).fill(column.name);
    await page.getByLabel(`Column ${n} type`).selectOption(column.type);
    if (column.nullable === false) await page.getByLabel('nullable').nth(index).uncheck();
    if (column.references) {
      await page.getByLabel(`Column ${n} references`).selectOption(column.references);
      await page.getByLabel(`Column ${n} on delete`).selectOption('on delete cascade'.replace('on delete ', ''));
    }
  }
}

test('tables are created with a foreign key, previewed as SQL first', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('heading', { name: 'Tables' }).waitFor();

  await newTable(page, 'authors', [{ name: 'name', type: 'text', nullable: false }]);
  await page.getByRole('button', { name: 'Preview SQL' }).click();
  const plan = page.locator('figure.plan');
  await plan.waitFor();
  assert.match(await plan.innerText(), /CREATE TABLE public\."authors"/);
  assert.match(await plan.innerText(), /"name" text NOT NULL/);
  await screenshot(page, 'new-table-preview');
  // A preview changes nothing.
  const before = await page.evaluate(async () => (await (await fetch('/admin/v1/tables')).json()).length);
  assert.equal(before, 0);
  await page.getByRole('button', { name: 'Create table' }).click();
  await page.getByRole('heading', { name: 'authors' }).waitFor();

  await newTable(page, 'books', [
    { name: 'title', type: 'text', nullable: false },
    { name: 'author_id', type: 'uuid', references: 'authors' },
  ]);
  await page.getByRole('button', { name: 'Create table' }).click();
  await page.getByRole('heading', { name: 'books' }).waitFor();
  const constraints = await page.getByRole('list', { name: 'Constraints' }).innerText();
  assert.match(constraints, /FOREIGN KEY \(author_id\) REFERENCES authors\(id\) ON DELETE CASCADE/);
  await screenshot(page, 'table');

  // The list shows both, with their row-level security state.
  await page.getByRole('link', { name: 'Back to tables' }).click();
  await page.getByRole('link', { name: 'books', exact: true }).waitFor();
  assert.equal(await page.getByText('on, forced').count(), 2);
  await screenshot(page, 'tables');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a definition the server refuses is explained next to the field at fault', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await newTable(page, 'notes', [
    { name: 'body', type: 'text' },
    { name: 'body', type: 'integer' },
  ]);
  await page.getByRole('button', { name: 'Preview SQL' }).click();
  const inline = page.locator('.column-row.invalid .field-error');
  await inline.waitFor();
  assert.match(await inline.innerText(), /body/);
  assert.equal(await page.getByLabel('Column 2 name').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('.error').innerText(), /Request id: [0-9a-f-]{36}/);
  await screenshot(page, 'new-table-refused');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a constraint the rows would break is refused with the offending rows', async () => {
  await insertRows('authors', [{ name: 'Ann' }, { name: 'B' }, { name: 'Cy' }]);
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/tables/authors`);
  await page.getByRole('heading', { name: 'authors' }).waitFor();
  await page.getByLabel('Constraint kind').selectOption('check');
  await page.getByLabel('Constraint column').selectOption('name');
  await page.getByLabel('Check', { exact: true }).selectOption('min_length');
  await page.getByLabel('Check value').fill('2');
  await page.getByRole('button', { name: 'Add constraint' }).click();
  const violation = page.locator('.violation');
  await violation.waitFor();
  assert.match(await violation.innerText(), /1 existing row breaks this change/);
  const offending = page.getByRole('table', { name: 'Rows that break the change' });
  assert.match(await offending.innerText(), /\bB\b/);
  assert.doesNotMatch(await offending.innerText(), /Ann/);
  assert.match(await page.locator('.error').innerText(), /Request id/);
  await screenshot(page, 'constraint-refused');

  // Within what the rows allow, the same check is added.
  await page.getByLabel('Check value').fill('1');
  await page.getByRole('button', { name: 'Add constraint' }).click();
  await page.getByRole('status').waitFor();
  assert.match(await page.getByRole('list', { name: 'Constraints' }).innerText(), /char_length\(name\) >= 1|length/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('dropping a column asks for its name typed back, saying what would be lost', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/tables/books`);
  await page.getByRole('heading', { name: 'books' }).waitFor();
  await page.getByLabel('New column name').fill('pages');
  await page.getByLabel('New column type').selectOption('integer');
  await page.getByRole('button', { name: 'Add column' }).click();
  await page.getByRole('button', { name: 'Drop column pages' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /deletes 0 values/);
  const confirm = dialog.getByRole('button', { name: 'Drop column' });
  assert.equal(await confirm.isDisabled(), true);
  await dialog.getByLabel('Type pages to confirm').fill('pages');
  await confirm.click();
  await page.getByText('Column pages dropped.').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Drop column pages' }).count(), 0);
  assert.deepEqual(problems, []);
  await context.close();
});

/** A call to Galley's APIs with the service_role key, for the tests' own setup. */
async function asService(method, path, body) {
  const key = process.env.ADMIN_SERVICE_KEY;
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { apikey: key, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

test('rows are added, edited with a review step, sorted and exported in the grid', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/data/authors`);
  const grid = page.getByRole('grid', { name: 'Rows of authors' });
  await grid.waitFor();
  await page.getByText('~3 rows').waitFor();

  await page.getByRole('button', { name: 'Add row' }).click();
  await page.getByLabel('name text').fill('Dee');
  await page.getByRole('button', { name: 'Insert row' }).click();
  await page.getByText('Row added.').waitFor();
  await page.getByText('~4 rows').waitFor();

  // Sorted by name: Ann, B, Cy, Dee.
  await page.getByRole('button', { name: 'name', exact: true }).click();
  await grid.getByRole('gridcell', { name: 'Dee', exact: true }).waitFor();
  const names = async () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.grid-body .grid-row')]
        .sort((a, b) => Number(a.getAttribute('aria-rowindex')) - Number(b.getAttribute('aria-rowindex')))
        .map((row) => row.querySelectorAll('.cell')[2]?.textContent?.trim()),
    );
  assert.deepEqual(await names(), ['Ann', 'B', 'Cy', 'Dee']);

  // Edit "B" in place: queued, reviewed, saved.
  await grid.getByRole('gridcell', { name: 'B', exact: true }).dblclick();
  const editor = page.getByLabel('New value of name');
  await editor.fill('Bea');
  await editor.press('Enter');
  assert.equal(await page.locator('.cell.changed').count(), 1);
  await screenshot(page, 'data-edited');
  await page.getByRole('button', { name: 'Review 1 change' }).click();
  const review = page.getByRole('dialog', { name: 'Review changes' });
  assert.match(await review.innerText(), /B\s*→\s*Bea/);
  await review.getByRole('button', { name: 'Save 1 change' }).click();
  await page.getByText('1 row saved.').waitFor();
  await grid.getByRole('gridcell', { name: 'Bea', exact: true }).waitFor();

  // The keyboard: arrows move the active cell, Enter edits, Escape leaves it unchanged.
  await grid.getByRole('gridcell', { name: 'Ann', exact: true }).click();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  assert.equal(await page.getByLabel('New value of name').inputValue(), 'Bea');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('.cell.changed').count(), 0);

  // Export what the grid shows.
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export CSV' }).click();
  const file = await download;
  const csv = await (await import('node:fs/promises')).readFile(await file.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.match(lines[0], /name/);
  assert.equal(lines.length, 5, csv);
  assert.ok(csv.includes('Bea'));
  await screenshot(page, 'data');
  assert.deepEqual(problems, []);
  await context.close();
});

test('view as shows each user exactly the rows their rules let them see', async () => {
  await asService('POST', '/admin/v1/tables', {
    name: 'diary',
    columns: [
      { name: 'entry', type: 'text' },
      { name: 'owner', type: 'uuid', default: { expression: 'auth.uid()' } },
    ],
  });
  await asService('PUT', '/admin/v1/tables/diary/rules', {
    select: { preset: 'owner', column: 'owner' },
    insert: { preset: 'owner', column: 'owner' },
  });
  const ann = await asService('POST', '/auth/v1/admin/users', { email: 'ann@example.com', password: 'ann password 123', email_confirm: true });
  const bob = await asService('POST', '/auth/v1/admin/users', { email: 'bob@example.com', password: 'bob password 123', email_confirm: true });
  await asService('POST', '/rest/v1/diary', [
    { entry: "Ann's first", owner: ann.id },
    { entry: "Ann's second", owner: ann.id },
    { entry: "Bob's only", owner: bob.id },
  ]);

  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/data/diary`);
  const grid = page.getByRole('grid', { name: 'Rows of diary' });
  await grid.getByRole('gridcell', { name: "Bob's only" }).waitFor();
  assert.equal(await grid.locator('.grid-body .grid-row').count(), 3, 'service_role sees every row');

  const viewAs = async (email) => {
    await page.getByLabel('Find a user to view as').fill(email);
    await page.getByRole('button', { name: 'Find user' }).click();
    await page.getByRole('button', { name: `View as ${email}` }).click();
  };
  await viewAs('ann@example.com');
  await grid.getByRole('gridcell', { name: "Ann's second" }).waitFor();
  assert.equal(await grid.locator('.grid-body .grid-row').count(), 2);
  assert.equal(await grid.getByRole('gridcell', { name: "Bob's only" }).count(), 0);
  await screenshot(page, 'data-view-as');

  await viewAs('bob@example.com');
  await grid.getByRole('gridcell', { name: "Bob's only" }).waitFor();
  assert.equal(await grid.locator('.grid-body .grid-row').count(), 1);

  await page.getByLabel('View as', { exact: true }).selectOption('anon');
  const refused = page.getByRole('alert');
  await refused.waitFor();
  assert.match(await refused.innerText(), /permission denied/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('access rules are previewed as policies, applied, and tested as a user without changing rows', async () => {
  await asService('POST', '/admin/v1/tables', {
    name: 'posts',
    columns: [
      { name: 'entry', type: 'text' },
      { name: 'author', type: 'uuid', default: { expression: 'auth.uid()' } },
    ],
  });
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/tables/posts`);
  await page.getByRole('link', { name: 'Access rules' }).click();
  await page.getByText('None: with row-level security on').waitFor();
  await page.getByLabel('Who may select').selectOption('owner');
  await page.getByLabel('Who may insert').selectOption('owner');
  await page.getByRole('button', { name: 'Preview policies' }).click();
  const plan = page.locator('figure.plan');
  await plan.waitFor();
  assert.match(await plan.innerText(), /CREATE POLICY "galley_select" ON public\."posts" FOR SELECT TO authenticated USING \("author" = \(SELECT auth\.uid\(\)\)\)/);
  assert.equal(await page.getByRole('table', { name: 'Policies' }).count(), 0, 'a preview applies nothing');
  await page.getByRole('button', { name: 'Apply rules' }).click();
  await page.getByText('Rules applied.').waitFor();
  assert.equal(await page.getByRole('table', { name: 'Policies' }).locator('tbody tr').count(), 2);
  await screenshot(page, 'rules');

  // As ann: she sees none of the (no) rows, may insert her own, and the test inserts nothing.
  await page.getByLabel('Find a user to test as').fill('ann@');
  await page.getByRole('button', { name: 'Find user' }).click();
  await page.getByRole('button', { name: 'Test as ann@example.com' }).click();
  await page.getByLabel('Operation').selectOption('insert');
  await page.getByLabel('Row (JSON)').fill('{"entry": "hello"}');
  await page.getByRole('button', { name: 'Run test' }).click();
  const result = page.locator('.test-result');
  await result.waitFor();
  assert.match(await result.innerText(), /Allowed: 1 row would be inserted \(rolled back\)/);
  const count = await page.evaluate(async () => (await (await fetch('/admin/v1/rest/posts')).json()).length);
  assert.equal(count, 0, 'the test was rolled back');

  await page.getByRole('button', { name: 'Test as anon instead' }).click();
  await page.getByRole('button', { name: 'Run test' }).click();
  await page.locator('.test-result.refused').waitFor();
  assert.match(await page.locator('.test-result').innerText(), /Refused/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('users are searched, banned and unbanned, created and deleted', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await page.getByRole('table', { name: 'Users' }).waitFor();
  await page.getByLabel('Search users by email or id').fill('bob@');
  await page.getByRole('button', { name: 'Search' }).click();
  // The search's answer replaces the first list: Ann goes, Bob stays.
  await page.getByRole('link', { name: 'ann@example.com' }).waitFor({ state: 'detached' });
  await page.getByRole('link', { name: 'bob@example.com' }).waitFor();
  await screenshot(page, 'users');
  await page.getByRole('link', { name: 'bob@example.com' }).click();
  await page.getByRole('button', { name: 'Ban for 24 hours' }).click();
  await page.getByText('Banned for 24 hours.').waitFor();
  await page.getByRole('button', { name: 'Unban' }).waitFor();
  await screenshot(page, 'user');
  // Banned, Bob cannot sign in to the app.
  const appSignIn = await fetch(`${base}/auth/v1/token?grant_type=password`, {
    method: 'POST',
    headers: { apikey: process.env.ADMIN_SERVICE_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bob@example.com', password: 'bob password 123' }),
  });
  assert.equal(appSignIn.status, 400);
  await page.getByRole('link', { name: 'Back to users' }).click();
  await page.getByLabel('Show').selectOption('banned');
  await page.getByRole('link', { name: 'ann@example.com' }).waitFor({ state: 'detached' });
  await page.getByRole('link', { name: 'bob@example.com' }).waitFor();
  assert.equal(await page.getByRole('table', { name: 'Users' }).locator('tbody tr').count(), 1);
  await page.getByRole('link', { name: 'bob@example.com' }).click();
  await page.getByRole('button', { name: 'Unban' }).click();
  await page.getByText('Ban lifted.').waitFor();

  // A new user, then gone again behind a typed confirmation.
  await page.getByRole('link', { name: 'Back to users' }).click();
  await page.getByRole('button', { name: 'New user' }).click();
  await page.getByLabel('Email', { exact: true }).fill('erin@example.com');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('heading', { name: 'erin@example.com' }).waitFor();
  await page.getByRole('button', { name: 'Delete user' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('No rows of your tables point at this user.').waitFor();
  await dialog.getByLabel('Type erin@example.com to confirm').fill('erin@example.com');
  await dialog.getByRole('button', { name: 'Delete user' }).click();
  await page.getByRole('table', { name: 'Users' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'erin@example.com' }).count(), 0);
  assert.deepEqual(problems, []);
  await context.close();
});

test('SQL runs rolled back or committed, warns before destroying, and keeps history and snippets', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('link', { name: 'SQL', exact: true }).click();
  const editor = page.getByLabel('SQL', { exact: true });
  await editor.fill("select name from authors order by name");
  await page.getByRole('button', { name: 'Run (roll back)' }).click();
  const results = page.getByRole('table', { name: 'Results' });
  await results.waitFor();
  assert.match(await results.innerText(), /Ann[\s\S]*Bea[\s\S]*Cy[\s\S]*Dee/);
  await screenshot(page, 'sql');

  // A table made here, rolled back, then committed: first-class at once.
  await editor.fill("create table tags (id int primary key, label text); insert into tags values (1, 'red')");
  await page.getByRole('button', { name: 'Run (roll back)' }).click();
  await page.getByText(/rolled back · schema changed · tags: row-level security on/).waitFor();
  await page.getByRole('button', { name: 'Run and commit' }).click();
  await page.getByText(/committed · schema changed · tags: row-level security on/).waitFor();
  const served = await asService('GET', '/rest/v1/tags?select=label');
  assert.deepEqual(served, [{ label: 'red' }]);

  // Destructive SQL asks first; cancelling runs nothing.
  await editor.fill('drop table tags');
  await page.getByRole('button', { name: 'Run and commit' }).click();
  const warning = page.getByRole('dialog', { name: 'This SQL destroys data' });
  await warning.waitFor();
  await warning.getByRole('button', { name: 'Cancel' }).click();
  assert.deepEqual(await asService('GET', '/rest/v1/tags?select=label'), [{ label: 'red' }]);

  // An error says where.
  await editor.fill('select 1;\nselec 2');
  await page.getByRole('button', { name: 'Run (roll back)' }).click();
  await page.getByText('At line 2, column 1.').waitFor();
  assert.match(await page.locator('.error').innerText(), /syntax error[\s\S]*Request id/);

  // Snippets and history are kept on the server.
  await editor.fill('select count(*) from authors');
  await page.getByLabel('Snippet name').fill('count authors');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByRole('button', { name: 'count authors', exact: true }).waitFor();
  await page.reload();
  await page.getByRole('button', { name: 'count authors', exact: true }).click();
  assert.equal(await editor.inputValue(), 'select count(*) from authors');
  assert.ok((await page.locator('.history li').count()) >= 4);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a CSV file is previewed, imported with its bad rows named, and exported back', async () => {
  await asService('POST', '/admin/v1/tables', {
    name: 'people',
    columns: [
      { name: 'name', type: 'text', nullable: false },
      { name: 'age', type: 'integer' },
    ],
    checks: [{ column: 'age', min: 0 }],
  });
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/data/people`);
  await page.getByRole('grid', { name: 'Rows of people' }).waitFor();
  await page.getByRole('button', { name: 'Import CSV' }).click();
  const csv = 'name,age\n"Doe, Jane",41\nBob,x\nCy,-5\nDee,\n';
  await page.getByLabel('CSV file (first line: column names)').setInputFiles({
    name: 'people.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(csv),
  });
  const region = page.getByRole('region', { name: 'Import CSV' });
  await region.getByText('people.csv: 3 rows ready, 1 unreadable.').waitFor();
  assert.match(await region.getByRole('table', { name: 'Preview' }).innerText(), /Doe, Jane/);
  await screenshot(page, 'csv-preview');
  await region.getByRole('button', { name: 'Import 3 rows' }).click();
  await region.getByText('2 rows imported, 2 refused.').waitFor();
  const refused = await region.getByRole('list', { name: 'Rows not imported' }).innerText();
  assert.match(refused, /Line 3: age: x is not a number/);
  assert.match(refused, /Line 4: .*check/i);
  await page.getByText('~2 rows').waitFor();

  // Back out as CSV: the rows that went in.
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export CSV' }).click();
  const exported = await (await import('node:fs/promises')).readFile(await (await download).path(), 'utf8');
  assert.match(exported, /"Doe, Jane",41/);
  assert.match(exported, /Dee,/);
  assert.doesNotMatch(exported, /Bob|Cy/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the operations pages: overview, history, audit, mail, keys, configuration', async () => {
  const { context, page, problems } = await open();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await signIn(page);

  await page.getByRole('link', { name: 'Overview', exact: true }).click();
  await page.getByText('ready', { exact: true }).waitFor();
  // Two polls, 5 s apart, make the first rate.
  await page.getByText(/Requests per second: \d/).waitFor({ timeout: 15000 });
  assert.ok((await page.locator('.spark polyline').first().getAttribute('points')).length > 0);
  await screenshot(page, 'overview');

  await page.getByRole('link', { name: 'Schema history', exact: true }).click();
  await page.getByRole('button', { name: /create_table\s+people/ }).click();
  await page.getByText(/CREATE TABLE public\."people"/).waitFor();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download as SQL' }).click();
  const sql = await (await import('node:fs/promises')).readFile(await (await download).path(), 'utf8');
  assert.match(sql, /CREATE TABLE public\."authors"[\s\S]*CREATE TABLE public\."people"/);
  await screenshot(page, 'history');

  await page.getByRole('link', { name: 'Audit log', exact: true }).click();
  await page.getByLabel('Actor').fill(`admin:${email}`);
  await page.getByLabel('Outcome').selectOption('refused');
  await page.getByRole('button', { name: 'Filter' }).click();
  const audit = page.getByRole('table', { name: 'Audit entries' });
  // The filtered answer replaces the first, unfiltered one.
  await page.waitForFunction(() => {
    const table = document.querySelector('table[aria-label="Audit entries"]');
    return table && /refused/.test(table.textContent) && !/applied/.test(table.textContent);
  });
  assert.match(await audit.innerText(), /admin:first-admin@example\.com/);
  await screenshot(page, 'audit');

  await page.getByRole('link', { name: 'Mail', exact: true }).click();
  await page.getByLabel('Send a test mail to').fill('ops@example.com');
  await page.getByRole('button', { name: 'Send a test email' }).click();
  await page.getByText('A test mail to ops@example.com is queued.').waitFor();
  assert.match(await page.getByRole('table', { name: 'Outbox' }).innerText(), /test\s+ops@example\.com/);
  await screenshot(page, 'mail');

  await page.getByRole('link', { name: 'API keys', exact: true }).click();
  await page.getByLabel('anon key').waitFor();
  assert.equal(await page.getByLabel('service_role key').count(), 0, 'not shown until revealed');
  await page.getByRole('button', { name: 'Reveal service_role key' }).click();
  await page.getByRole('button', { name: 'Copy service_role key' }).click();
  await page.getByText('The service_role key is on the clipboard.').waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, await page.getByLabel('service_role key').innerText());
  const works = await fetch(`${base}/admin/v1/tables`, { headers: { authorization: `Bearer ${copied}` } });
  assert.equal(works.status, 200);
  await screenshot(page, 'keys');

  await page.getByRole('link', { name: 'Configuration', exact: true }).click();
  const config = page.getByLabel('Effective configuration');
  await config.waitFor();
  assert.match(await config.innerText(), /"project_name": "Galley"/);
  await screenshot(page, 'config');
  assert.deepEqual(problems, []);
  await context.close();
});

test('enums and indexes are made and dropped from the tables pages', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByLabel('Enum name').fill('status');
  await page.getByLabel('Enum values (comma-separated)').fill('draft, published');
  await page.getByRole('button', { name: 'Create enum' }).click();
  await page.getByRole('list', { name: 'Enums' }).getByText('draft, published').waitFor();
  // The new enum is a column type at once.
  await page.getByRole('link', { name: 'New table' }).click();
  await page.getByLabel('Column 1 type').locator('option', { hasText: 'status (enum)' }).waitFor({ state: 'attached' });

  await page.goto(`${base}/admin/#/tables/books`);
  await page.getByLabel('Index columns (comma-separated)').fill('title');
  await page.getByRole('button', { name: 'Add index' }).click();
  await page.getByText('Index added.').waitFor();
  const indexes = page.getByRole('list', { name: 'Indexes' });
  assert.match(await indexes.innerText(), /\(title\)/);
  const name = (await indexes.innerText()).match(/INDEX (\S+) ON public\.books USING btree \(title\)/)?.[1];
  assert.ok(name, await indexes.innerText());
  await page.getByRole('button', { name: `Drop index ${name}` }).click();
  await page.getByText(`Index ${name} dropped.`).waitFor();
  assert.doesNotMatch(await indexes.innerText(), /\(title\)/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a table is switched to publish its changes to realtime subscribers, and back', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/tables/books`);
  const publish = page.getByLabel('Publish changes to realtime subscribers');
  assert.equal(await publish.isChecked(), false);
  await publish.check();
  await page.getByText('Changes are published to realtime subscribers.').waitFor();
  assert.match(await page.locator('pre').last().innerText(), /CREATE TRIGGER galley_realtime/);
  await page.reload();
  await page.getByLabel('Publish changes to realtime subscribers').waitFor();
  assert.equal(await page.getByLabel('Publish changes to realtime subscribers').isChecked(), true);
  await screenshot(page, 'table-realtime');
  await page.getByLabel('Publish changes to realtime subscribers').uncheck();
  await page.getByText('Changes are no longer published.').waitFor();
  assert.equal(await page.getByLabel('Publish changes to realtime subscribers').isChecked(), false);
  assert.deepEqual(problems, []);
  await context.close();
});

test('backups are taken, verified and downloaded from the backups page', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('link', { name: 'Backups', exact: true }).click();
  await page.getByText('No backups yet.').waitFor();
  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.getByText(/^Backup galley-\S+ taken/).waitFor();
  const table = page.getByRole('table', { name: 'Backups' });
  const name = (await table.locator('tbody code').first().innerText()).trim();
  await page.getByRole('button', { name: `Verify ${name}` }).click();
  await page.getByText(`${name} verified: it restores as its manifest records.`).waitFor();
  const download = page.waitForEvent('download');
  await table.getByRole('link', { name: 'manifest.json' }).click();
  const manifest = JSON.parse(await (await import('node:fs/promises')).readFile(await (await download).path(), 'utf8'));
  assert.equal(manifest.name, name);
  assert.ok(manifest.row_counts['public.authors'] >= 4);
  await screenshot(page, 'backups');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a foreign-key cell is picked from the referenced rows and links to the row it names', async () => {
  await insertRows('books', [{ title: 'Unattributed' }]);
  const { context, page, problems } = await open();
  await signIn(page);
  await page.goto(`${base}/admin/#/data/books`);
  const grid = page.getByRole('grid', { name: 'Rows of books' });
  await grid.getByRole('gridcell', { name: 'Unattributed' }).waitFor();
  // The author_id cell of that row: the grid's columns are id, title, author_id, …
  const row = grid.locator('.grid-body .grid-row').filter({ hasText: 'Unattributed' });
  await row.locator('.cell').nth(3).dblclick();
  await page.waitForFunction(() => [...document.querySelectorAll('#fk-choices option')].some((o) => o.textContent === 'Ann'));
  const annId = await page.evaluate(
    () => [...document.querySelectorAll('#fk-choices option')].find((o) => o.textContent === 'Ann').value,
  );
  const editor = page.getByLabel('New value of author_id');
  await editor.fill(annId);
  await editor.press('Enter');
  await page.getByRole('button', { name: 'Review 1 change' }).click();
  await page.getByRole('button', { name: 'Save 1 change' }).click();
  await page.getByText('1 row saved.').waitFor();
  await row.getByRole('link', { name: annId }).click();
  const authors = page.getByRole('grid', { name: 'Rows of authors' });
  await authors.getByRole('gridcell', { name: 'Ann', exact: true }).waitFor();
  assert.equal(await authors.locator('.grid-body .grid-row').count(), 1, 'filtered to the row it names');
  assert.deepEqual(problems, []);
  await context.close();
});

test('buckets are created, filled, browsed by folder, given rules and settings, emptied and deleted', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('link', { name: 'Storage', exact: true }).click();
  await page.getByText('No buckets yet.').waitFor();
  await page.getByRole('button', { name: 'New bucket' }).click();
  await page.getByLabel('Name').fill('docs');
  await page.getByLabel('File size limit (optional)').fill('1MB');
  await page.getByLabel('Allowed MIME types (optional)').fill('text/*, image/png');
  await page.getByRole('button', { name: 'Create bucket' }).click();
  await page.getByRole('heading', { name: 'docs bucket' }).waitFor();
  await page.getByText('This bucket is empty.').waitFor();

  // A file the bucket takes, and one its types refuse (in the server's words; nothing kept).
  const files = page.getByLabel('Files to upload');
  await files.setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from the admin') });
  await page.getByRole('button', { name: 'Upload to the top folder' }).click();
  await page.getByText('Uploaded 1 file.').waitFor();
  const objects = page.getByRole('table', { name: 'Objects' });
  await objects.getByRole('link', { name: 'hello.txt' }).waitFor();
  await files.setInputFiles({ name: 'report.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4') });
  await page.getByRole('button', { name: 'Upload to the top folder' }).click();
  await page.getByText('mime type application/pdf is not supported').waitFor();
  assert.equal(await objects.getByRole('link', { name: 'report.pdf' }).count(), 0);

  // Downloads are attachments with the bytes as uploaded.
  const download = page.waitForEvent('download');
  await objects.getByRole('link', { name: 'hello.txt' }).click();
  const saved = await (await import('node:fs/promises')).readFile(await (await download).path(), 'utf8');
  assert.equal(saved, 'hello from the admin');

  // Folders: an object under reports/2026/ shows as a folder to open, and back.
  const status = await page.evaluate(async () => {
    const response = await fetch('/admin/v1/storage/buckets/docs/objects/reports/2026/q1.txt', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'first quarter',
    });
    return response.status;
  });
  assert.equal(status, 201);
  await page.reload();
  await objects.getByRole('button', { name: 'reports/' }).click();
  await objects.getByRole('button', { name: '2026/' }).click();
  await objects.getByRole('link', { name: 'q1.txt' }).waitFor();
  await page.getByRole('button', { name: 'Upload to reports/2026/' }).waitFor();
  await screenshot(page, 'bucket');
  await page.getByRole('navigation', { name: 'Folder' }).getByRole('button', { name: 'docs' }).click();
  await objects.getByRole('link', { name: 'hello.txt' }).waitFor();

  // Rules: previewed as policies on storage.objects, applied, and read back.
  await page.getByLabel('Who may read').selectOption('owner_folder');
  await page.getByLabel('Who may upload, change and delete').selectOption('owner_folder');
  await page.getByRole('button', { name: 'Preview policies' }).click();
  const plan = page.locator('figure.plan');
  await plan.waitFor();
  assert.match(await plan.innerText(), /CREATE POLICY "galley_storage_insert_[0-9a-f]{16}" ON storage\.objects FOR INSERT TO authenticated WITH CHECK \(bucket_id = 'docs' AND \(storage\.foldername\(name\)\)\[1\] = \(SELECT auth\.uid\(\)::text\)\)/);
  await page.getByRole('button', { name: 'Apply rules' }).click();
  await page.getByText('Rules applied.').waitFor();
  await page.reload();
  await page.getByLabel('Who may read').waitFor();
  assert.equal(await page.getByLabel('Who may read').inputValue(), 'owner_folder');
  assert.equal(await page.getByLabel('Who may upload, change and delete').inputValue(), 'owner_folder');

  // Public: the object's public URL answers without a key.
  const publicUrl = `${base}/storage/v1/object/public/docs/hello.txt`;
  assert.equal((await fetch(publicUrl)).status, 400, 'a private bucket has no public URL');
  await page.getByLabel('public', { exact: true }).check();
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByText('Settings saved.').waitFor();
  const served = await fetch(publicUrl);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), 'hello from the admin');

  // Removing selected objects, then the bucket with what is left in it.
  await objects.getByLabel('Select hello.txt').check();
  await page.getByRole('button', { name: 'Remove 1 selected' }).click();
  await page.getByText('Removed 1 object.').waitFor();
  assert.equal(await objects.getByRole('link', { name: 'hello.txt' }).count(), 0);
  await page.getByLabel('Type docs to delete the bucket and every object in it').fill('docs');
  await page.getByRole('button', { name: 'Delete bucket' }).click();
  await page.getByRole('heading', { name: 'Storage' }).waitFor();
  await page.getByText('No buckets yet.').waitFor();
  await screenshot(page, 'storage');
  assert.deepEqual(problems, []);
  await context.close();
});

/** The code an authenticator app shows for a base32 `secret` at time step `step` (RFC 6238). */
async function totp(secret, step) {
  const { createHmac } = await import('node:crypto');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

test('an admin turns on two-factor sign-in and then needs a code (runs last: it signs in differently)', async () => {
  const { context, page, problems } = await open();
  await signIn(page);
  await page.getByRole('link', { name: email }).click();
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  const secret = await page.getByLabel('Authenticator key').innerText();
  // Three codes, each used once and each newer than the last, all within the server's
  // window of one step either side: the previous step's, this one's, the next one's. Not
  // too close to a step's end, so the first is still in the window when it is checked.
  if (30_000 - (Date.now() % 30_000) < 5_000) await new Promise((r) => setTimeout(r, 5_000));
  const step = Math.floor(Date.now() / 30_000);
  await page.getByLabel('Code from the app').fill(await totp(secret, step - 1));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByText('Two-factor sign-in is on.').waitFor();
  await screenshot(page, 'account');
  await page.getByRole('button', { name: 'Sign out' }).click();

  // The password, then the code.
  await signIn(page);
  await page.getByLabel('Authentication code').fill(await totp(secret, step));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Tables' }).waitFor();

  // Off again, with a code not used yet.
  await page.getByRole('link', { name: email }).click();
  await page.getByLabel('Current code').fill(await totp(secret, step + 1));
  await page.getByRole('button', { name: 'Turn off' }).click();
  await page.getByText('Two-factor sign-in is off.').waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});
