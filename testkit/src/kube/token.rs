//! Service-account tokens: ES256 JWTs shaped like projected service-account tokens, minted and
//! verified with the stand-in's key, and that key as PEM and as a JWKS for OIDC discovery.
//!
//! ES256 rather than the RS256 a real cluster uses: `ring` cannot generate RSA keys.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ids;

/// The claims of a projected service-account token (the pod binding, no node binding).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub nbf: i64,
    pub sub: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KubernetesClaims {
    pub namespace: String,
    /// Set for a token bound to a pod (TokenRequest `boundObjectRef` of kind Pod), as the
    /// kubelet's projected tokens are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    pub serviceaccount: ServiceAccountRef,
}

/// The object a token is bound to: `{"name": ..., "uid": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// The pod's name.
    pub name: String,
    /// The pod's `metadata.uid`.
    pub uid: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ServiceAccountRef {
    pub name: String,
    pub uid: String,
}

/// Mints and verifies service-account tokens with one P-256 key.
pub(crate) struct TokenAuthority {
    key: EcdsaKeyPair,
    public_key_pem: String,
    kid: String,
    issuer: String,
    rng: SystemRandom,
    /// Service accounts are not stored; each (namespace, name) gets a stable UID on first use.
    service_account_uids: Mutex<HashMap<(String, String), String>>,
}

impl TokenAuthority {
    pub fn new(issuer: String) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pair =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the SA key")?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pair.serialized_der(),
            &rng,
        )
        .map_err(|e| anyhow::anyhow!("loading the SA key: {e}"))?;
        // As the API server does: the key id is the hash of the DER public key.
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            &pair.subject_public_key_info(),
        ));
        Ok(Self {
            key,
            public_key_pem: pair.public_key_pem(),
            kid,
            issuer,
            rng,
            service_account_uids: Mutex::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API server itself accepts (`--api-audiences`, defaulting to the issuer).
    pub fn api_audiences(&self) -> Vec<String> {
        vec![self.issuer.clone()]
    }

    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// The UID of a service account, stable for the life of the server.
    pub fn service_account_uid(&self, namespace: &str, name: &str) -> String {
        let mut uids = self.service_account_uids.lock().expect("uid map poisoned");
        uids.entry((namespace.to_owned(), name.to_owned()))
            .or_insert_with(ids::uuid)
            .clone()
    }

    /// A signed token for `system:serviceaccount:<namespace>:<name>`, valid for `ttl_seconds`
    /// from now, bound to `pod` if given; returns it with its expiry (Unix seconds). No
    /// audiences means the API audiences.
    pub fn mint(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        ttl_seconds: i64,
        pod: Option<&PodRef>,
    ) -> (String, i64) {
        let now = jiff::Timestamp::now().as_second();
        let aud = if audiences.is_empty() {
            self.api_audiences()
        } else {
            audiences.to_vec()
        };
        let claims = Claims {
            aud,
            exp: now + ttl_seconds,
            iat: now,
            iss: self.issuer.clone(),
            jti: ids::uuid(),
            kubernetes: KubernetesClaims {
                namespace: namespace.to_owned(),
                pod: pod.cloned(),
                serviceaccount: ServiceAccountRef {
                    name: name.to_owned(),
                    uid: self.service_account_uid(namespace, name),
                },
            },
            nbf: now,
            sub: format!("system:serviceaccount:{namespace}:{name}"),
        };
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(serde_json::to_vec(&claims).expect("claims serialize"))
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing failed");
        (
            format!("{signing_input}.{}", B64.encode(signature.as_ref())),
            claims.exp,
        )
    }

    /// Checks a token as the API server's service-account authenticator does: format, issuer,
    /// signature, validity window (no clock leeway), then audiences. On success the claims' `aud`
    /// is narrowed to the audiences that matched. Errors are the reason text only.
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, String> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err("go-jose/go-jose: compact JWS format must have three parts".into());
        };
        let decode = |part: &str| {
            B64.decode(part)
                .map_err(|_| "go-jose/go-jose: illegal base64 data".to_owned())
        };
        let header: Value = serde_json::from_slice(&decode(header)?)
            .map_err(|_| "go-jose/go-jose: invalid header".to_owned())?;
        let mut claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|_| "go-jose/go-jose/jwt: invalid claims".to_owned())?;
        if claims.iss != self.issuer {
            return Err("token issuer is not trusted".into());
        }
        if header["alg"] != "ES256" {
            return Err("go-jose/go-jose: unexpected signature algorithm".into());
        }
        let signed = &token[..header_len(token)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signed.as_bytes(), &decode(signature)?)
            .map_err(|_| "go-jose/go-jose: error in cryptographic primitive".to_owned())?;
        let now = jiff::Timestamp::now().as_second();
        if now >= claims.exp {
            return Err("service account token has expired".into());
        }
        if now < claims.nbf {
            return Err("service account token is not valid yet".into());
        }
        let expected = format!(
            "system:serviceaccount:{}:{}",
            claims.kubernetes.namespace, claims.kubernetes.serviceaccount.name
        );
        if claims.sub != expected {
            return Err("service account token claims are inconsistent".into());
        }
        let matched: Vec<String> = claims
            .aud
            .iter()
            .filter(|a| audiences.contains(a))
            .cloned()
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "token audiences {} is invalid for the target audiences {}",
                go_list(&claims.aud),
                go_list(audiences)
            ));
        }
        claims.aud = matched;
        Ok(claims)
    }

    /// The JSON Web Key Set served at `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04, then X and Y (32 bytes each).
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..65]),
        }]})
    }
}

/// The length of `header.payload`, the signed part of a compact JWS.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| super::status::quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> TokenAuthority {
        TokenAuthority::new("https://issuer.test".into()).unwrap()
    }

    #[test]
    fn round_trip_and_audiences() {
        let ta = authority();
        let (token, _) = ta.mint("ns", "sa", &["vault".into(), "x".into()], 60, None);
        let claims = ta.verify(&token, &["vault".into()]).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:ns:sa");
        assert_eq!(claims.aud, ["vault"]);
        let err = ta.verify(&token, &ta.api_audiences()).unwrap_err();
        assert_eq!(
            err,
            r#"token audiences ["vault" "x"] is invalid for the target audiences ["https://issuer.test"]"#
        );
    }

    #[test]
    fn rejects_expired_tampered_and_foreign_tokens() {
        let ta = authority();
        let aud = ta.api_audiences();
        let (expired, _) = ta.mint("ns", "sa", &[], 0, None);
        assert_eq!(
            ta.verify(&expired, &aud).unwrap_err(),
            "service account token has expired"
        );

        let (token, _) = ta.mint("ns", "sa", &[], 60, None);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
        claims["kubernetes.io"]["namespace"] = "other".into();
        claims["sub"] = "system:serviceaccount:other:sa".into();
        parts[1] = B64.encode(claims.to_string());
        let err = ta.verify(&parts.join("."), &aud).unwrap_err();
        assert!(err.contains("cryptographic primitive"), "{err}");

        let other = TokenAuthority::new("https://issuer.test".into()).unwrap();
        let (foreign, _) = other.mint("ns", "sa", &[], 60, None);
        assert!(ta.verify(&foreign, &aud).is_err());
        assert!(ta.verify("not-a-jwt", &aud).is_err());
    }

    #[test]
    fn pod_binding_is_a_claim() {
        let ta = authority();
        let pod = PodRef {
            name: "p".into(),
            uid: "u-1".into(),
        };
        let (token, _) = ta.mint("ns", "sa", &[], 60, Some(&pod));
        let claims = ta.verify(&token, &ta.api_audiences()).unwrap();
        assert_eq!(claims.kubernetes.pod, Some(pod));
        let payload = token.split('.').nth(1).unwrap();
        let raw: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        assert_eq!(
            raw["kubernetes.io"]["pod"],
            json!({"name": "p", "uid": "u-1"})
        );
        let (unbound, _) = ta.mint("ns", "sa", &[], 60, None);
        let payload = unbound.split('.').nth(1).unwrap();
        let raw: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        assert!(raw["kubernetes.io"].get("pod").is_none());
    }

    #[test]
    fn service_account_uid_is_stable() {
        let ta = authority();
        assert_eq!(
            ta.service_account_uid("a", "b"),
            ta.service_account_uid("a", "b")
        );
        assert_ne!(
            ta.service_account_uid("a", "b"),
            ta.service_account_uid("a", "c")
        );
    }
}
