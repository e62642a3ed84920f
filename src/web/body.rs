//! Request bodies read by hand where the caller must get our own errors: the declared length and
//! the bytes actually sent are both held to a limit, and the content type is checked first.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Payload;
use futures::StreamExt;

use super::AppError;

/// Refuses the request unless its content type (without parameters) is `expected`.
pub fn require_content_type(req: &HttpRequest, expected: &str) -> Result<(), AppError> {
    let given = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match given {
        Some(given) if given == expected => Ok(()),
        Some(given) => Err(AppError::UnsupportedMediaType(format!(
            "the body must be {expected}, not {given}"
        ))),
        None => Err(AppError::UnsupportedMediaType(format!(
            "the body must be {expected}; send a Content-Type header"
        ))),
    }
}

/// Reads the whole body, refusing more than `limit` bytes (before reading, by Content-Length,
/// and while reading).
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Vec<u8>, AppError> {
    let too_large = || AppError::TooLarge(format!("the body may be at most {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON body of at most `limit` bytes read as `T`; `what` names it in the error.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
    what: &str,
) -> Result<T, AppError> {
    require_content_type(req, "application/json")?;
    let body = read_limited(req, payload, limit).await?;
    serde_json::from_slice(&body).map_err(|e| {
        let mut message = e.to_string();
        message.truncate(300);
        AppError::BadRequest(format!("{what} is not valid: {message}"))
    })
}
