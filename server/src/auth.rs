//! Who is asking: HS256 tokens (JWT), from a header or a cookie.
//!
//! Scripts send `Authorization: Bearer <token>`; browsers carry the same
//! token in an HttpOnly, SameSite=Lax cookie, because `EventSource` cannot
//! send headers. Over HTTPS the cookie is `Secure` and named
//! `__Host-herald_session`, which browsers accept only from a secure
//! origin, for the whole site and no other domain. `sub` is the user id and `exp` is required; `nbf` is
//! honoured, and `iss` / `aud` are checked when configured. The access
//! rules themselves live in the service layer, which asks this module only
//! "which user is this?".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use app::model::{Principal, ServiceError};

use crate::config::{AuthMode, Config, CookieSecure};
use crate::error::StartError;

/// Name of the session cookie.
pub const COOKIE: &str = "herald_session";

/// Name of the session cookie when it is `Secure`.
pub const SECURE_COOKIE: &str = "__Host-herald_session";

/// Shortest token secret accepted: 256 bits, the size of an HS256 key.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims Herald signs and requires.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (JWT's `sub` is a string).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch (identity providers may leave
    /// it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer (`HERALD_JWT_ISSUER`), when configured. Checked by the
    /// validation, never read here.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (`HERALD_JWT_AUDIENCE`), when configured. Checked by the
    /// validation (which also takes the array form), never read here.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Display name, from the identity provider; names a user created by
    /// auto-provisioning (`HERALD_AUTO_PROVISION`). Anything but a string
    /// counts as absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub name: Option<String>,
}

/// A claim that is a string, or `None` for any other JSON value: a
/// provider's odd `name` must not make a valid token invalid.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// Token minting and checking; built once at start.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    mode: AuthMode,
    demo_sign_in: bool,
    secure_cookie: CookieSecure,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Auth {
    /// Keys and rules from the configuration. Without a secret
    /// (`HERALD_JWT_SECRET` or `HERALD_JWT_SECRET_FILE`) a random one is
    /// made up (and said so), which is fine for development and means tokens
    /// do not survive a restart. A secret shorter than [`MIN_SECRET_BYTES`]
    /// is refused.
    pub fn new(cfg: &Config) -> Result<Self, StartError> {
        let given = match (&cfg.jwt_secret, &cfg.jwt_secret_file) {
            (_, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartError::Config(format!(
                        "cannot read HERALD_JWT_SECRET_FILE {}: {e}",
                        path.display()
                    ))
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (Some(s), None) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let secret = match given {
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                return Err(StartError::Config(format!(
                    "the token secret is {} bytes long; it must be at least {MIN_SECRET_BYTES} \
                     (a short HS256 secret can be guessed offline from a single token)",
                    s.len()
                )))
            }
            Some(s) => s,
            None => {
                tracing::warn!(
                    "HERALD_JWT_SECRET is not set: signing tokens with a random secret; \
                     they stop working when Herald restarts"
                );
                format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
            }
        };
        check_exposure(cfg)?;
        if cfg.auth == AuthMode::Off {
            tracing::warn!(
                "HERALD_AUTH=off: EVERY INBOX IS OPEN TO ANYONE, and anyone can send as \
                 anyone. Use this for local experiments only."
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &cfg.jwt_issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &cfg.jwt_audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        } else {
            // jsonwebtoken refuses any `aud` unless told which to accept.
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        // Small clock differences between an identity provider and Herald.
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl: Duration::from_secs(cfg.token_ttl_secs.max(60)),
            mode: cfg.auth,
            demo_sign_in: cfg.demo_sign_in,
            secure_cookie: cfg.cookie_secure,
            issuer: cfg.jwt_issuer.clone(),
            audience: cfg.jwt_audience.clone(),
        })
    }

    /// Whether every route is open (`HERALD_AUTH=off`).
    pub fn is_open(&self) -> bool {
        self.mode == AuthMode::Off
    }

    /// Whether the demo sign-in may mint tokens.
    pub fn demo_sign_in(&self) -> bool {
        self.demo_sign_in
    }

    /// A token for `user_id`, valid for the configured lifetime.
    pub fn mint(&self, user_id: i64) -> Result<String, ServiceError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: Some(now),
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            name: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            ServiceError::Internal
        })
    }

    /// The user a token names, if its signature, expiry and subject hold.
    pub fn verify(&self, token: &str) -> Result<i64, ServiceError> {
        self.verify_named(token).map(|(id, _)| id)
    }

    /// The user a token names and its `name` claim, if the token is valid.
    pub fn verify_named(&self, token: &str) -> Result<(i64, Option<String>), ServiceError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired; sign in again",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
                    ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not accepted",
                    ErrorKind::InvalidAudience => "the token's audience (`aud`) is not accepted",
                    ErrorKind::InvalidSignature => "the token's signature is not valid",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (`sub`, `exp`, and `iss` / `aud` \
                         when the server checks them)"
                    }
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    _ => "the token is malformed",
                };
                ServiceError::Unauthorized(why.into())
            })?;
        let id = data.claims.sub.parse::<i64>().ok().filter(|id| *id > 0);
        let id = id.ok_or_else(|| {
            ServiceError::Unauthorized("the token's `sub` is not a user id".into())
        })?;
        Ok((id, data.claims.name))
    }

    /// When the token of these headers stops being accepted (its `exp`
    /// plus the clock leeway), if they carry a valid one. A stream opened
    /// with it ends then: the browser reconnects with whatever cookie it
    /// has by then, and a revoked or expired session gets its 401.
    pub fn expiry(&self, headers: &HeaderMap) -> Option<SystemTime> {
        let token = token_from(headers).ok()??;
        let data = jsonwebtoken::decode::<Claims>(&token, &self.decoding, &self.validation).ok()?;
        // Validation compares whole seconds: the token passes through the
        // second `exp + leeway`, and fails from the next one.
        Some(UNIX_EPOCH + Duration::from_secs(data.claims.exp + self.validation.leeway + 1))
    }

    /// Who sent a request with these headers. A present token must be
    /// valid even when auth is off (a broken token is a bug worth hearing
    /// about); a missing one is [`Principal::Anyone`] only when auth is off.
    pub fn principal(&self, headers: &HeaderMap) -> Result<Principal, ServiceError> {
        self.principal_named(headers).map(|(who, _)| who)
    }

    /// [`Self::principal`] with the token's `name` claim, if any.
    pub fn principal_named(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Principal, Option<String>), ServiceError> {
        match token_from(headers)? {
            Some(token) => self
                .verify_named(&token)
                .map(|(id, name)| (Principal::User(id), name)),
            None if self.is_open() => Ok((Principal::Anyone, None)),
            None => Err(ServiceError::Unauthorized(
                "sign in first: send `Authorization: Bearer <token>` or the session cookie".into(),
            )),
        }
    }

    /// `Set-Cookie` value carrying `token`, for the request with these
    /// headers.
    pub fn session_cookie(&self, token: &str, headers: &HeaderMap) -> String {
        let secure = match self.secure_cookie {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => came_over_https(headers),
        };
        let name = if secure { SECURE_COOKIE } else { COOKIE };
        cookie(name, token, self.ttl, secure)
    }

    /// `Set-Cookie` values that remove the session cookie, under either
    /// name.
    pub fn clear_cookies(&self) -> Vec<String> {
        vec![
            cookie(COOKIE, "", Duration::ZERO, false),
            cookie(SECURE_COOKIE, "", Duration::ZERO, true),
        ]
    }
}

fn cookie(name: &'static str, value: &str, ttl: Duration, secure: bool) -> String {
    Cookie::build((name, value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie_duration(ttl))
        .build()
        .to_string()
}

/// Whether a proxy in front says the request came over HTTPS (Herald itself
/// serves plain HTTP). A client that lies only gets a cookie its browser
/// will not send back over plain HTTP.
fn came_over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

fn cookie_duration(d: Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(d.as_secs() as i64)
}

/// The token of a request: the `Authorization: Bearer` header wins over the
/// cookie. A non-Bearer `Authorization` header is an error, not ignored.
fn token_from(headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ServiceError::Unauthorized(
                "the Authorization header must be `Bearer <token>`".into(),
            ));
        }
        return Ok(Some(token.to_owned()));
    }
    let jar = CookieJar::from_headers(headers);
    Ok([SECURE_COOKIE, COOKIE]
        .into_iter()
        .filter_map(|name| jar.get(name))
        .map(|c| c.value().to_owned())
        .find(|v| !v.is_empty()))
}

/// The API key of `Authorization: Bearer hk_…`, if that is what the
/// header holds (tokens never start with `hk_`: a JWT starts with `eyJ`).
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && key.starts_with(crate::keys::PREFIX)).then_some(key)
}

/// The demo sign-in and `HERALD_AUTH=off` let anyone act as anyone: only
/// on a loopback address, unless `HERALD_ALLOW_INSECURE_PUBLIC` says the
/// operator means it (then logged at every start).
fn check_exposure(cfg: &Config) -> Result<(), StartError> {
    let open = match (cfg.auth, cfg.demo_sign_in) {
        (AuthMode::Off, _) => "HERALD_AUTH=off",
        (AuthMode::On, true) => "HERALD_DEMO_SIGN_IN=true",
        (AuthMode::On, false) => return Ok(()),
    };
    let addr = cfg.site_addr.ip();
    if addr.is_loopback() {
        return Ok(());
    }
    if cfg.allow_insecure_public {
        tracing::warn!(
            %addr,
            "{open} on a public address (HERALD_ALLOW_INSECURE_PUBLIC=true): \
             anyone who reaches it can act as any user"
        );
        return Ok(());
    }
    Err(StartError::Config(format!(
        "{open} lets anyone act as any user, so it is only allowed on a loopback address, \
         not {addr}; switch it off, serve on 127.0.0.1, or set \
         HERALD_ALLOW_INSECURE_PUBLIC=true if you mean it"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(mode: AuthMode) -> Auth {
        let mut cfg = Config::defaults();
        cfg.jwt_secret = Some("unit-test-secret-of-thirty-two-bytes".into());
        cfg.auth = mode;
        Auth::new(&cfg).unwrap()
    }

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_and_cookie_both_identify_the_user() {
        let a = auth(AuthMode::On);
        let t = a.mint(3).unwrap();
        let bearer = headers(header::AUTHORIZATION, &format!("Bearer {t}"));
        assert_eq!(a.principal(&bearer).unwrap(), Principal::User(3));
        let cookie = headers(header::COOKIE, &format!("other=1; {COOKIE}={t}"));
        assert_eq!(a.principal(&cookie).unwrap(), Principal::User(3));
    }

    #[test]
    fn missing_forged_and_foreign_tokens_are_refused() {
        let a = auth(AuthMode::On);
        assert!(matches!(
            a.principal(&HeaderMap::new()),
            Err(ServiceError::Unauthorized(_))
        ));
        let other = {
            let mut cfg = Config::defaults();
            cfg.jwt_secret = Some("another-secret-of-thirty-two-bytes".into());
            Auth::new(&cfg).unwrap()
        };
        let forged = other.mint(1).unwrap();
        let err = a
            .principal(&headers(header::AUTHORIZATION, &format!("Bearer {forged}")))
            .unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        let basic = headers(header::AUTHORIZATION, "Basic dXNlcjpwYXNz");
        assert!(a.principal(&basic).is_err());
    }

    #[test]
    fn open_mode_still_reads_tokens_but_needs_none() {
        let a = auth(AuthMode::Off);
        assert_eq!(a.principal(&HeaderMap::new()).unwrap(), Principal::Anyone);
        let t = a.mint(2).unwrap();
        let h = headers(header::AUTHORIZATION, &format!("Bearer {t}"));
        assert_eq!(a.principal(&h).unwrap(), Principal::User(2));
    }

    #[test]
    fn short_secrets_are_refused_and_a_secret_file_works() {
        let mut cfg = Config::defaults();
        cfg.jwt_secret = Some("x".repeat(MIN_SECRET_BYTES - 1));
        let err = Auth::new(&cfg).err().expect("31 bytes refused");
        assert!(err.to_string().contains("at least 32"), "{err}");
        cfg.jwt_secret = Some("x".repeat(MIN_SECRET_BYTES));
        let from_env = Auth::new(&cfg).unwrap();

        // The same secret from a file (with its newline) makes the same keys.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{}\n", "x".repeat(MIN_SECRET_BYTES))).unwrap();
        cfg.jwt_secret = None;
        cfg.jwt_secret_file = Some(path.clone());
        let from_file = Auth::new(&cfg).unwrap();
        let t = from_env.mint(4).unwrap();
        let h = headers(header::AUTHORIZATION, &format!("Bearer {t}"));
        assert_eq!(from_file.principal(&h).unwrap(), Principal::User(4));

        std::fs::write(&path, "short\n").unwrap();
        assert!(Auth::new(&cfg).is_err(), "a short file is refused too");
        cfg.jwt_secret_file = Some(dir.path().join("missing"));
        let err = Auth::new(&cfg).err().expect("missing file");
        assert!(err.to_string().contains("HERALD_JWT_SECRET_FILE"), "{err}");
    }

    /// A token signed with the unit-test secret carrying `claims`.
    fn signed(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(b"unit-test-secret-of-thirty-two-bytes");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn issuer_audience_and_not_before_are_checked() {
        let mut cfg = Config::defaults();
        cfg.jwt_secret = Some("unit-test-secret-of-thirty-two-bytes".into());
        cfg.jwt_issuer = Some("https://id.example".into());
        cfg.jwt_audience = Some("herald".into());
        let a = Auth::new(&cfg).unwrap();
        let verify = |claims: serde_json::Value| a.verify(&signed(claims));
        let exp = now() + 600;
        let good = serde_json::json!({"sub": "1", "exp": exp, "iss": "https://id.example", "aud": "herald"});
        assert_eq!(verify(good.clone()).unwrap(), 1);
        // Demo tokens carry both, so they pass too.
        assert_eq!(a.verify(&a.mint(2).unwrap()).unwrap(), 2);
        for (claims, why) in [
            (
                serde_json::json!({"sub": "1", "exp": exp, "iss": "https://evil.example", "aud": "herald"}),
                "issuer",
            ),
            (
                serde_json::json!({"sub": "1", "exp": exp, "aud": "herald"}),
                "required claim",
            ),
            (
                serde_json::json!({"sub": "1", "exp": exp, "iss": "https://id.example", "aud": "billing"}),
                "audience",
            ),
            (
                serde_json::json!({"sub": "1", "exp": exp, "iss": "https://id.example"}),
                "required claim",
            ),
        ] {
            let err = verify(claims.clone()).unwrap_err();
            assert!(err.to_string().contains(why), "{claims} -> {err}");
        }
        let mut early = good;
        early["nbf"] = (now() + 300).into();
        let err = verify(early).unwrap_err();
        assert!(err.to_string().contains("not valid yet"), "{err}");

        // Without the settings, neither claim is needed, and an `aud` a
        // provider adds anyway does not lock users out.
        let plain = auth(AuthMode::On);
        let any_aud = serde_json::json!({"sub": "3", "exp": exp, "aud": "whatever"});
        assert_eq!(plain.verify(&signed(any_aud)).unwrap(), 3);
        let late = serde_json::json!({"sub": "3", "exp": exp, "nbf": now() + 300});
        assert!(
            plain.verify(&signed(late)).is_err(),
            "nbf holds without settings too"
        );
    }

    #[test]
    fn anyone_as_anyone_is_refused_off_loopback_unless_asked_for() {
        let mut cfg = Config::defaults();
        assert!(!cfg.demo_sign_in, "demo sign-in is off by default");
        cfg.site_addr = "0.0.0.0:3000".parse().unwrap();
        assert!(Auth::new(&cfg).is_ok(), "tokens only: fine anywhere");
        cfg.demo_sign_in = true;
        let err = Auth::new(&cfg).err().expect("demo sign-in on 0.0.0.0");
        assert!(err.to_string().contains("HERALD_DEMO_SIGN_IN"), "{err}");
        cfg.demo_sign_in = false;
        cfg.auth = AuthMode::Off;
        let err = Auth::new(&cfg).err().expect("auth off on 0.0.0.0");
        assert!(err.to_string().contains("HERALD_AUTH=off"), "{err}");
        cfg.allow_insecure_public = true;
        assert!(Auth::new(&cfg).is_ok(), "the operator said so");
        cfg.allow_insecure_public = false;
        for loopback in ["127.0.0.1:3000", "[::1]:3000"] {
            cfg.site_addr = loopback.parse().unwrap();
            assert!(Auth::new(&cfg).is_ok(), "{loopback}");
        }
    }

    #[test]
    fn the_cookie_is_http_only_and_lax() {
        let c = auth(AuthMode::On).session_cookie("abc", &HeaderMap::new());
        assert!(c.starts_with(&format!("{COOKIE}=abc")), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
        assert!(!c.contains("Secure"), "plain HTTP: {c}");
    }

    #[test]
    fn over_https_the_cookie_is_secure_and_host_only() {
        let a = auth(AuthMode::On);
        for (name, value) in [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "HTTPS, http"),
            ("forwarded", "for=10.0.0.1;proto=https;host=herald.example"),
        ] {
            let c = a.session_cookie(
                "abc",
                &headers(header::HeaderName::from_static(name), value),
            );
            assert!(
                c.starts_with(&format!("{SECURE_COOKIE}=abc")),
                "{name}: {c}"
            );
            assert!(c.contains("Secure") && c.contains("Path=/"), "{c}");
            assert!(!c.contains("Domain"), "a __Host- cookie has no domain: {c}");
        }
        let plain = headers(header::HeaderName::from_static("x-forwarded-proto"), "http");
        assert!(a.session_cookie("abc", &plain).starts_with(COOKIE));
        // Either name signs in; sign-out clears both.
        let t = a.mint(2).unwrap();
        let h = headers(header::COOKIE, &format!("{SECURE_COOKIE}={t}"));
        assert_eq!(a.principal(&h).unwrap(), Principal::User(2));
        let cleared = a.clear_cookies();
        assert!(
            cleared[0].starts_with(&format!("{COOKIE}=;")),
            "{cleared:?}"
        );
        assert!(
            cleared[1].starts_with(&format!("{SECURE_COOKIE}=;")),
            "{cleared:?}"
        );
        // The setting overrides what the request says.
        let mut cfg = Config::defaults();
        cfg.cookie_secure = CookieSecure::Always;
        let always = Auth::new(&cfg).unwrap();
        assert!(always
            .session_cookie("abc", &HeaderMap::new())
            .starts_with(SECURE_COOKIE));
        cfg.cookie_secure = CookieSecure::Never;
        let never = Auth::new(&cfg).unwrap();
        let https = headers(
            header::HeaderName::from_static("x-forwarded-proto"),
            "https",
        );
        assert!(never.session_cookie("abc", &https).starts_with(COOKIE));
    }
}
