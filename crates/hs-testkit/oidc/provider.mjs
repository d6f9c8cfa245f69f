// Launcher for `oidc-provider` (npm), started by hs_testkit::oidc::Provider: a real OpenID
// Connect provider on 127.0.0.1 for tests. It listens on a port the kernel picks, so parallel
// tests never race for one, and writes `{"port": N}` to $OIDC_READY_FILE once it answers.
//
// Environment:
//   OIDC_PROVIDER_DIR  the installed package (…/node_modules/oidc-provider)
//   OIDC_OPTIONS       JSON: { clients, accounts, id_token_ttl, pkce_required }
//   OIDC_READY_FILE    where to write the port once listening
//
// Login and consent are not pages: the test acts as the browser and calls
// GET /interaction/:uid?login=<sub>, which finishes the login for that account; consent is
// granted for whatever the client asked (loadExistingGrant below). The process exits when its
// standard input closes, so a test process that dies without dropping its Provider leaves
// nothing behind.

import { generateKeyPair, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

// A fresh signing key per process (a relying party must fetch the JWKS to verify), made on
// the thread pool while the package loads: the two are most of the start-up time.
const keyPair = promisify(generateKeyPair)('rsa', { modulusLength: 2048 });

const dir = process.env.OIDC_PROVIDER_DIR;
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const { default: Provider } = await import(pathToFileURL(join(dir, pkg.main)).href);
const { privateKey } = await keyPair;

const options = JSON.parse(process.env.OIDC_OPTIONS);
const accounts = new Map(options.accounts.map((a) => [a.sub, a]));

// The claims each scope releases; `groups` is not a standard scope, so it is declared here.
const claims = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username', 'picture'],
  groups: ['groups'],
};

const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: c.redirect_uris,
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims,
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // Release the scopes' claims in the ID token too, not only at userinfo (as most real
    // providers do, and as headscale reads them).
    conformIdTokenClaims: false,
    pkce: { required: () => options.pkce_required },
    ttl: {
      IdToken: options.id_token_ttl,
      AccessToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const a = accounts.get(sub);
      if (!a) return undefined;
      return {
        accountId: sub,
        async claims() {
          const out = { sub, groups: a.groups };
          for (const k of ['email', 'email_verified', 'name', 'preferred_username', 'picture']) {
            if (a[k] !== null && a[k] !== undefined) out[k] = a[k];
          }
          return out;
        },
      };
    },
    // Consent is implied: every login grants the client what this request asked for.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      const requested = [...ctx.oidc.requestParamClaims];
      if (requested.length) grant.addOIDCClaims(requested);
      await grant.save();
      return grant;
    },
    // Plain JSON errors, so a failing test shows the provider's reason.
    async renderError(ctx, out) {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  });

  provider.use(async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!m || ctx.method !== 'GET') return next();
    const sub = ctx.query.login;
    if (typeof sub !== 'string') {
      ctx.status = 400;
      ctx.body = 'interaction: no ?login=<sub> given';
      return undefined;
    }
    if (!accounts.has(sub)) {
      ctx.status = 404;
      ctx.body = `interaction: no account with sub ${JSON.stringify(sub)}`;
      return undefined;
    }
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      ctx.status = 400;
      ctx.body = `interaction: ${err.name}: ${err.error_description ?? err.message}`;
      return undefined;
    }
    if (details.uid !== m[1]) {
      ctx.status = 400;
      ctx.body = `interaction: cookie is for ${details.uid}, not ${m[1]}`;
      return undefined;
    }
    // Koa must not write a response of its own: interactionFinished sends the redirect.
    ctx.respond = false;
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: sub } },
      { mergeWithLastSubmission: false },
    );
    return undefined;
  });

  server.on('request', provider.callback());
  const ready = process.env.OIDC_READY_FILE;
  writeFileSync(`${ready}.tmp`, JSON.stringify({ port }));
  renameSync(`${ready}.tmp`, ready);
});
