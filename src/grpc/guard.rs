//! The auth check of every gRPC service (health and reflection are left open): reads
//! `authorization: Bearer <token>` metadata, answers UNAUTHENTICATED or PERMISSION_DENIED by the
//! scope the method needs ([`Operation::of_grpc`]), and otherwise hands the [`Caller`] to the method through the
//! request's extensions. A tower service rather than a tonic interceptor, because the scope
//! depends on the method and interceptors do not see the path.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use crate::auth::{Auth, Operation};
use crate::domain::Caller;

#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    auth: Auth,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, auth: Auth) -> Self {
        Self { inner, auth }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

/// The caller a method was called by (put there by [`Guarded`]); without one, a caller with
/// no scopes, so a mistake never grants anything.
pub fn caller<T>(request: &tonic::Request<T>) -> Caller {
    request.extensions().get::<Caller>().cloned().unwrap_or_else(|| Caller::new("", &[], true))
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        let checked = self.auth.check(header).and_then(|caller| {
            Operation::of_grpc(request.uri().path()).authorize(&caller)?;
            Ok(caller)
        });
        match checked {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                // The service that was polled ready serves this call; a clone takes its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(error) => {
                let status: tonic::Status = error.into();
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
