// A local OpenID provider for tests/auth-browser: panva's oidc-provider (a certified OpenID
// Connect implementation) with its development sign-in pages, where any login and
// password sign in as the account named by the login. Two clients, one for each provider
// Galley is configured with. Claims go in the ID token, which is what Galley reads.
//
// Usage: node provider.mjs PORT GALLEY_URL
import Provider from "oidc-provider";

const [port, galley] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const client = (id) => ({
  client_id: `galley-${id}`,
  client_secret: `${id}-client-secret`,
  redirect_uris: [`${galley}/auth/v1/callback`],
  token_endpoint_auth_method: "client_secret_post",
  grant_types: ["authorization_code"],
  response_types: ["code"],
});

const provider = new Provider(issuer, {
  clients: [client("corp"), client("keycloak")],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, name: `Account ${id}` };
      },
    };
  },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ["galley-oauth-test-cookies"] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`listening ${issuer}`));
