// OAuth sign-in as an app user does it: @supabase/supabase-js (PKCE) starts it, a real
// browser (Debian's Chromium through playwright-core) signs in at a local OpenID provider
// and comes back through Galley's /callback to the app, which exchanges the code; then a
// second identity is linked the same way and unlinked again.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { chromium } from "playwright-core";
import ws from "ws";

const url = process.env.OAUTH_GALLEY_URL;
const anonKey = process.env.OAUTH_ANON_KEY;
const appUrl = process.env.OAUTH_APP_URL;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
after(() => browser.close());

function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

function client() {
  return createClient(url, anonKey, {
    auth: { flowType: "pkce", storage: memoryStorage(), persistSession: true, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws },
  });
}

/// Opens `start` in a fresh browser, signs in at the provider as `login` and consents:
/// the URL the app is finally sent to.
async function signInAtProvider(start, login) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // The app itself: any page under its URL.
    await page.route(`${appUrl}**`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: "<p>the app</p>" }));
    await page.goto(start);
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForSelector('input[name="prompt"][value="consent"]', { state: "attached" });
    await Promise.all([page.waitForURL(`${appUrl}**`), page.click('button[type="submit"]')]);
    return new URL(page.url());
  } finally {
    await context.close();
  }
}

test("OAuth sign-in in a real browser, then linking and unlinking a second identity", async () => {
  const supabase = client();
  const started = await supabase.auth.signInWithOAuth({ provider: "corp", options: { redirectTo: appUrl, skipBrowserRedirect: true } });
  assert.equal(started.error, null, JSON.stringify(started.error));
  const landed = await signInAtProvider(started.data.url, "grace");
  const code = landed.searchParams.get("code");
  assert.ok(code, landed.href);

  const signedIn = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(signedIn.error, null, JSON.stringify(signedIn.error));
  const user = signedIn.data.user;
  assert.equal(user.email, "grace@example.com");
  assert.ok(user.email_confirmed_at);
  assert.deepEqual(user.app_metadata, { provider: "corp", providers: ["corp"] });
  assert.equal(user.user_metadata.name, "Account grace");
  assert.deepEqual(user.identities.map((i) => [i.provider, i.id]), [["corp", "grace"]]);
  const claims = JSON.parse(Buffer.from(signedIn.data.session.access_token.split(".")[1], "base64url"));
  assert.equal(claims.amr[0].method, "oauth");

  // Signing in again with the same account is the same user.
  const again = client();
  const restart = await again.auth.signInWithOAuth({ provider: "corp", options: { redirectTo: appUrl, skipBrowserRedirect: true } });
  const second = await again.auth.exchangeCodeForSession((await signInAtProvider(restart.data.url, "grace")).searchParams.get("code"));
  assert.equal(second.error, null, JSON.stringify(second.error));
  assert.equal(second.data.user.id, user.id);

  // A second identity, at another provider, linked to the signed-in user.
  const link = await supabase.auth.linkIdentity({ provider: "keycloak", options: { redirectTo: appUrl, skipBrowserRedirect: true } });
  assert.equal(link.error, null, JSON.stringify(link.error));
  const linkedAt = await signInAtProvider(link.data.url, "grace-at-work");
  const linked = await supabase.auth.exchangeCodeForSession(linkedAt.searchParams.get("code"));
  assert.equal(linked.error, null, JSON.stringify(linked.error));
  assert.equal(linked.data.user.id, user.id);
  const identities = await supabase.auth.getUserIdentities();
  assert.equal(identities.error, null, JSON.stringify(identities.error));
  assert.deepEqual(identities.data.identities.map((i) => i.provider), ["corp", "keycloak"]);
  assert.deepEqual(linked.data.user.app_metadata.providers, ["corp", "keycloak"]);

  const unlinked = await supabase.auth.unlinkIdentity(identities.data.identities[1]);
  assert.equal(unlinked.error, null, JSON.stringify(unlinked.error));
  const remaining = await supabase.auth.getUserIdentities();
  assert.deepEqual(remaining.data.identities.map((i) => i.provider), ["corp"]);
  const last = await supabase.auth.unlinkIdentity(remaining.data.identities[0]);
  assert.equal(last.error.code, "single_identity_not_deletable");
});

test("a provider that is not offered answers as Supabase Auth does", async () => {
  const response = await fetch(`${url}/auth/v1/authorize?provider=github`, { redirect: "manual" });
  assert.equal(response.status, 400);
  assert.deepEqual(await response.json(), { code: 400, error_code: "validation_failed", msg: "Unsupported provider: provider is not enabled" });
});
