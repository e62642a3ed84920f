//! `Form<T>`: the only way a dashboard handler reads a POSTed form. It checks the CSRF token
//! before anything else, then parses the urlencoded body into `T` (whose fields are strings, so
//! that bad values become field-level errors in the handler, not a parse failure).

use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::csrf::CsrfConfig;
use super::{AppError, PageError};

/// Bodies of dashboard forms are small.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub struct Form<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf")]
    token: Option<String>,
}

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Form<T>, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let is_form = req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.starts_with("application/x-www-form-urlencoded"));
            if !is_form {
                return Err(AppError::BadRequest("expected a form submission".into()).into());
            }
            let body = body
                .await
                .map_err(|_| AppError::BadRequest("could not read the form".into()))?;
            if body.len() > MAX_FORM_BYTES {
                return Err(AppError::BadRequest("the form is too large".into()).into());
            }
            let config = req
                .app_data::<web::Data<CsrfConfig>>()
                .ok_or_else(|| AppError::internal("CSRF configuration missing"))?;
            let field: CsrfField =
                serde_urlencoded::from_bytes(&body).map_err(|_| AppError::Csrf)?;
            config.verify(&req, field.token.as_deref())?;
            let value = serde_urlencoded::from_bytes::<T>(&body)
                .map_err(|e| AppError::BadRequest(format!("the form is malformed: {e}")))?;
            Ok(Form(value))
        })
    }
}
