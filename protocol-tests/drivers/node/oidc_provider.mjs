// A real OpenID Connect provider for the inbox's single sign-on tests: the
// certified `oidc-provider` package on an ephemeral port, with one static
// confidential client, a handful of test people (with a `groups` claim) and a
// plain login form of its own.
//
//   node oidc_provider.mjs
//
// Prints one JSON line, {"issuer": "http://127.0.0.1:<port>"}, once it
// listens. The provider itself starts when the test names the client's
// redirect URL (the inbox's port is known only once the gateway runs):
//
//   POST /__test/client?redirect_uri=<url>
//
// With `&resource=<url>` (the gateway's MCP endpoint) the provider also
// issues OAuth access tokens for that resource (RFC 8707 resource
// indicators; RFC 9068 JWTs, `typ` at+jwt) to two client-credentials
// clients: `mcp-agent` (secret `mcp-agent-secret`) and `mcp-stranger`
// (secret `mcp-stranger-secret`); their `sub` is their client id. The
// resource `https://elsewhere.example/mcp` is served too, for tokens meant
// for another server. `/__test/next?mode=…` alters the next access token
// of a client-credentials grant as it does ID tokens.
//
// Other test controls:
//
//   POST /__test/next?user=<name>   the next login form completes itself
//                                   as <name> (no form shown)
//   POST /__test/next?mode=<mode>   the next token response's ID token is
//                                   altered: tamper (payload changed,
//                                   signature kept), foreign-key (signed by
//                                   a key the provider never published,
//                                   same kid), unknown-kid (that key under
//                                   its own kid), expired, wrong-issuer,
//                                   wrong-audience, wrong-nonce (re-signed
//                                   with the provider's own key), alg-none
//                                   (unsigned), hs256 (signed with the
//                                   client secret), typ-jwt (re-signed
//                                   with the provider's key as a plain JWT,
//                                   as an ID token would be)
import http from 'node:http';
import crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const CLIENT_ID = 'airlock';
const CLIENT_SECRET = 'airlock-test-client-secret';

// name -> password and claims
const PEOPLE = {
  // Approver through the map rule for group db-approvers.
  alice: { sub: 'alice-sub', email: 'alice@example.com', email_verified: true, groups: ['db-approvers'] },
  // Auditor through the map rule for group db-readers.
  olga: { sub: 'olga-sub', email: 'olga@example.com', email_verified: true, groups: ['db-readers'] },
  // Claims names that sound powerful but that no rule maps.
  mallory: { sub: 'mallory-sub', email: 'mallory@example.com', email_verified: true, groups: ['admin', 'dba', 'approver'] },
  // The configured identity dba1, by subject.
  dora: { sub: 'dora-sub', email: 'dora@example.com', email_verified: true, groups: [] },
  // dba2's email, not verified: maps to nobody.
  eve: { sub: 'eve-sub', email: 'dba2@example.com', email_verified: false, groups: [] },
  // dba2's email, verified.
  erin: { sub: 'erin-sub', email: 'dba2@example.com', email_verified: true, groups: [] },
};
const password = (name) => `${name}-idp-pw`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };
const { privateKey: foreignKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

let provider = null;
let handle = null;
let nextUser = null;
let nextMode = null;

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const unb64 = (text) => JSON.parse(Buffer.from(text, 'base64url').toString());

function alter(token, mode) {
  const [h, p, sig] = token.split('.');
  const header = unb64(h);
  const payload = unb64(p);
  const now = Math.floor(Date.now() / 1000);
  const sign = (hdr, body, key) => {
    const input = `${b64(hdr)}.${b64(body)}`;
    return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };
  switch (mode) {
    case 'tamper':
      payload.groups = ['db-approvers'];
      payload.sub = payload.sub === 'mcp-stranger' ? 'mcp-agent' : 'alice-sub';
      return `${b64(header)}.${b64(payload)}.${sig}`;
    case 'foreign-key':
      return sign(header, payload, foreignKey);
    case 'unknown-kid':
      return sign({ ...header, kid: 'not-published' }, payload, foreignKey);
    case 'expired':
      payload.iat = now - 7200;
      payload.exp = now - 3600;
      return sign(header, payload, privateKey);
    case 'wrong-issuer':
      payload.iss = 'http://127.0.0.1:1/not-the-issuer';
      return sign(header, payload, privateKey);
    case 'wrong-audience':
      payload.aud = 'someone-else';
      return sign(header, payload, privateKey);
    case 'wrong-nonce':
      payload.nonce = 'not-the-nonce';
      return sign(header, payload, privateKey);
    case 'typ-jwt':
      return sign({ ...header, typ: 'JWT' }, payload, privateKey);
    case 'alg-none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    case 'hs256': {
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
      const mac = crypto.createHmac('sha256', CLIENT_SECRET).update(input).digest('base64url');
      return `${input}.${mac}`;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

function loginForm(uid, error) {
  return `<!doctype html><html><head><title>Test identity provider</title></head><body>
<h1>Test identity provider</h1>${error ? `<p id="idp-error">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}" id="idp-login">
<label>Login <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

const ELSEWHERE = 'https://elsewhere.example/mcp';

function start(issuer, redirectUri, resource) {
  const machines = resource ? ['mcp-agent', 'mcp-stranger'].map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    redirect_uris: [],
    response_types: [],
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
  })) : [];
  const p = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, ...machines],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // The groups claim is read from the ID token, as most providers can
    // be told to put it there.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: !!resource },
      resourceIndicators: {
        enabled: !!resource,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        async getResourceServerInfo(ctx, indicator) {
          if (indicator !== resource && indicator !== ELSEWHERE) throw new errors.InvalidTarget();
          return { scope: 'mcp', audience: indicator, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    // The account id is the person's subject (the provider's `sub`).
    async findAccount(ctx, sub) {
      const name = Object.keys(PEOPLE).find((n) => PEOPLE[n].sub === sub);
      if (!name) return undefined;
      return { accountId: sub, async claims() { return { name, ...PEOPLE[name] }; } };
    },
    // A first-party client: no consent screen.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      await grant.save();
      return grant;
    },
  });
  p.use(async (ctx, next) => {
    if (ctx.path.startsWith('/interaction/')) {
      const details = await p.interactionDetails(ctx.req, ctx.res);
      let user = null;
      if (nextUser) {
        user = nextUser;
        nextUser = null;
      } else if (ctx.method === 'POST') {
        const form = await readForm(ctx.req);
        if (PEOPLE[form.login] && form.password === password(form.login)) {
          user = form.login;
        } else {
          ctx.status = 401;
          ctx.type = 'html';
          ctx.body = loginForm(details.uid, 'Wrong login or password.');
          return;
        }
      }
      if (!user) {
        ctx.type = 'html';
        ctx.body = loginForm(details.uid, '');
        return;
      }
      const to = await p.interactionResult(ctx.req, ctx.res, { login: { accountId: PEOPLE[user].sub } }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    await next();
    if (ctx.path === '/token' && nextMode && ctx.body && ctx.body.id_token) {
      const mode = nextMode;
      nextMode = null;
      ctx.body = { ...ctx.body, id_token: alter(ctx.body.id_token, mode) };
    } else if (ctx.path === '/token' && nextMode && ctx.body && ctx.body.access_token) {
      const mode = nextMode;
      nextMode = null;
      ctx.body = { ...ctx.body, access_token: alter(ctx.body.access_token, mode) };
    }
  });
  return p;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/__test/client' && req.method === 'POST') {
    const { port } = server.address();
    provider = start(`http://127.0.0.1:${port}`, url.searchParams.get('redirect_uri'), url.searchParams.get('resource'));
    handle = provider.callback();
    res.end('ok');
    return;
  }
  if (url.pathname === '/__test/next' && req.method === 'POST') {
    if (url.searchParams.has('user')) nextUser = url.searchParams.get('user');
    if (url.searchParams.has('mode')) nextMode = url.searchParams.get('mode');
    res.end('ok');
    return;
  }
  if (!provider) {
    res.statusCode = 503;
    res.end('no client yet: POST /__test/client?redirect_uri=…');
    return;
  }
  handle(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ issuer: `http://127.0.0.1:${port}` }));
});
