//! The routes Tailscale clients use: `/key` and the `/ts2021` upgrade on the main listener,
//! the `/register/<auth_id>` page, and inside the Noise session `/machine/register`,
//! `/machine/map` and Headscale's 501 for the other `/machine/*` endpoints.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use hs_noise::Ts2021;
use http::StatusCode;
use tower::ServiceExt as _;

use crate::state::ControlState;

/// Headscale's limit on Noise request bodies.
const NOISE_BODY_LIMIT: usize = 1 << 20;

/// Endpoints Headscale registers but does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "/machine/whoami",
    "/machine/set-dns",
    "/machine/set-device-attr",
    "/machine/audit-log",
    "/machine/id-token",
    "/machine/feature/query",
    "/machine/update-health",
    "/machine/c2n",
];

/// The router served inside each Noise session; requests carry a
/// [`hs_noise::NoiseSession`] extension.
pub fn noise_router(st: ControlState) -> Router {
    let mut r = Router::new()
        .route("/machine/register", post(crate::http::register::handle))
        .route("/machine/map", post(crate::http::poll::handle))
        .route(
            "/machine/ssh/action/{src}/to/{dst}",
            get(crate::http::ssh_action::handle),
        )
        .route(crate::ha::PING_RESPONSE_PATH, any(crate::ha::ping_response));
    for p in NOT_IMPLEMENTED {
        r = r.route(p, any(not_implemented));
    }
    r.route("/machine/{*rest}", any(not_implemented))
        .layer(DefaultBodyLimit::max(NOISE_BODY_LIMIT))
        .with_state(st)
}

async fn not_implemented() -> impl IntoResponse {
    (StatusCode::NOT_IMPLEMENTED, "Not implemented yet")
}

#[derive(Clone)]
struct Shared {
    ts: Arc<Ts2021>,
    inner: Router,
}

/// Routes for the main listener: `/key`, `/ts2021` (serving [`noise_router`] in the tunnel)
/// and `/register/{auth_id}`, `/windows`, `/apple`, `/apple/{platform}`.
pub fn control_routes(st: ControlState, ts: Arc<Ts2021>) -> Router {
    control_routes_with_oidc(st, ts, None)
}

/// [`control_routes`], with OIDC login when `oidc` is given: `/register/{auth_id}` goes to
/// the provider, and `/oidc/callback` and `POST /register/confirm/{auth_id}` finish the login.
pub fn control_routes_with_oidc(
    st: ControlState,
    ts: Arc<Ts2021>,
    oidc: Option<Arc<crate::oidc::Oidc>>,
) -> Router {
    let shared = Shared {
        ts,
        inner: noise_router(st.clone()),
    };
    let main = Router::new()
        .route(
            "/key",
            get(|State(s): State<Shared>, req: Request| async move {
                s.ts.key_response(req.uri().query()).map(Body::new)
            }),
        )
        .route(
            hs_noise::UPGRADE_PATH,
            any(|State(s): State<Shared>, req: Request| async move {
                let inner = s.inner.clone();
                let svc = hyper::service::service_fn(move |req| inner.clone().oneshot(req));
                s.ts.upgrade(req, svc).map(Body::new)
            }),
        )
        .with_state(shared);
    let register = match oidc {
        None => Router::new()
            .route("/register/{auth_id}", get(crate::http::interactive::page))
            .route("/auth/{auth_id}", get(crate::http::interactive::auth_page))
            .with_state(st.clone()),
        Some(oidc) => Router::new()
            .route("/register/{auth_id}", get(crate::oidc::start))
            .route("/auth/{auth_id}", get(crate::oidc::start_auth))
            .route("/oidc/callback", get(crate::oidc::callback))
            .route("/register/confirm/{auth_id}", post(crate::oidc::confirm))
            .with_state(crate::oidc::OidcState {
                st: st.clone(),
                oidc,
            }),
    };
    let pages = Router::new()
        .route(crate::ha::PING_RESPONSE_PATH, any(crate::ha::ping_response))
        .with_state(st.clone())
        .merge(register);
    main.merge(pages).merge(crate::http::pages::routes(st))
}
