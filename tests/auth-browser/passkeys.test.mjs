// Passkeys as an app user has them: supabase-js running in a page (Debian's Chromium
// through playwright-core), with Chromium's virtual authenticator (a software FIDO2
// authenticator with resident keys and user verification) as the device. A signed-in
// user registers a passkey, lists and renames it, signs out, signs in with it alone, and
// deletes it. A TOTP factor's QR code is shown as the image an app would show.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const url = process.env.OAUTH_GALLEY_URL;
const anonKey = process.env.OAUTH_ANON_KEY;
const serviceKey = process.env.OAUTH_SERVICE_KEY;
const appUrl = process.env.OAUTH_APP_URL;
const appOrigin = new URL(appUrl).origin;
// The page talks to Galley at the app's host, so WebAuthn's relying party is its domain.
const galleyAtApp = `${appOrigin}`;

const require = createRequire(import.meta.url);
const supabaseUmd = readFileSync(require.resolve("@supabase/supabase-js").replace(/dist\/.*$/, "dist/umd/supabase.js"), "utf8");

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
after(() => browser.close());

// A page of the app: a blank document at the app's origin with supabase-js loaded.
async function appPage(context) {
  const page = await context.newPage();
  await page.route(`${appOrigin}/app/**`, (route) =>
    route.request().url().endsWith("/supabase.js")
      ? route.fulfill({ status: 200, contentType: "text/javascript", body: supabaseUmd })
      : route.fulfill({ status: 200, contentType: "text/html", body: '<!doctype html><script src="/app/supabase.js"></script>' }),
  );
  return page;
}

test("a passkey is registered, listed, renamed, signs in on its own and is deleted", async () => {
  const email = `passkey-${Date.now()}@example.com`;
  const password = "correct horse battery";
  const created = await fetch(`${url}/auth/v1/admin/users`, {
    method: "POST",
    headers: { apikey: anonKey, authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify({ email, password, email_confirm: true, user_metadata: { name: "Passkey Person" } }),
  });
  const createdBody = await created.text();
  assert.equal(created.status, 200, createdBody);
  const userId = JSON.parse(createdBody).id;

  const context = await browser.newContext();
  try {
    const page = await appPage(context);
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(appUrl);
    const result = await page.evaluate(
      async ({ galley, anonKey, email, password }) => {
        const client = () =>
          window.supabase.createClient(galley, anonKey, {
            auth: { experimental: { passkey: true }, persistSession: true, autoRefreshToken: false, detectSessionInUrl: false, storageKey: `sb-${Math.random()}` },
          });
        const app = client();
        const signedIn = await app.auth.signInWithPassword({ email, password });
        if (signedIn.error) return { step: "password", error: signedIn.error.message };
        const registered = await app.auth.registerPasskey();
        if (registered.error) return { step: "register", error: `${registered.error.code}: ${registered.error.message}` };
        const listed = await app.auth.passkey.list();
        const renamed = await app.auth.passkey.update({ passkeyId: registered.data.id, friendlyName: "Laptop" });
        await app.auth.signOut();

        // A fresh client, no session: the passkey alone signs in.
        const other = client();
        const byPasskey = await other.auth.signInWithPasskey();
        if (byPasskey.error) return { step: "sign in", error: `${byPasskey.error.code}: ${byPasskey.error.message}` };
        const session = byPasskey.data.session;
        const claims = JSON.parse(atob(session.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
        const afterUse = await other.auth.passkey.list();
        const deleted = await other.auth.passkey.delete({ passkeyId: registered.data.id });
        const empty = await other.auth.passkey.list();
        return {
          registered: registered.data,
          listed: listed.data,
          renamed: renamed.data,
          userId: session.user.id,
          amr: claims.amr,
          afterUse: afterUse.data,
          deleteError: deleted.error,
          empty: empty.data,
        };
      },
      { galley: galleyAtApp, anonKey, email, password },
    );
    assert.equal(result.error, undefined, `${result.step}: ${result.error}`);
    assert.ok(result.registered.id);
    assert.deepEqual(result.listed.map((p) => p.id), [result.registered.id]);
    assert.equal(result.renamed.friendly_name, "Laptop");
    assert.equal(result.userId, userId);
    assert.equal(result.amr[0].method, "passkey");
    assert.ok(result.afterUse[0].last_used_at, JSON.stringify(result.afterUse));
    assert.equal(result.deleteError, null);
    assert.deepEqual(result.empty, []);
    // The authenticator holds a discoverable credential for this relying party.
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true);
    assert.equal(credentials[0].rpId, new URL(appUrl).hostname);
  } finally {
    await context.close();
  }
});

test("a TOTP factor's QR code, as auth-js hands it to the app, shows as an image", async () => {
  const email = `qr-${Date.now()}@example.com`;
  const password = "correct horse battery";
  const created = await fetch(`${url}/auth/v1/admin/users`, {
    method: "POST",
    headers: { apikey: anonKey, authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify({ email, password, email_confirm: true }),
  });
  assert.equal(created.status, 200, await created.text());

  const context = await browser.newContext();
  try {
    const page = await appPage(context);
    await page.goto(appUrl);
    const result = await page.evaluate(
      async ({ galley, anonKey, email, password }) => {
        const app = window.supabase.createClient(galley, anonKey, {
          auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        });
        const signedIn = await app.auth.signInWithPassword({ email, password });
        if (signedIn.error) return { step: "password", error: signedIn.error.message };
        const enrolled = await app.auth.mfa.enroll({ factorType: "totp", friendlyName: "Phone" });
        if (enrolled.error) return { step: "enroll", error: enrolled.error.message };
        // What an app does with it: the data URL as an image's source.
        const img = document.createElement("img");
        const loaded = await new Promise((resolve) => {
          img.onload = () => resolve(true);
          img.onerror = () => resolve(false);
          img.src = enrolled.data.totp.qr_code;
        });
        if (!loaded) return { step: "image", error: `not an image: ${enrolled.data.totp.qr_code.slice(0, 200)}` };
        // Dark modules are drawn: some pixels are black, some white.
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let dark = 0;
        for (let i = 0; i < pixels.length; i += 4) if (pixels[i] < 128) dark += 1;
        return { width: img.naturalWidth, height: img.naturalHeight, dark, total: pixels.length / 4 };
      },
      { galley: galleyAtApp, anonKey, email, password },
    );
    assert.equal(result.error, undefined, `${result.step}: ${result.error}`);
    assert.ok(result.width > 50 && result.width === result.height, JSON.stringify(result));
    assert.ok(result.dark > result.total / 5 && result.dark < (result.total * 4) / 5, JSON.stringify(result));
  } finally {
    await context.close();
  }
});
