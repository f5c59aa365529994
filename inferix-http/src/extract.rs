//! A JSON body whose rejection is the API's own typed error, naming what
//! is wrong (an unknown field, a wrong type), not axum's plain text.

use axum::extract::{FromRequest, Request};

use crate::error::ApiError;

/// A request body parsed as JSON into `T`.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}
