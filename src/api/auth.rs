//! Authentication and authorisation of every HTTP request.
//!
//! - [`authenticate`] (outermost layer) resolves who is asking: a bearer token
//!   (`Authorization: Bearer vgl_...`, for integrations) or the `vigil_session` cookie of
//!   a browser that logged in with `POST /api/login`. A bad token is refused at once
//!   (401, audited, rate-limited per client address); an ended session just leaves the
//!   request anonymous.
//! - [`require`] (a route layer on each group of routes) lets through only principals
//!   with the group's role or a higher one, and, for state-changing requests made with a
//!   session cookie, only with the session's CSRF token in `X-CSRF-Token`.
//! - `POST /api/login`, `POST /api/logout`, `GET /api/session` and the login page.
//!
//! Only `/health`, the login page and `POST /api/login` are open to anonymous callers;
//! `/` redirects them to the login page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, blocking};
use crate::auth::limiter::Limiter;
use crate::auth::session::{Sessions, password_fp, same_secret};
use crate::auth::{AuthData, CachedAuth, Role};

pub const COOKIE: &str = "vigil_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Everything the API needs to tell who is asking.
pub struct Gate {
    pub store: CachedAuth,
    pub sessions: Sessions,
    /// Failed logins per user name.
    pub limiter: Limiter,
    /// Failed logins per client address, with four times the allowance (several people
    /// may share an address).
    pub ip_limiter: Limiter,
    /// Bad bearer tokens per client address: 100 a minute, then a minute's pause. Tokens
    /// cannot be guessed; this only keeps a misconfigured integration from flooding the
    /// audit log, and does not affect logins.
    pub token_limiter: Limiter,
    /// Cookies get `Secure` (the API is served over TLS).
    pub secure_cookies: bool,
}

impl Gate {
    pub fn new(
        storage: &crate::storage::Layout,
        c: &crate::config::ServerConfig,
        tls: bool,
    ) -> Gate {
        Gate {
            store: CachedAuth::new(crate::auth::AuthStore::new(storage)),
            sessions: Sessions::open(
                storage.sessions(),
                c.session_idle,
                c.session_max,
                crate::base::time::now_us(),
            ),
            limiter: Limiter::new(c.login_max_failures, c.lockout, c.lockout),
            ip_limiter: Limiter::new(c.login_max_failures * 4, c.lockout, c.lockout),
            token_limiter: Limiter::new(100, Duration::from_secs(60), Duration::from_secs(60)),
            secure_cookies: tls,
        }
    }
}

/// Who made a request (a request extension once authenticated).
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// How: a session (with its id and CSRF token) or a token (its public id).
    pub via: Via,
}

#[derive(Clone, Debug)]
pub enum Via {
    Session { id: String, csrf: String },
    Token { id: String },
}

/// Marks a request whose session cookie named an ended session.
#[derive(Clone, Copy)]
struct SessionEnded;

/// The client's address (`unknown` when served without connect info, as in benches).
pub(super) fn source(req: &Request) -> String {
    source_addr(req).map_or_else(|| "unknown".into(), |a| a.to_string())
}

fn source_addr(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

fn ip_key(req: &Request) -> String {
    source_addr(req).map_or_else(|| "?".into(), |a| a.ip().to_string())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    // A Cookie header is `a=b; c=d`; parsing it is a split, not worth a crate.
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    ApiError(code, msg.into()).into_response()
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed attempts; try again in {secs} s"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

async fn auth_data(st: &AppState) -> Result<Arc<AuthData>, Response> {
    let gate = st.gate.clone();
    match blocking(move || gate.store.data()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => {
            tracing::error!("{e}");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the user store cannot be read; nobody can be let in until it can",
            ))
        }
        Err(e) => Err(e.into_response()),
    }
}

/// Appends to the audit log from a handler or middleware (errors are logged: the
/// request's own outcome does not depend on them).
pub(super) async fn audit(
    st: &AppState,
    user: &str,
    source: &str,
    action: &'static str,
    params: serde_json::Value,
) {
    let (log, user, source) = (st.audit.clone(), user.to_owned(), source.to_owned());
    match blocking(move || log.append(&user, &source, action, params)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("audit log: {e}"),
        Err(_) => {}
    }
}

pub(super) async fn authenticate(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned());
    let session = cookie(req.headers(), COOKIE);
    if bearer.is_none() && session.is_none() {
        return next.run(req).await;
    }
    let now = Instant::now();
    let ip_key = ip_key(&req);
    let data = match auth_data(&st).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let principal = if let Some(token) = bearer {
        match data.token_user(&token) {
            Some(u) => Principal {
                user: u.name.clone(),
                role: u.role,
                via: Via::Token {
                    id: AuthData::token_id(&token).to_owned(),
                },
            },
            None => {
                // A valid token is never refused; a bad one counts against the address.
                if let Err(wait) = st.gate.token_limiter.check(&ip_key, now) {
                    return too_many(wait);
                }
                st.gate.token_limiter.fail(&ip_key, now);
                let id = AuthData::token_id(&token).to_owned();
                audit(
                    &st,
                    "",
                    &source(&req),
                    "auth.fail",
                    serde_json::json!({ "token": id, "path": req.uri().path() }),
                )
                .await;
                let mut r = error(StatusCode::UNAUTHORIZED, "invalid or revoked API token");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    } else {
        let id = session.unwrap_or_default();
        let user = st
            .gate
            .sessions
            .get(&id, crate::base::time::now_us())
            .ok()
            .and_then(|s| {
                // The user must still exist with the same password.
                let u = data.user(&s.user)?;
                (password_fp(&u.password_hash) == s.password_fp).then(|| (u.clone(), s))
            });
        match user {
            Some((u, s)) => Principal {
                user: u.name,
                role: u.role,
                via: Via::Session { id, csrf: s.csrf },
            },
            None => {
                st.gate.sessions.remove(&id);
                req.extensions_mut().insert(SessionEnded);
                return next.run(req).await;
            }
        }
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Route layer: the principal must have at least role `need`; state-changing requests
/// made with a session must carry its CSRF token.
pub(super) async fn require(State(need): State<Role>, req: Request, next: Next) -> Response {
    let Some(p) = req.extensions().get::<Principal>() else {
        let msg = if req.extensions().get::<SessionEnded>().is_some() {
            "your session has ended; log in again"
        } else {
            "authentication required: log in, or send an API token as \
             Authorization: Bearer vgl_..."
        };
        let mut r = error(StatusCode::UNAUTHORIZED, msg);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    if p.role < need {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the {} role; {} has the {} role",
                role_name(need),
                p.user,
                role_name(p.role)
            ),
        );
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let (false, Via::Session { csrf, .. }) = (safe, &p.via) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(sent, csrf) {
            return error(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header (it comes with the session: GET \
                 /api/session)",
            );
        }
    }
    next.run(req).await
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Investigator => "investigator",
        Role::Admin => "admin",
    }
}

fn session_json(p: &Principal) -> serde_json::Value {
    let (via, csrf) = match &p.via {
        Via::Session { csrf, .. } => ("session", Some(csrf.as_str())),
        Via::Token { .. } => ("token", None),
    };
    serde_json::json!({
        "user": p.user, "role": role_name(p.role), "via": via, "csrf": csrf,
        "time_zone": site_time_zone(),
    })
}

/// The site's time zone (the recorder's system zone, IANA name) in which the console
/// shows times; None if the system's zone has no IANA name (the console then uses the
/// browser's).
fn site_time_zone() -> Option<&'static str> {
    static TZ: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| jiff::tz::TimeZone::system().iana_name().map(str::to_owned));
    TZ.as_deref()
}

/// `POST /api/login` with `{"user": "...", "password": "..."}`: starts a session (cookie)
/// and returns the user, role and CSRF token. 401 for bad credentials, 429 while the user
/// name or the client address is locked out.
pub(super) async fn login(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        user: String,
        password: String,
    }
    let src = source(&req);
    let ip_key = ip_key(&req);
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "login body is over 16 KiB".into(),
            )
        })?;
    let l: Login =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?;
    if l.user.len() > 64 || l.password.len() > 1024 {
        return Err(ApiError::bad("user or password too long"));
    }
    let user_key = format!("user:{}", l.user);
    let now = Instant::now();
    for (limiter, key) in [
        (&st.gate.ip_limiter, &ip_key),
        (&st.gate.limiter, &user_key),
    ] {
        if let Err(wait) = limiter.check(key, now) {
            audit(
                &st,
                "",
                &src,
                "login.refused",
                serde_json::json!({ "user": l.user, "reason": "locked out" }),
            )
            .await;
            return Ok(too_many(wait));
        }
    }
    let data = match auth_data(&st).await {
        Ok(d) => d,
        Err(r) => return Ok(r),
    };
    let (name, password) = (l.user.clone(), l.password);
    let user = blocking(move || crate::auth::verify_login(&data, &name, &password)).await?;
    let Some(u) = user else {
        let locked = st.gate.limiter.fail(&user_key, now) | st.gate.ip_limiter.fail(&ip_key, now);
        audit(
            &st,
            "",
            &src,
            "login.fail",
            serde_json::json!({ "user": l.user, "locked": locked }),
        )
        .await;
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        ));
    };
    st.gate.limiter.succeed(&user_key);
    let (id, s) = st
        .gate
        .sessions
        .create(&u.name, &u.password_hash, crate::base::time::now_us());
    audit(
        &st,
        &u.name,
        &src,
        "login",
        serde_json::json!({ "role": u.role }),
    )
    .await;
    let p = Principal {
        user: u.name,
        role: u.role,
        via: Via::Session {
            id: id.clone(),
            csrf: s.csrf,
        },
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        st.gate.sessions.max().as_secs(),
        if st.gate.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut r = Json(session_json(&p)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex id"),
    );
    Ok(r)
}

/// `POST /api/logout`: ends the caller's session (and clears its cookie).
pub(super) async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let src = source(&req);
    let Some(p) = req.extensions().get::<Principal>().cloned() else {
        return error(StatusCode::UNAUTHORIZED, "not logged in");
    };
    if let Via::Session { id, .. } = &p.via {
        st.gate.sessions.remove(id);
    }
    audit(&st, &p.user, &src, "logout", serde_json::json!({})).await;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .expect("ascii"),
    );
    r
}

/// `GET /api/session`: who the caller is, their role, and (for a browser session) the
/// CSRF token to send on state-changing requests.
pub(super) async fn current(req: Request) -> Response {
    match req.extensions().get::<Principal>() {
        Some(p) => Json(session_json(p)).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "not logged in"),
    }
}

/// `GET /api/users` (admin): users with their roles, and tokens (ids, owners, labels,
/// revoked or not); never a hash or a secret. Changes are made with `vigil user` and
/// `vigil token`.
pub(super) async fn users(State(st): State<AppState>) -> Response {
    let data = match auth_data(&st).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let users: Vec<_> = (data.users.iter())
        .map(|u| serde_json::json!({ "name": u.name, "role": role_name(u.role), "created": u.created }))
        .collect();
    let tokens: Vec<_> = (data.tokens.iter())
        .map(|t| {
            serde_json::json!({
                "id": t.id, "user": t.user, "label": t.label,
                "created": t.created, "revoked": t.revoked,
            })
        })
        .collect();
    Json(serde_json::json!({ "users": users, "tokens": tokens })).into_response()
}

/// `GET /login`: the login page (static; it holds no data).
pub(super) async fn login_page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("login.html")),
    )
}
