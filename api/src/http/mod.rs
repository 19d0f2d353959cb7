//! The HTTP/JSON routers. Upstream serves the management API and the rooms
//! API from separate deployments; [`management_router`] and
//! [`rooms_router`] are the two, each complete with its fallbacks, and
//! [`router`] serves both from one listener.
//!
//! `/schedulers…` (plural) is management, `/scheduler/…` (singular) rooms.
//! axum's router prefers static segments, so `GET /schedulers/info` wins
//! over `GET /schedulers/{name}`, as in grpc-gateway's registration.

mod openapi;

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on};
use axum::{Json, Router};
use http_body_util::LengthLimitError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, ApiConfig};
use crate::backend::Backend;
use crate::error::ApiError;
use crate::json;
use crate::rpc::{self, Ctx, Route};
use crate::schema;

pub use openapi::openapi_document;

#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<ApiConfig>,
}

/// The management API (schedulers, operations, rooms listing) and
/// `GET /openapi.json`, which needs no token.
pub fn management_router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    let routes =
        routes(|route| route.path.starts_with("/schedulers")).route("/openapi.json", get(openapi));
    with_fallbacks(routes.with_state(state(backend, config)))
}

/// The rooms API: pings, events, addresses and allocate.
pub fn rooms_router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    let routes = routes(|route| route.path.starts_with("/scheduler/"));
    with_fallbacks(routes.with_state(state(backend, config)))
}

/// Both APIs on one router. (Merging the two routers above would panic:
/// axum refuses to merge two routers that both have a fallback.)
pub fn router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    let routes = routes(|_| true).route("/openapi.json", get(openapi));
    with_fallbacks(routes.with_state(state(backend, config)))
}

fn state(backend: Arc<dyn Backend>, config: &ApiConfig) -> AppState {
    AppState {
        backend,
        config: Arc::new(config.clone()),
    }
}

/// The table's routes that `serve` keeps, each on its endpoint. Routes of
/// one path (`GET`, `POST`, … `/schedulers/{name}`) share a method router.
///
/// A route is registered at its path's canonical spelling: axum takes one
/// parameter name per position, and routes name theirs after their own
/// request's fields (`/schedulers/{scheduler_name}`, `/schedulers/{name}`).
/// Endpoints read parameters by position, so the spelling does not matter.
fn routes(serve: impl Fn(&Route) -> bool) -> Router<AppState> {
    let endpoints = rpc::http_endpoints();
    let all: Vec<&Route> = endpoints.iter().map(|(route, _)| *route).collect();
    let mut router = Router::new();
    for (route, build) in &endpoints {
        if serve(route) {
            router = router.route(&rpc::canonical_path(&all, route.path), build(route));
        }
    }
    router
}

/// The path's fields by proto name, for the endpoint to move into the
/// request message.
pub(crate) struct PathValues(Vec<(&'static str, String)>);

impl PathValues {
    pub(crate) fn remove(&mut self, field: &str) -> Option<String> {
        let index = self.0.iter().position(|(name, _)| *name == field)?;
        Some(self.0.swap_remove(index).1)
    }
}

/// The HTTP endpoint of one route: grpc-gateway's mapping of a request to
/// the RPC's message (the path's fields, then the JSON body or, without a
/// body, the query parameters), the caller's check, the service function,
/// and its answer as protojson.
pub(crate) fn endpoint<Req, Resp, F, Fut>(
    route: &'static Route,
    fill_path: fn(&mut Req, &mut PathValues),
    call: F,
) -> MethodRouter<AppState>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Ctx, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
{
    // The RPC's message types, for the JSON adapter; the tests read every
    // route's, so a miss is a build bug answered as an internal error.
    let types = schema::protos()
        .and_then(|protos| protos.method(route))
        .and_then(|method| {
            Ok(Arc::new((
                method.input.clone(),
                json::Writer::new(&method.output)?,
            )))
        })
        .map_err(|e| ApiError::new(crate::Code::Internal, e.to_string()));
    let handler = move |State(state): State<AppState>,
                        PathParams(values): PathParams<Vec<(String, String)>>,
                        uri: Uri,
                        headers: HeaderMap,
                        body: Body| {
        let types = types.clone();
        async move {
            let answer: Result<_, ApiError> = async {
                let types = types?;
                let (input, output) = types.as_ref();
                let mut path = PathValues(
                    route
                        .path_fields
                        .iter()
                        .zip(values)
                        .map(|(field, (_, value))| (*field, value))
                        .collect(),
                );
                // The caller is checked before the body is read.
                let fields: Vec<(&str, &str)> = path
                    .0
                    .iter()
                    .map(|(name, value)| (*name, value.as_str()))
                    .collect();
                auth::check(&state.config, route.auth, &headers, &fields)?;
                let mut message: Req = if route.body {
                    json::from_body(
                        &read_body(body, state.config.body_limit_bytes).await?,
                        input,
                    )?
                } else {
                    json::from_query(query_pairs(&uri)?)?
                };
                fill_path(&mut message, &mut path);
                let ctx = Ctx {
                    backend: state.backend.clone(),
                    headers,
                };
                let answer = call(ctx, message).await?;
                let body = output.write(&answer)?;
                Ok(([(CONTENT_TYPE, "application/json")], body))
            }
            .await;
            answer.into_response()
        }
    };
    match MethodFilter::try_from(route.http_method.clone()) {
        Ok(filter) => on(filter, handler),
        // The table's methods are HTTP's own; a test checks every route.
        Err(_) => MethodRouter::new(),
    }
}

/// Reads a body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large =
            std::error::Error::source(&error).is_some_and(|source| source.is::<LengthLimitError>());
        ApiError::invalid_argument(if too_large {
            format!("request body is larger than the limit of {limit} bytes")
        } else {
            format!("cannot read the request body: {error}")
        })
    })
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::invalid_argument(format!("invalid query string: {e}")))
}

/// Path parameters, with the API's error format.
pub(crate) struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|e| ApiError::invalid_argument(e.body_text()))
    }
}

/// grpc-gateway's answers to an unknown path and to a wrong method.
///
/// A gRPC call to a service this port does not serve ends here too (the
/// gRPC routes merged into this router have no fallback of their own): it
/// gets gRPC's UNIMPLEMENTED, which a gRPC client can read, rather than a
/// JSON 404.
fn with_fallbacks(router: Router) -> Router {
    router
        .fallback(|request: Request| async move {
            if is_grpc(&request) {
                grpc_unimplemented(request.uri().path())
            } else {
                ApiError::not_found("Not Found").into_response()
            }
        })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn grpc_unimplemented(path: &str) -> Response {
    tonic::Status::unimplemented(format!("{path} is not served on this port"))
        .into_http::<axum::body::Body>()
}

/// The document for this router's configuration: routes require a token
/// only when one is configured for them.
async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(openapi_document(&state.config))
}
