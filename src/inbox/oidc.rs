//! Sign-in to the inbox through an OpenID Connect provider (`[inbox.oidc]`).
//!
//! The authorization code flow with PKCE: `GET /login/oidc` discovers the
//! provider (its metadata and signing keys, kept for five minutes), keeps
//! the PKCE verifier and the nonce under a random state for ten minutes,
//! binds that state to the browser with a short-lived cookie, and sends the
//! browser to the provider. `GET /login/oidc/callback` takes the state back
//! exactly once, refuses it from any other browser, exchanges the code,
//! and accepts the ID token only when its signature checks against the
//! provider's published keys (asymmetric algorithms only) and its issuer,
//! audience, expiry and nonce are right.
//!
//! Who the person is comes from the configuration, never from the provider
//! alone: the `sub` of an `[[identity]] oidc_subject`, else the verified
//! email of an `[[identity]] oidc_email`, else the `[[inbox.oidc.map]]`
//! rules that turn a group named in the groups claim into an approver or
//! auditor role with the approver groups the rule lists. A person matched
//! by nothing gets no session. No claim can make anyone an admin or an
//! agent, and no claim adds a group that the configuration did not name.
//!
//! After sign-in the browser holds the inbox's own session cookie, as with
//! a password login: the CSRF token, the lifetime and the logout are the
//! same.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

use super::web::{self, escape};
use super::Inbox;
use crate::identity::{Identity, Role};

/// The browser's half of a sign-in in progress: the state it was sent
/// off with. Scoped to the login paths and sent on the provider's
/// redirect back (SameSite=Lax: that redirect is a cross-site navigation).
const STATE_COOKIE: &str = "airlock_oidc";
const STATE_LIFETIME: Duration = Duration::from_secs(600);
const METADATA_LIFETIME: Duration = Duration::from_secs(300);
/// An ID token signed with a key id not among the cached keys fetches
/// them again, but not more often than this.
const KEYS_REFETCH_AFTER: Duration = Duration::from_secs(10);
/// Unfinished sign-ins kept at most; anyone can start one, so the table
/// is bounded.
const MAX_PENDING: usize = 10_000;

/// `[inbox.oidc]`, checked.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: IssuerUrl,
    pub client_id: ClientId,
    /// `None`: a public client that proves itself with PKCE alone.
    pub client_secret: Option<ClientSecret>,
    /// `None`: the inbox's public URL + `/login/oidc/callback`.
    pub redirect_url: Option<RedirectUrl>,
    /// Requested besides `openid`.
    pub scopes: Vec<String>,
    /// The ID-token claim that lists the person's groups.
    pub groups_claim: String,
    /// What the login page's button says.
    pub label: String,
    /// `sub` → identity name (`[[identity]] oidc_subject`).
    pub subjects: HashMap<String, String>,
    /// Lower-cased email → identity name (`[[identity]] oidc_email`).
    pub emails: HashMap<String, String>,
    /// `[[inbox.oidc.map]]`, in file order.
    pub map: Vec<ClaimGrant>,
}

/// One `[[inbox.oidc.map]]` rule: people whose groups claim lists
/// `claim_group` work in the inbox as `role` (approver or auditor) in the
/// approver `groups` listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimGrant {
    pub claim_group: String,
    pub role: Role,
    pub groups: Vec<String>,
}

/// What the provider says about the person, from a verified ID token.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
}

/// Who a verified sign-in is in this gateway.
#[derive(Clone, Debug)]
pub enum Person {
    /// An `[[identity]]` by name, matched by subject or verified email.
    Configured(String),
    /// Made from `[[inbox.oidc.map]]` rules for this session only.
    Mapped(Box<Identity>),
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or described itself wrongly: {0}")]
    Discovery(String),
    #[error("this sign-in was not started in this browser")]
    StateMismatch,
    #[error("this sign-in expired or was already used")]
    UnknownState,
    #[error("too many sign-ins are in progress; try again in a minute")]
    Busy,
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the code could not be exchanged for tokens: {0}")]
    Exchange(String),
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error("{0}")]
    NoAccess(String),
    #[error("the access token was refused: {0}")]
    AccessToken(String),
}

impl OidcError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Discovery(_) | Self::Exchange(_) => StatusCode::BAD_GATEWAY,
            Self::StateMismatch | Self::UnknownState => StatusCode::BAD_REQUEST,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Provider(_) | Self::NoIdToken | Self::IdToken(_) | Self::AccessToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::NoAccess(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// The claims beyond the standard ones, by name: the groups claim's name
/// is configurable, so they are read as a map.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub claims: HashMap<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

type IdTokenFields = openidconnect::IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdTokenFields, CoreTokenType>;
type Client = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// ID tokens signed with a shared secret or not signed at all are refused:
/// only the provider's published keys vouch for a person.
const SIGNING_ALGORITHMS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

struct PendingSignIn {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    expires: Instant,
}

/// The inbox's side of OpenID Connect: configuration, the provider's
/// metadata, and sign-ins in progress.
pub struct Sso {
    config: OidcConfig,
    redirect: RedirectUrl,
    secure_cookies: bool,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, CoreProviderMetadata)>>,
    pending: Mutex<HashMap<String, PendingSignIn>>,
}

impl Sso {
    /// `public_url` is where people open the inbox (for the default
    /// redirect URL).
    pub fn new(config: OidcConfig, public_url: &str) -> Result<Self, OidcError> {
        let redirect = match &config.redirect_url {
            Some(r) => r.clone(),
            None => RedirectUrl::new(format!(
                "{}/login/oidc/callback",
                public_url.trim_end_matches('/')
            ))
            .map_err(|e| OidcError::Discovery(format!("redirect URL: {e}")))?,
        };
        let http = openidconnect::reqwest::Client::builder()
            // The provider's answers are read where they come from: a
            // redirect would let a document send the gateway elsewhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        Ok(Self {
            secure_cookies: redirect.as_str().starts_with("https://"),
            config,
            redirect,
            http,
            metadata: Default::default(),
            pending: Default::default(),
        })
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    /// The provider's metadata and keys, discovered again when older than
    /// five minutes (keys rotate).
    async fn client(&self) -> Result<Client, OidcError> {
        Ok(Client::from_provider_metadata(
            self.provider().await?,
            self.config.client_id.clone(),
            self.config.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// The provider's metadata with its keys (see [`Sso::client`]).
    async fn provider(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < METADATA_LIFETIME);
        if !fresh {
            // Discovery refuses a document whose issuer is not the one
            // configured.
            let metadata =
                CoreProviderMetadata::discover_async(self.config.issuer.clone(), &self.http)
                    .await
                    .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
            *cached = Some((Instant::now(), metadata));
        }
        cached
            .as_ref()
            .map(|(_, m)| m.clone())
            .ok_or_else(|| OidcError::Discovery("no metadata".into()))
    }

    /// Drops the cached metadata if it is older than `age`; whether it did.
    async fn forget_metadata_older_than(&self, age: Duration) -> bool {
        let mut cached = self.metadata.lock().await;
        let old = cached.as_ref().is_some_and(|(at, _)| at.elapsed() >= age);
        if old {
            *cached = None;
        }
        old
    }

    /// The provider's authorization URL for a new sign-in, and its state.
    async fn start(&self) -> Result<(String, String), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, p| p.expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(OidcError::Busy);
        }
        pending.insert(
            state.secret().clone(),
            PendingSignIn {
                verifier,
                nonce,
                expires: now + STATE_LIFETIME,
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// Checks the provider's answer and says who signed in.
    async fn finish(
        &self,
        browser_state: Option<&str>,
        answer: Callback,
    ) -> Result<(Person, Claims), OidcError> {
        // RFC 9207: a provider that names itself in its answer must be the
        // one configured (an answer from another provider is a mix-up).
        if let Some(iss) = &answer.iss {
            if iss.trim_end_matches('/') != self.config.issuer.as_str().trim_end_matches('/') {
                return Err(OidcError::Provider(format!(
                    "the answer comes from issuer `{iss}`, not the configured one"
                )));
            }
        }
        if let Some(error) = answer.error {
            let detail = answer.error_description.unwrap_or_default();
            return Err(OidcError::Provider(
                format!("{error} {detail}").trim().to_string(),
            ));
        }
        let state = answer.state.unwrap_or_default();
        // The state must come back to the browser that was sent off with
        // it: a code from someone else's sign-in is not accepted here.
        if !browser_state.is_some_and(|b| web::constant_eq(b, &state)) {
            return Err(OidcError::StateMismatch);
        }
        let pending = {
            let mut all = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            all.remove(&state)
        };
        let Some(pending) = pending.filter(|p| p.expires > Instant::now()) else {
            return Err(OidcError::UnknownState);
        };
        let code = answer.code.filter(|c| !c.is_empty()).ok_or_else(|| {
            OidcError::Provider("the provider's answer carries no authorization code".into())
        })?;
        let client = self.client().await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        use openidconnect::TokenResponse as _;
        let id_token = tokens.id_token().ok_or(OidcError::NoIdToken)?;
        let refreshed: Client;
        let verified = match id_token.claims(&verifier(&client), &pending.nonce) {
            // A key id we do not know yet: the provider may have rotated
            // its keys since they were fetched. Fetch them again, once.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.forget_metadata_older_than(KEYS_REFETCH_AFTER).await => {
                refreshed = self.client().await?;
                id_token.claims(&verifier(&refreshed), &pending.nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        let claims = Claims {
            subject: verified.subject().as_str().to_string(),
            email: verified.email().map(|e| e.as_str().to_string()),
            email_verified: verified.email_verified().unwrap_or(false),
            groups: groups_of(
                verified
                    .additional_claims()
                    .claims
                    .get(&self.config.groups_claim),
            ),
        };
        let person = map(&self.config, &claims)?;
        Ok((person, claims))
    }
}

impl Sso {
    /// The provider's issuer URL.
    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The subject of an OAuth access token the provider issued for
    /// `resource`: an RFC 9068 JWT (`typ` `at+jwt`, so that an ID token
    /// is never taken for one) signed with one of the provider's published
    /// keys by an asymmetric algorithm, from the configured issuer, whose
    /// audience names `resource` (RFC 8707: a token meant for another
    /// server does not open this one), and not expired.
    pub async fn access_token_subject(
        &self,
        token: &str,
        resource: &str,
    ) -> Result<String, OidcError> {
        use std::str::FromStr;
        type AccessToken = openidconnect::IdToken<
            ExtraClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >;
        let parsed =
            AccessToken::from_str(token).map_err(|e| OidcError::AccessToken(e.to_string()))?;
        let at_jwt = openidconnect::JsonWebTokenType::new("at+jwt".into())
            .normalize()
            .map_err(|e| OidcError::AccessToken(e.to_string()))?;
        let check = |provider: &CoreProviderMetadata| {
            let verifier = openidconnect::IdTokenVerifier::new_public_client(
                ClientId::new(resource.to_string()),
                self.config.issuer.clone(),
                provider.jwks().clone(),
            )
            .set_allowed_algs(SIGNING_ALGORITHMS)
            .set_allowed_jose_types([at_jwt.clone()]);
            parsed
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .map(|c| c.subject().as_str().to_string())
        };
        let subject = match check(&self.provider().await?) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.forget_metadata_older_than(KEYS_REFETCH_AFTER).await => {
                check(&self.provider().await?)
            }
            other => other,
        };
        subject.map_err(|e| OidcError::AccessToken(error_chain(&e)))
    }
}

/// What checks the provider's ID tokens for `client`.
fn verifier(client: &Client) -> openidconnect::IdTokenVerifier<'_, CoreJsonWebKey> {
    client
        .id_token_verifier()
        .set_allowed_algs(SIGNING_ALGORITHMS)
}

/// A groups claim as a list of names: an array of strings, or one string.
/// Anything else lists no group.
fn groups_of(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// Who `claims` are in this gateway: the configured identity with this
/// subject, else the one with this verified email, else what the map rules
/// grant for the claimed groups; refused when nothing matches.
pub fn map(config: &OidcConfig, claims: &Claims) -> Result<Person, OidcError> {
    if let Some(name) = config.subjects.get(&claims.subject) {
        return Ok(Person::Configured(name.clone()));
    }
    // An email the provider has not verified could be anyone's.
    if claims.email_verified {
        if let Some(name) = claims
            .email
            .as_deref()
            .and_then(|e| config.emails.get(&e.to_lowercase()))
        {
            return Ok(Person::Configured(name.clone()));
        }
    }
    let mut role = None;
    let mut groups: Vec<String> = Vec::new();
    for rule in config
        .map
        .iter()
        .filter(|r| claims.groups.iter().any(|g| g == &r.claim_group))
    {
        // Approver outranks auditor; the configuration admits no others.
        role = match (role, rule.role) {
            (Some(Role::Approver), _) | (_, Role::Approver) => Some(Role::Approver),
            _ => Some(Role::Auditor),
        };
        if rule.role == Role::Approver {
            for g in &rule.groups {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
    }
    let who = shown_name(claims);
    let Some(role) = role else {
        return Err(OidcError::NoAccess(format!(
            "You signed in at the identity provider as {who}, but this gateway grants that account nothing: ask an Airlock admin to map it (oidc_subject or oidc_email on an [[identity]], or a [[inbox.oidc.map]] rule for one of its groups)."
        )));
    };
    Ok(Person::Mapped(Box::new(session_identity(
        format!("sso:{who}"),
        role,
        groups,
    ))))
}

/// The verified email, else the subject: what the person is called in
/// votes, History and the audit log (prefixed `sso:` so that no configured
/// identity's name can be taken).
fn shown_name(claims: &Claims) -> String {
    match &claims.email {
        Some(e) if claims.email_verified && !e.is_empty() => e.to_lowercase(),
        _ => claims.subject.clone(),
    }
}

/// An identity that exists only in one inbox session: no database login,
/// no password, no token.
fn session_identity(name: String, role: Role, groups: Vec<String>) -> Identity {
    let unusable = crate::hex::encode(&rand::random::<[u8; 32]>());
    Identity {
        name,
        role,
        groups,
        verifier: crate::identity::ScramVerifier::generate(&unusable, 4096),
        api_token_hash: None,
        mcp_token_hash: None,
        mcp_oauth_subject: None,
        mcp_limits: Default::default(),
        slack_user: None,
        inbox_password_hash: None,
        mysql: Default::default(),
        databases: Some(Vec::new()),
        database_login: false,
        confinement: Default::default(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

// ---- handlers ----------------------------------------------------------------

fn failure(inbox: &Inbox, e: &OidcError) -> Response {
    let sso = inbox.sso.as_deref();
    let body = format!(
        r#"<p class="error" id="login-error">{}</p><p><a href="/login">Back to the login page</a></p>"#,
        escape(&e.to_string())
    );
    (
        e.status(),
        [(header::SET_COOKIE, clear_state_cookie(sso))],
        web::page("Sign-in refused", None, &body),
    )
        .into_response()
}

fn clear_state_cookie(sso: Option<&Sso>) -> String {
    let secure = if sso.is_some_and(|s| s.secure_cookies) {
        "; Secure"
    } else {
        ""
    };
    format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age=0{secure}")
}

/// `GET /login/oidc`: off to the provider.
pub async fn start(Extract(inbox): Extract<Inbox>) -> Response {
    let Some(sso) = inbox.sso.clone() else {
        return (StatusCode::NOT_FOUND, "single sign-on is not configured").into_response();
    };
    match sso.start().await {
        Ok((url, state)) => {
            let secure = if sso.secure_cookies { "; Secure" } else { "" };
            (
                [(
                    header::SET_COOKIE,
                    format!(
                        "{STATE_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age={}{secure}",
                        STATE_LIFETIME.as_secs()
                    ),
                )],
                Redirect::to(&url),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on could not start");
            failure(&inbox, &e)
        }
    }
}

#[derive(Deserialize)]
pub struct Callback {
    iss: Option<String>,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /login/oidc/callback`: the provider's answer.
pub async fn callback(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(sso) = inbox.sso.clone() else {
        return (StatusCode::NOT_FOUND, "single sign-on is not configured").into_response();
    };
    let browser_state = web::cookie_value(&headers, STATE_COOKIE);
    let (person, claims) = match sso.finish(browser_state, answer).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on refused");
            return failure(&inbox, &e);
        }
    };
    let (session, name) = match person {
        Person::Configured(name) => match inbox.identities.get(&name) {
            Some(i) if i.role != Role::Agent => (inbox.web.open(&i.name), i.name.clone()),
            _ => {
                let e = OidcError::NoAccess(format!(
                    "The identity {name} this account maps to cannot use the inbox."
                ));
                tracing::warn!(subject = %claims.subject, identity = %name, "single sign-on refused");
                return failure(&inbox, &e);
            }
        },
        Person::Mapped(identity) => {
            let name = identity.name.clone();
            (inbox.web.open_for(*identity), name)
        }
    };
    tracing::info!(
        user = %name,
        subject = %claims.subject,
        groups = ?claims.groups,
        "inbox login through single sign-on"
    );
    // The session cookie is SameSite=Strict, and this answer is the end of
    // a navigation that started at the provider: the browser would not send
    // the cookie on a redirect from here, so a page of our own moves on.
    let body = format!(
        r#"<p>Signed in as <b id="signed-in-as">{}</b>. <a href="/" id="continue">Continue to the inbox</a></p>"#,
        escape(&name)
    );
    let mut response = (
        StatusCode::OK,
        [(header::REFRESH, "0; url=/")],
        web::page("Signed in", None, &body),
    )
        .into_response();
    let headers = response.headers_mut();
    for cookie in [
        web::session_cookie(&inbox, &session.0),
        clear_state_cookie(Some(&sso)),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: IssuerUrl::new("https://idp.example".into()).unwrap(),
            client_id: ClientId::new("airlock".into()),
            client_secret: None,
            redirect_url: None,
            scopes: vec![],
            groups_claim: "groups".into(),
            label: "SSO".into(),
            subjects: [("sub-dba1".to_string(), "dba1".to_string())].into(),
            emails: [("dba2@example.com".to_string(), "dba2".to_string())].into(),
            map: vec![
                ClaimGrant {
                    claim_group: "db-approvers".into(),
                    role: Role::Approver,
                    groups: vec!["dba".into()],
                },
                ClaimGrant {
                    claim_group: "db-readers".into(),
                    role: Role::Auditor,
                    groups: vec![],
                },
                ClaimGrant {
                    claim_group: "payments".into(),
                    role: Role::Approver,
                    groups: vec!["payments".into()],
                },
            ],
        }
    }

    fn claims(sub: &str, email: Option<&str>, verified: bool, groups: &[&str]) -> Claims {
        Claims {
            subject: sub.into(),
            email: email.map(Into::into),
            email_verified: verified,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn mapped(result: Result<Person, OidcError>) -> Identity {
        match result {
            Ok(Person::Mapped(i)) => *i,
            other => panic!("expected a mapped identity, got {other:?}"),
        }
    }

    #[test]
    fn the_subject_wins_and_a_verified_email_comes_next() {
        let c = config();
        let r = map(&c, &claims("sub-dba1", Some("dba2@example.com"), true, &[]));
        assert!(matches!(r, Ok(Person::Configured(n)) if n == "dba1"));
        let r = map(&c, &claims("other", Some("DBA2@Example.com"), true, &[]));
        assert!(matches!(r, Ok(Person::Configured(n)) if n == "dba2"));
    }

    #[test]
    fn an_unverified_email_maps_to_nobody() {
        let r = map(
            &config(),
            &claims("other", Some("dba2@example.com"), false, &[]),
        );
        assert!(matches!(r, Err(OidcError::NoAccess(_))), "{r:?}");
    }

    #[test]
    fn unknown_people_and_unmapped_groups_get_nothing() {
        let c = config();
        for groups in [&[][..], &["admin", "dba", "approver", "Admins"][..]] {
            let r = map(&c, &claims("stranger", None, false, groups));
            assert!(
                matches!(r, Err(OidcError::NoAccess(_))),
                "{groups:?}: {r:?}"
            );
        }
    }

    #[test]
    fn rules_grant_only_what_they_name() {
        let c = config();
        let i = mapped(map(
            &c,
            &claims(
                "s1",
                Some("Alice@Example.com"),
                true,
                &["db-readers", "db-approvers"],
            ),
        ));
        assert_eq!(i.name, "sso:alice@example.com");
        assert_eq!(i.role, Role::Approver);
        assert_eq!(i.groups, vec!["dba".to_string()]);
        assert!(!i.database_login);
        let i = mapped(map(
            &c,
            &claims("s2", Some("x@example.com"), false, &["db-readers"]),
        ));
        assert_eq!(i.name, "sso:s2");
        assert_eq!(i.role, Role::Auditor);
        assert!(i.groups.is_empty());
        let i = mapped(map(
            &c,
            &claims("s3", None, false, &["payments", "db-approvers"]),
        ));
        // In file order, each once.
        assert_eq!(i.groups, vec!["dba".to_string(), "payments".to_string()]);
    }

    #[test]
    fn a_groups_claim_is_a_list_or_one_name() {
        assert_eq!(
            groups_of(Some(&serde_json::json!(["a", 1, "b"]))),
            ["a", "b"]
        );
        assert_eq!(groups_of(Some(&serde_json::json!("a"))), ["a"]);
        assert!(groups_of(Some(&serde_json::json!({"a": true}))).is_empty());
        assert!(groups_of(None).is_empty());
    }
}
