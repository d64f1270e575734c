// The whole account journey through the real @supabase/supabase-js against /auth/v1, with
// mail delivered to a real SMTP server (tests/sdk/smtp-sink.mjs) that scripts/test starts:
// sign up, confirm through the mailed link, sign in, a REST call scoped by row-level
// security, refresh, reset the password through the mailed link, and the old password and
// the other sessions stop working.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import ws from "ws";
import * as OTPAuth from "otpauth";

const url = process.env.SDK_URL;
const anonKey = process.env.SDK_ANON_KEY;
const serviceKey = process.env.SDK_SERVICE_KEY;
const mailFile = process.env.SDK_MAIL_FILE;

function client(key = anonKey) {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws },
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// The text of the newest mail to `email` whose subject matches, once it has arrived.
async function mailedText(email, subject, after = 0) {
  for (let i = 0; i < 200; i++) {
    const mails = existsSync(mailFile)
      ? readFileSync(mailFile, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line))
      : [];
    const mine = mails.filter((m) => m.to.includes(email) && subject.test(m.subject));
    if (mine.length > after) {
      return mine[mine.length - 1].text;
    }
    await sleep(100);
  }
  throw new Error(`no mail to ${email} matching ${subject}`);
}

/// The link in the newest mail to `email` whose subject matches.
async function mailedLink(email, subject, after = 0) {
  const text = await mailedText(email, subject, after);
  return text.split(/\s+/).find((word) => word.startsWith("http"));
}

/// The six-digit code in the newest mail to `email` whose subject matches.
async function mailedCode(email, subject, after = 0) {
  const text = await mailedText(email, subject, after);
  return text.match(/\b\d{6}\b/)[0];
}

async function admin(method, path, body) {
  const response = await fetch(`${url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${serviceKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.text()}`);
}

before(async () => {
  await admin("POST", "/tables", {
    name: "diary",
    primary_key: "bigint",
    columns: [
      { name: "owner", type: "uuid", nullable: false, default: { expression: "auth.uid()" } },
      { name: "entry", type: "text", nullable: false },
    ],
    foreign_keys: [{ columns: ["owner"], references: { table: "auth.users" }, on_delete: "cascade" }],
  });
  const owner = { preset: "owner", column: "owner" };
  await admin("PUT", "/tables/diary/rules", { select: owner, insert: owner, update: owner, delete: owner });
});

test("sign up, confirm by mail, sign in, row-level security, refresh, reset the password", async () => {
  const email = `ada-${randomUUID().slice(0, 8)}@example.com`;
  const password = "correct horse battery";
  const supabase = client();

  const signedUp = await supabase.auth.signUp({ email, password, options: { data: { name: "Ada" } } });
  assert.equal(signedUp.error, null);
  assert.equal(signedUp.data.session, null, "the address must be confirmed first");
  assert.equal(signedUp.data.user.email, email);
  const early = await supabase.auth.signInWithPassword({ email, password });
  assert.equal(early.error.code, "email_not_confirmed");

  // The confirmation link, followed as a browser would.
  const confirm = await mailedLink(email, /Confirm your signup/);
  const followed = await fetch(confirm, { redirect: "manual" });
  assert.equal(followed.status, 303);
  assert.match(followed.headers.get("location"), /#access_token=.*&type=signup/);

  const signedIn = await supabase.auth.signInWithPassword({ email, password });
  assert.equal(signedIn.error, null);
  const session = signedIn.data.session;
  assert.ok(session.access_token && session.refresh_token);
  assert.equal(signedIn.data.user.user_metadata.name, "Ada");

  // Row-level security scopes REST calls to this user.
  const wrote = await supabase.from("diary").insert({ entry: "dear diary" }).select("entry, owner");
  assert.equal(wrote.error, null, JSON.stringify(wrote.error));
  assert.deepEqual(wrote.data, [{ entry: "dear diary", owner: signedIn.data.user.id }]);
  const other = client();
  const otherEmail = `bob-${randomUUID().slice(0, 8)}@example.com`;
  const bobUser = await client(serviceKey).auth.admin.createUser({ email: otherEmail, password, email_confirm: true });
  assert.equal(bobUser.error, null);
  await other.auth.signInWithPassword({ email: otherEmail, password });
  await other.from("diary").insert({ entry: "bob's secret" });
  const mine = await supabase.from("diary").select("entry");
  assert.deepEqual(mine.data, [{ entry: "dear diary" }]);
  const anon = await client().from("diary").select("entry");
  assert.deepEqual(anon.data ?? [], [], "anon sees nothing");

  // Refresh: new tokens; the user and claims as before.
  const refreshed = await supabase.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.notEqual(refreshed.data.session.refresh_token, session.refresh_token);
  const user = await supabase.auth.getUser();
  assert.equal(user.data.user.email, email);
  const claims = await supabase.auth.getClaims();
  assert.equal(claims.error, null);
  assert.equal(claims.data.claims.sub, signedIn.data.user.id);
  assert.equal(claims.data.claims.role, "authenticated");
  const updated = await supabase.auth.updateUser({ data: { theme: "dark" } });
  assert.equal(updated.data.user.user_metadata.theme, "dark");

  // A second device, signed in with the old password.
  const laptop = client();
  const laptopSession = await laptop.auth.signInWithPassword({ email, password });
  assert.equal(laptopSession.error, null);

  // Forgot the password: the emailed link, then a new password.
  const reset = client();
  const recovered = await reset.auth.resetPasswordForEmail(email);
  assert.equal(recovered.error, null);
  const link = await mailedLink(email, /Reset your/);
  const token = new URL(link).searchParams.get("token");
  const verified = await reset.auth.verifyOtp({ token_hash: token, type: "recovery" });
  assert.equal(verified.error, null, JSON.stringify(verified.error));
  assert.ok(verified.data.session);
  const changed = await reset.auth.updateUser({ password: "a much newer secret" });
  assert.equal(changed.error, null, JSON.stringify(changed.error));
  const reused = await client().auth.verifyOtp({ token_hash: token, type: "recovery" });
  assert.equal(reused.error.code, "otp_expired", "the link works once");

  const old = await client().auth.signInWithPassword({ email, password });
  assert.equal(old.error.code, "invalid_credentials");
  const fresh = await client().auth.signInWithPassword({ email, password: "a much newer secret" });
  assert.equal(fresh.error, null);
  const revoked = await laptop.auth.refreshSession();
  assert.ok(revoked.error, "the other device's session was revoked");

  // Sign out: the session's refresh token is dead.
  const out = await reset.auth.signOut({ scope: "local" });
  assert.equal(out.error, null);
});

test("a rotated refresh token presented again within the reuse interval gets the current one", async () => {
  const email = `reuse-${randomUUID().slice(0, 8)}@example.com`;
  await client(serviceKey).auth.admin.createUser({ email, password: "correct horse battery", email_confirm: true });
  const supabase = client();
  const { data } = await supabase.auth.signInWithPassword({ email, password: "correct horse battery" });
  const first = data.session.refresh_token;
  const second = await client().auth.refreshSession({ refresh_token: first });
  assert.equal(second.error, null);
  // Within the reuse interval the parent answers with the current token.
  const again = await client().auth.refreshSession({ refresh_token: first });
  assert.equal(again.error, null);
  assert.equal(again.data.session.refresh_token, second.data.session.refresh_token);
});

test("auth.admin manages users", async () => {
  const adminClient = client(serviceKey).auth.admin;
  const email = `made-${randomUUID().slice(0, 8)}@example.com`;
  const created = await adminClient.createUser({ email, password: "correct horse battery", email_confirm: true, user_metadata: { team: "blue" } });
  assert.equal(created.error, null);
  const id = created.data.user.id;
  const listed = await adminClient.listUsers({ page: 1, perPage: 1 });
  assert.equal(listed.error, null);
  assert.equal(listed.data.users.length, 1);
  assert.ok(listed.data.total >= 1);
  const fetched = await adminClient.getUserById(id);
  assert.equal(fetched.data.user.email, email);
  const banned = await adminClient.updateUserById(id, { ban_duration: "1h" });
  assert.ok(banned.data.user.banned_until);
  const refused = await client().auth.signInWithPassword({ email, password: "correct horse battery" });
  assert.equal(refused.error.code, "user_banned");
  const deleted = await adminClient.deleteUser(id);
  assert.equal(deleted.error, null);
  const gone = await adminClient.getUserById(id);
  assert.equal(gone.error.code, "user_not_found");
  const notAdmin = await client().auth.admin.listUsers();
  assert.ok(notAdmin.error, "the anon key is not an admin");
});

test("a mailed code and a magic link sign in without a password", async () => {
  const email = `otp-${randomUUID().slice(0, 8)}@example.com`;
  const supabase = client();
  // Unknown, and not to be created: Supabase Auth's refusal.
  const refused = await supabase.auth.signInWithOtp({ email, options: { shouldCreateUser: false } });
  assert.equal(refused.error.code, "otp_disabled");
  assert.equal(refused.error.status, 422);

  // A new address: an account, and a confirmation with a code in it.
  const asked = await supabase.auth.signInWithOtp({ email, options: { data: { name: "Otto" } } });
  assert.equal(asked.error, null);
  const code = await mailedCode(email, /Confirm your signup/);
  const verified = await supabase.auth.verifyOtp({ email, token: code, type: "email" });
  assert.equal(verified.error, null, JSON.stringify(verified.error));
  assert.equal(verified.data.user.email, email);
  assert.equal(verified.data.user.user_metadata.name, "Otto");
  const wrote = await supabase.from("diary").insert({ entry: "no password needed" }).select("entry");
  assert.equal(wrote.error, null, JSON.stringify(wrote.error));
  const again = await client().auth.verifyOtp({ email, token: code, type: "email" });
  assert.equal(again.error.code, "otp_expired");

  // Now confirmed: a magic link, followed as a browser would, carries a session.
  const magic = await supabase.auth.signInWithOtp({ email, options: { shouldCreateUser: false } });
  assert.equal(magic.error, null);
  const link = await mailedLink(email, /sign-in link/);
  const followed = await fetch(link, { redirect: "manual" });
  assert.equal(followed.status, 303);
  const fragment = new URLSearchParams(new URL(followed.headers.get("location")).hash.slice(1));
  assert.equal(fragment.get("type"), "magiclink");
  const browser = client();
  const restored = await browser.auth.setSession({
    access_token: fragment.get("access_token"),
    refresh_token: fragment.get("refresh_token"),
  });
  assert.equal(restored.error, null);
  assert.equal(restored.data.user.email, email);
  const mine = await browser.from("diary").select("entry");
  assert.deepEqual(mine.data, [{ entry: "no password needed" }]);
});

test("the PKCE flow: sign-up and recovery links carry a code the client exchanges", async () => {
  const pkce = () =>
    createClient(url, anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType: "pkce" },
      realtime: { transport: ws },
    });
  const email = `pkce-${randomUUID().slice(0, 8)}@example.com`;
  const password = "correct horse battery";
  const supabase = pkce();
  const signedUp = await supabase.auth.signUp({ email, password });
  assert.equal(signedUp.error, null);
  const followed = await fetch(await mailedLink(email, /Confirm your signup/), { redirect: "manual" });
  assert.equal(followed.status, 303);
  const location = new URL(followed.headers.get("location"));
  assert.equal(location.hash, "", "no tokens in a PKCE redirect");
  const code = location.searchParams.get("code");
  // Another client, without the verifier, cannot use the code.
  const stranger = await pkce().auth.exchangeCodeForSession(code);
  assert.ok(stranger.error);
  const exchanged = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(exchanged.error, null, JSON.stringify(exchanged.error));
  assert.equal(exchanged.data.user.email, email);
  assert.ok(exchanged.data.user.email_confirmed_at);

  // Recovery through PKCE, then a new password.
  const recovering = pkce();
  const asked = await recovering.auth.resetPasswordForEmail(email);
  assert.equal(asked.error, null);
  const reset = await fetch(await mailedLink(email, /Reset your/), { redirect: "manual" });
  const resetCode = new URL(reset.headers.get("location")).searchParams.get("code");
  const recovered = await recovering.auth.exchangeCodeForSession(resetCode);
  assert.equal(recovered.error, null, JSON.stringify(recovered.error));
  const changed = await recovering.auth.updateUser({ password: "a brand new passphrase" });
  assert.equal(changed.error, null);
  const signedIn = await client().auth.signInWithPassword({ email, password: "a brand new passphrase" });
  assert.equal(signedIn.error, null);
});

test("an anonymous sign-in becomes a permanent account and keeps its id and rows", async () => {
  const supabase = client();
  const anonymous = await supabase.auth.signInAnonymously({ options: { data: { theme: "dark" } } });
  assert.equal(anonymous.error, null, JSON.stringify(anonymous.error));
  const user = anonymous.data.user;
  assert.equal(user.is_anonymous, true);
  assert.equal(user.email, "");
  const claims = JSON.parse(Buffer.from(anonymous.data.session.access_token.split(".")[1], "base64url"));
  assert.equal(claims.is_anonymous, true);
  assert.equal(claims.amr[0].method, "anonymous");
  const wrote = await supabase.from("diary").insert({ entry: "before I had an address" }).select("entry");
  assert.equal(wrote.error, null, JSON.stringify(wrote.error));

  // A password alone is refused, as Supabase Auth refuses it.
  const early = await supabase.auth.updateUser({ password: "correct horse battery" });
  assert.equal(early.error.code, "validation_failed");
  assert.equal(early.error.message, "Updating password of an anonymous user without an email or phone is not allowed");

  // An address, confirmed by its link: the same user, no longer anonymous.
  const email = `anon-${randomUUID().slice(0, 8)}@example.com`;
  const added = await supabase.auth.updateUser({ email, password: "correct horse battery" });
  assert.equal(added.error, null, JSON.stringify(added.error));
  const followed = await fetch(await mailedLink(email, /Confirm your new/), { redirect: "manual" });
  assert.equal(followed.status, 303);
  const fragment = new URLSearchParams(new URL(followed.headers.get("location")).hash.slice(1));
  assert.ok(fragment.get("access_token"), followed.headers.get("location"));
  const later = await supabase.auth.refreshSession();
  assert.equal(later.error, null);
  assert.equal(later.data.user.id, user.id);
  assert.equal(later.data.user.is_anonymous, false);
  assert.equal(later.data.user.email, email);
  const rows = await supabase.from("diary").select("entry");
  assert.deepEqual(rows.data, [{ entry: "before I had an address" }]);
  const signedIn = await client().auth.signInWithPassword({ email, password: "correct horse battery" });
  assert.equal(signedIn.error, null, JSON.stringify(signedIn.error));
  assert.equal(signedIn.data.user.id, user.id);
});

test("invitations, generated links, reauthentication and an admin's sign-out", async () => {
  const admin = client(serviceKey).auth.admin;
  const email = `guest-${randomUUID().slice(0, 8)}@example.com`;
  const invited = await admin.inviteUserByEmail(email, { data: { team: "red" } });
  assert.equal(invited.error, null, JSON.stringify(invited.error));
  assert.ok(invited.data.user.invited_at);
  const guest = client();
  const code = await mailedCode(email, /invited/);
  const accepted = await guest.auth.verifyOtp({ email, token: code, type: "invite" });
  assert.equal(accepted.error, null, JSON.stringify(accepted.error));
  assert.equal(accepted.data.user.user_metadata.team, "red");
  const chose = await guest.auth.updateUser({ password: "correct horse battery" });
  assert.equal(chose.error, null);

  // A generated link: what a mail would carry, for the admin to deliver.
  const generated = await admin.generateLink({ type: "magiclink", email });
  assert.equal(generated.error, null, JSON.stringify(generated.error));
  assert.equal(generated.data.user.email, email);
  assert.equal(generated.data.properties.verification_type, "magiclink");
  const byHash = await client().auth.verifyOtp({ token_hash: generated.data.properties.hashed_token, type: "magiclink" });
  assert.equal(byHash.error, null, JSON.stringify(byHash.error));
  assert.equal(byHash.data.user.email, email);

  // Reauthentication mails a code.
  const asked = await guest.auth.reauthenticate();
  assert.equal(asked.error, null, JSON.stringify(asked.error));
  assert.match(await mailedCode(email, /Confirm it is you/), /^\d{6}$/);

  // The admin signs the guest out everywhere: their refresh token stops working.
  const session = (await guest.auth.getSession()).data.session;
  const out = await admin.signOut(session.access_token, "global");
  assert.equal(out.error, null);
  const refreshed = await guest.auth.refreshSession();
  assert.ok(refreshed.error);
});

test("every method that is off answers with Supabase Auth's own error", async () => {
  const supabase = client();
  const phone = await supabase.auth.signInWithPassword({ phone: "+15551234567", password: "whatever it is" });
  assert.equal(phone.error.code, "phone_provider_disabled");
  assert.equal(phone.error.message, "Phone logins are disabled");
  const sms = await supabase.auth.signInWithOtp({ phone: "+15551234567" });
  assert.equal(sms.error.code, "phone_provider_disabled");
  const sso = await supabase.auth.signInWithSSO({ domain: "example.com" });
  assert.equal(sso.error.code, "saml_provider_disabled");
  assert.equal(sso.error.message, "SAML 2.0 is disabled");
  const resent = await supabase.auth.resend({ type: "sms", phone: "+15551234567" });
  assert.equal(resent.error.code, "phone_provider_disabled");
  // OAuth: the client builds the URL; the browser that follows it is refused.
  const oauth = await supabase.auth.signInWithOAuth({ provider: "github", options: { skipBrowserRedirect: true } });
  assert.equal(oauth.error, null);
  const followed = await fetch(oauth.data.url, { headers: { "x-supabase-api-version": "2024-01-01" } });
  assert.equal(followed.status, 400);
  assert.deepEqual(await followed.json(), { code: "validation_failed", message: "Unsupported provider: provider is not enabled" });
  // Linking an identity needs manual linking, which is off.
  const email = `link-${randomUUID().slice(0, 8)}@example.com`;
  await client(serviceKey).auth.admin.createUser({ email, password: "correct horse battery", email_confirm: true });
  await supabase.auth.signInWithPassword({ email, password: "correct horse battery" });
  const linked = await supabase.auth.linkIdentity({ provider: "github", options: { skipBrowserRedirect: true } });
  assert.equal(linked.error.code, "manual_linking_disabled");
});

test("TOTP: enroll, challenge, verify, aal2 in the token and in a row-level security policy", async () => {
  await admin("POST", "/tables", {
    name: "vault",
    primary_key: "bigint",
    columns: [{ name: "note", type: "text", nullable: false }],
  });
  await admin("PUT", "/tables/vault/rules", {
    select: { preset: "custom", expression: "(auth.jwt() ->> 'aal') = 'aal2'" },
  });
  const stored = await client(serviceKey).from("vault").insert({ note: "two factors" });
  assert.equal(stored.error, null, JSON.stringify(stored.error));
  const email = `mfa-${randomUUID().slice(0, 8)}@example.com`;
  const password = "correct horse battery";
  const created = await client(serviceKey).auth.admin.createUser({ email, password, email_confirm: true });
  assert.equal(created.error, null, JSON.stringify(created.error));

  const supabase = client();
  assert.equal((await supabase.auth.signInWithPassword({ email, password })).error, null);
  let level = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.deepEqual([level.data.currentLevel, level.data.nextLevel], ["aal1", "aal1"]);

  const enrolled = await supabase.auth.mfa.enroll({ factorType: "totp", friendlyName: "phone", issuer: "Galley Tests" });
  assert.equal(enrolled.error, null, JSON.stringify(enrolled.error));
  assert.ok(enrolled.data.totp.qr_code.startsWith("data:image/svg+xml;utf-8,<"), enrolled.data.totp.qr_code.slice(0, 60));
  // What an authenticator app reads from the QR code's URI.
  const app = OTPAuth.URI.parse(enrolled.data.totp.uri);
  assert.equal(app.issuer, "Galley Tests");
  assert.equal(app.label, email);
  assert.equal(app.secret.base32, enrolled.data.totp.secret);
  const factorId = enrolled.data.id;

  const challenge = await supabase.auth.mfa.challenge({ factorId });
  assert.equal(challenge.error, null, JSON.stringify(challenge.error));
  assert.equal(challenge.data.type, "totp");
  assert.ok(challenge.data.expires_at > Date.now() / 1000);
  const wrong = await supabase.auth.mfa.verify({ factorId, challengeId: challenge.data.id, code: "12345x" });
  assert.equal(wrong.error.code, "mfa_verification_failed");
  assert.equal(wrong.error.message, "Invalid TOTP code entered");
  const verified = await supabase.auth.mfa.verify({ factorId, challengeId: challenge.data.id, code: app.generate() });
  assert.equal(verified.error, null, JSON.stringify(verified.error));

  level = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.deepEqual([level.data.currentLevel, level.data.nextLevel], ["aal2", "aal2"]);
  assert.equal(level.data.currentAuthenticationMethods[0].method, "totp");
  assert.equal(level.data.currentAuthenticationMethods[1].method, "password");
  const factors = await supabase.auth.mfa.listFactors();
  assert.deepEqual(factors.data.totp.map((f) => [f.id, f.friendly_name, f.status]), [[factorId, "phone", "verified"]]);
  const rows = await supabase.from("vault").select("note");
  assert.deepEqual(rows.data, [{ note: "two factors" }]);

  // Another device signs in at aal1: the policy hides the row, and the factor stays.
  const other = client();
  assert.equal((await other.auth.signInWithPassword({ email, password })).error, null);
  level = await other.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.deepEqual([level.data.currentLevel, level.data.nextLevel], ["aal1", "aal2"]);
  assert.deepEqual((await other.from("vault").select("note")).data, []);
  const refused = await other.auth.mfa.unenroll({ factorId });
  assert.equal(refused.error.code, "insufficient_aal");
  // The next step's code (clock drift is allowed; the used one is not accepted again).
  const next = app.generate({ timestamp: Date.now() + 30_000 });
  const raised = await other.auth.mfa.challengeAndVerify({ factorId, code: next });
  assert.equal(raised.error, null, JSON.stringify(raised.error));
  assert.deepEqual((await other.from("vault").select("note")).data, [{ note: "two factors" }]);

  const removed = await other.auth.mfa.unenroll({ factorId });
  assert.equal(removed.error, null, JSON.stringify(removed.error));
  assert.equal(removed.data.id, factorId);
  assert.deepEqual((await other.auth.mfa.listFactors()).data.all, []);
});
