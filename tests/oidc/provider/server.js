// A real OpenID Connect provider (the npm package `oidc-provider`) for the relay's OIDC tests.
//
//   node server.js <port>      listens on 127.0.0.1:<port>, issuer http://127.0.0.1:<port>
//
// What is ours is only the test's side of the provider, kept outside the OIDC endpoints:
//   PUT  /test/clients/<id>           register a client (JSON client metadata), e.g. once the
//                                     relay under test knows its callback URL
//   GET  /interaction/<uid>           the sign-in page (a form with one field, `login`)
//   POST /interaction/<uid>/login     signs in account `login` (any name; no password) and
//                                     returns to the authorization endpoint
//   POST /interaction/<uid>/abort     the person refuses: the client gets error=access_denied
// An account `<login>` has sub `id-<login>`; a login containing "@" is an email address with no
// preferred_username, any other login is the preferred_username with email `<login>@example.org`.
// Consent is granted implicitly for every requested scope.  Each process signs with a new key of
// its own id, so a restart on the same port is a key rotation.

import crypto from "node:crypto";
import http from "node:http";

import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;

const stores = new Map();

class MemoryStore {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.items = stores.get(name);
  }

  async upsert(id, payload, expiresIn) {
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : null;
    this.items.set(id, { payload, expires });
  }

  async find(id) {
    const item = this.items.get(id);
    if (!item) return undefined;
    if (item.expires && item.expires < Date.now()) {
      this.items.delete(id);
      return undefined;
    }
    return item.payload;
  }

  async findByUid(uid) {
    for (const [id, item] of this.items) {
      if (item.payload.uid === uid) return this.find(id);
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [id, item] of this.items) {
      if (item.payload.userCode === userCode) return this.find(id);
    }
    return undefined;
  }

  async consume(id) {
    const item = this.items.get(id);
    if (item) item.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.items.delete(id);
  }

  async revokeByGrantId(grantId) {
    for (const [id, item] of this.items) {
      if (item.payload.grantId === grantId) this.items.delete(id);
    }
  }
}

function claimsOf(login) {
  const claims = { sub: `id-${login}`, name: `Test person ${login}` };
  if (login.includes("@")) {
    claims.email = login;
  } else {
    claims.preferred_username = login;
    claims.email = `${login}@example.org`;
  }
  claims.email_verified = true;
  return claims;
}

const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: `test-key-${crypto.randomBytes(4).toString("hex")}`, alg: "RS256", use: "sig" };

const provider = new Provider(issuer, {
  adapter: MemoryStore,
  clients: [],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name"],
    email: ["email", "email_verified"],
  },
  // Every claim in the ID token, so the relay needs no userinfo call.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  ttl: { AuthorizationCode: 60, AccessToken: 600, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() {
      const login = id.startsWith("id-") ? id.slice(3) : id;
      return claimsOf(login);
    },
  }),
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(" ") : "openid");
    await grant.save();
    return grant;
  },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));

const oidc = provider.callback();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString()));
    req.on("error", reject);
  });
}

function send(res, status, type, body) {
  res.writeHead(status, { "content-type": type });
  res.end(body);
}

async function test(req, res, path) {
  const client = path.match(/^\/test\/clients\/([^/]+)$/);
  if (client && req.method === "PUT") {
    const metadata = JSON.parse(await readBody(req));
    await new MemoryStore("Client").upsert(client[1], { ...metadata, client_id: client[1] });
    return send(res, 204, "text/plain", "");
  }
  const interaction = path.match(/^\/interaction\/([^/]+)(\/login|\/abort)?$/);
  if (!interaction) return false;
  const details = await provider.interactionDetails(req, res);
  if (req.method === "GET" && !interaction[2]) {
    return send(
      res,
      200,
      "text/html; charset=utf-8",
      `<!doctype html><title>Test provider sign-in</title>
<form method="post" action="/interaction/${details.uid}/login">
<label>Login <input name="login" id="login" autofocus></label>
<button type="submit" id="submit">Sign in</button></form>
<form method="post" action="/interaction/${details.uid}/abort"><button id="abort">Cancel</button></form>`,
    );
  }
  if (req.method === "POST" && interaction[2] === "/login") {
    const login = new URLSearchParams(await readBody(req)).get("login") || "";
    if (!login) return send(res, 400, "text/plain", "login is required");
    await provider.interactionFinished(req, res, { login: { accountId: `id-${login}` } }, { mergeWithLastSubmission: false });
    return true;
  }
  if (req.method === "POST" && interaction[2] === "/abort") {
    await readBody(req);
    const result = { error: "access_denied", error_description: "The person refused to sign in" };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return true;
  }
  return send(res, 405, "text/plain", "method not allowed");
}

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  try {
    if (path === "/favicon.ico") return send(res, 204, "image/x-icon", "");
    if (path.startsWith("/test/") || path.startsWith("/interaction/")) {
      const handled = await test(req, res, path);
      if (handled !== false) return;
    }
    oidc(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) send(res, 500, "text/plain", String(err));
  }
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
