// Verify a labhook message signed with Ed25519 (Standard Webhooks v1a)
// using only Node's crypto module. publicKey is the config's whpk_ key;
// rawBody is the request body as received (a Buffer), before any JSON
// parsing. Throws unless a v1a signature matches.
const crypto = require("node:crypto");

function verifyLabhook(publicKey, headers, rawBody) {
  const id = headers["webhook-id"];
  const ts = headers["webhook-timestamp"];
  const sigs = headers["webhook-signature"];
  if (!id || !ts || !sigs) throw new Error("missing webhook-* headers");
  if (!/^[0-9]+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) {
    throw new Error("webhook-timestamp is more than five minutes away");
  }
  if (!publicKey.startsWith("whpk_")) throw new Error("not a whpk_ public key");
  const x = Buffer.from(publicKey.slice("whpk_".length), "base64").toString("base64url");
  const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), rawBody]);
  for (const s of sigs.split(" ")) {
    if (s.startsWith("v1a,") && crypto.verify(null, signed, key, Buffer.from(s.slice(4), "base64"))) {
      return;
    }
  }
  throw new Error("no matching signature");
}
