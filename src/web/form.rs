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

/// A checkbox field: browsers send it (as `on`) only when it is ticked, so its presence is yes.
pub fn checkbox<'de, D: serde::Deserializer<'de>>(field: D) -> Result<bool, D::Error> {
    let value = <Option<String> as serde::Deserialize>::deserialize(field)?;
    Ok(value.is_some_and(|v| v != "off" && v != "false"))
}

/// The most a form with a file may be (a logo and its fields).
const MAX_MULTIPART_BYTES: usize = 256 * 1024;

/// A dashboard form that may carry files (`multipart/form-data`, or urlencoded when it has
/// none): the CSRF token is checked before anything is used, as for [`Form`].
pub struct MultipartForm {
    parts: Vec<Part>,
}

struct Part {
    name: String,
    /// Set for a file (what the browser says it is).
    content_type: Option<String>,
    /// Set for a file that was chosen.
    file_name: Option<String>,
    bytes: web::Bytes,
}

impl MultipartForm {
    /// A text field, empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.parts
            .iter()
            .find(|p| p.name == name && p.file_name.is_none())
            .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
            .unwrap_or_default()
    }

    /// A chosen file: its content type and bytes; `None` when no file was chosen.
    pub fn file(&self, name: &str) -> Option<(&str, &[u8])> {
        self.parts
            .iter()
            .find(|p| p.name == name && p.file_name.as_deref().is_some_and(|f| !f.is_empty()))
            .map(|p| (p.content_type.as_deref().unwrap_or(""), p.bytes.as_ref()))
    }
}

impl FromRequest for MultipartForm {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<MultipartForm, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let content_type = req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-www-form-urlencoded")
                .to_owned();
            let body = body.await.map_err(|_| {
                AppError::TooLarge(format!(
                    "the form is larger than {} KiB",
                    MAX_MULTIPART_BYTES / 1024
                ))
            })?;
            if body.len() > MAX_MULTIPART_BYTES {
                return Err(AppError::TooLarge(format!(
                    "the form is larger than {} KiB",
                    MAX_MULTIPART_BYTES / 1024
                ))
                .into());
            }
            let mut parts = Vec::new();
            if content_type.starts_with("application/x-www-form-urlencoded") {
                // The same form without a file chosen may come plainly encoded.
                let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                    .map_err(|_| AppError::BadRequest("the form is malformed".into()))?;
                parts.extend(fields.into_iter().map(|(name, value)| Part {
                    name,
                    content_type: None,
                    file_name: None,
                    bytes: web::Bytes::from(value.into_bytes()),
                }));
                return finish(&req, MultipartForm { parts });
            }
            let boundary = multer::parse_boundary(&content_type)
                .map_err(|_| AppError::BadRequest("expected a form submission".into()))?;
            let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
            let mut multipart = multer::Multipart::new(stream, boundary);
            let malformed =
                |e: multer::Error| AppError::BadRequest(format!("the form is malformed: {e}"));
            while let Some(field) = multipart.next_field().await.map_err(malformed)? {
                let name = field.name().unwrap_or_default().to_owned();
                let content_type = field.content_type().map(|m| m.to_string());
                let file_name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(malformed)?;
                parts.push(Part {
                    name,
                    content_type,
                    file_name,
                    bytes,
                });
            }
            finish(&req, MultipartForm { parts })
        })
    }
}

/// Checks the CSRF token before the form is handed to anyone.
fn finish(req: &HttpRequest, form: MultipartForm) -> Result<MultipartForm, PageError> {
    let config = req
        .app_data::<web::Data<CsrfConfig>>()
        .ok_or_else(|| AppError::internal("CSRF configuration missing"))?;
    let token = form.text("_csrf");
    config.verify(req, (!token.is_empty()).then_some(token.as_str()))?;
    Ok(form)
}
