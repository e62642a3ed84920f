//! CSRF protection for dashboard forms: a signed double-submit token. Each browser gets a random
//! `sw_csrf` cookie (HttpOnly, SameSite=Strict); forms carry HMAC(key, cookie) in a hidden
//! `_csrf` field. A cross-site form can neither read the cookie nor forge the MAC.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AppError;
use crate::crypto;

/// The key and cookie settings, shared through app data.
#[derive(Clone)]
pub struct CsrfConfig {
    key: [u8; 32],
    secure: bool,
}

/// A cookie value minted during this request; the middleware sends it with the response.
#[derive(Clone)]
pub struct PendingCsrfCookie(pub Cookie<'static>);

impl CsrfConfig {
    pub fn new(key: [u8; 32], secure: bool) -> CsrfConfig {
        CsrfConfig { key, secure }
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-sw_csrf"
        } else {
            "sw_csrf"
        }
    }

    fn token_for(&self, cookie_value: &str) -> String {
        URL_SAFE_NO_PAD.encode(crypto::hmac_sha256(&self.key, cookie_value.as_bytes()))
    }

    fn mint_cookie(&self) -> Cookie<'static> {
        Cookie::build(self.cookie_name(), crypto::new_token())
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .finish()
    }

    /// Checks a submitted token against the request's cookie.
    pub fn verify(&self, req: &HttpRequest, submitted: Option<&str>) -> Result<(), AppError> {
        let cookie = req.cookie(self.cookie_name()).ok_or(AppError::Csrf)?;
        let expected = self.token_for(cookie.value());
        match submitted {
            Some(token) if crypto::constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
                Ok(())
            }
            _ => Err(AppError::Csrf),
        }
    }
}

/// The token to put into the page's forms; mints the cookie if the browser has none yet.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl FromRequest for CsrfToken {
    type Error = actix_web::Error;
    type Future = Ready<Result<CsrfToken, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(config) = req.app_data::<web::Data<CsrfConfig>>() else {
            return ready(Err(actix_web::error::ErrorInternalServerError(
                "CSRF configuration missing",
            )));
        };
        if let Some(pending) = req.extensions().get::<PendingCsrfCookie>() {
            return ready(Ok(CsrfToken(config.token_for(pending.0.value()))));
        }
        let token = match req.cookie(config.cookie_name()) {
            Some(cookie) => config.token_for(cookie.value()),
            None => {
                let cookie = config.mint_cookie();
                let token = config.token_for(cookie.value());
                req.extensions_mut().insert(PendingCsrfCookie(cookie));
                token
            }
        };
        ready(Ok(CsrfToken(token)))
    }
}
