//! The route table: every route of the app with who may call it. The same table registers the
//! handlers, generates the OpenAPI document and drives the authorization-matrix test, so a new
//! route cannot be added without saying who may use it.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::auth::Role;

/// Where a route lives, which decides how callers authenticate and how errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Health, metrics, static files, the OpenAPI document, and the sign-in/up/reset flows.
    Public,
    /// Dashboard pages and forms: session cookie, CSRF token on every POST, HTML errors.
    Page,
    /// `/api/v1`: `Authorization: Bearer` API keys only, JSON in and out, problem+json errors.
    Api,
    /// `/internal/v1`: runners only (`Authorization: Bearer` runner tokens), problem+json errors.
    Internal,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Anyone,
    /// Any signed-in person, whatever their organizations (account settings, org switcher).
    SignedIn,
    /// A member of the current organization with at least this role (API keys: read = member,
    /// read-write = admin).
    Role(Role),
    /// A runner with a valid, unrevoked runner token; no person or API key.
    Runner,
}

pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// Generates the JSON Schema of `T` for the OpenAPI document.
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What the route table says about one route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: Method,
    /// actix path pattern; object ids are `{client_id}`, `{target_id}`, `{key_id}`,
    /// `{invitation_id}`, `{user_id}`, `{org_id}`, `{scan_id}`, `{snapshot_id}`, `{job_id}`;
    /// `{artifact}` names a snapshot artifact.
    pub path: &'static str,
    pub surface: Surface,
    pub access: Access,
    pub summary: &'static str,
    /// A valid request body (JSON on the API, urlencoded on pages, without the CSRF field);
    /// `{unique}` is replaced by a fresh string. Used by tests and the OpenAPI examples.
    pub example: &'static str,
    pub request: Option<SchemaFn>,
    pub response: Option<SchemaFn>,
    /// Success status on the API.
    pub success: u16,
    /// The request ends the caller's session (sign out).
    pub ends_session: bool,
    /// Takes `limit` and `cursor` query parameters.
    pub paginated: bool,
}

impl RouteDoc {
    pub fn new(method: Method, path: &'static str, surface: Surface, access: Access) -> RouteDoc {
        RouteDoc {
            method,
            path,
            surface,
            access,
            summary: "",
            example: "",
            request: None,
            response: None,
            success: 200,
            ends_session: false,
            paginated: false,
        }
    }

    /// The names of the path's parameters, in order.
    pub fn params(&self) -> Vec<&'static str> {
        let mut params = Vec::new();
        let mut rest = self.path;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let inner = &rest[start + 1..start + len];
            params.push(inner.split(':').next().unwrap_or(inner));
            rest = &rest[start + len + 1..];
        }
        params
    }
}

type Register = Box<dyn Fn(&mut web::ServiceConfig)>;

/// One row of the route table: what it is, and how to mount its handler.
pub struct Route {
    pub doc: RouteDoc,
    register: Register,
}

impl Route {
    pub fn new<F, Args>(doc: RouteDoc, handler: F) -> Route
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let method = doc.method.clone();
        let path = doc.path;
        Route {
            doc,
            register: Box::new(move |cfg| {
                cfg.route(path, web::method(method.clone()).to(handler.clone()));
            }),
        }
    }

    pub fn summary(mut self, text: &'static str) -> Route {
        self.doc.summary = text;
        self
    }

    pub fn example(mut self, body: &'static str) -> Route {
        self.doc.example = body;
        self
    }

    pub fn request<T: JsonSchema>(mut self) -> Route {
        self.doc.request = Some(schema::<T>);
        self
    }

    pub fn response<T: JsonSchema>(mut self) -> Route {
        self.doc.response = Some(schema::<T>);
        self
    }

    pub fn success(mut self, status: u16) -> Route {
        self.doc.success = status;
        self
    }

    pub fn paginated(mut self) -> Route {
        self.doc.paginated = true;
        self
    }

    pub fn ends_session(mut self) -> Route {
        self.doc.ends_session = true;
        self
    }

    pub fn mount(&self, cfg: &mut web::ServiceConfig) {
        (self.register)(cfg)
    }
}

/// Shorthands for building table rows.
pub fn page_get<F, Args>(path: &'static str, access: Access, handler: F) -> Route
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Route::new(
        RouteDoc::new(Method::GET, path, Surface::Page, access),
        handler,
    )
}

pub fn page_post<F, Args>(path: &'static str, access: Access, handler: F) -> Route
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Route::new(
        RouteDoc::new(Method::POST, path, Surface::Page, access),
        handler,
    )
}

pub fn api<F, Args>(method: Method, path: &'static str, role: Role, handler: F) -> Route
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Route::new(
        RouteDoc::new(method, path, Surface::Api, Access::Role(role)),
        handler,
    )
}

pub fn internal<F, Args>(method: Method, path: &'static str, handler: F) -> Route
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Route::new(
        RouteDoc::new(method, path, Surface::Internal, Access::Runner),
        handler,
    )
}

pub fn public<F, Args>(method: Method, path: &'static str, handler: F) -> Route
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Route::new(
        RouteDoc::new(method, path, Surface::Public, Access::Anyone),
        handler,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_read_from_the_pattern() {
        let doc = RouteDoc::new(
            Method::GET,
            "/clients/{client_id}/targets/{target_id:\\d+}",
            Surface::Page,
            Access::SignedIn,
        );
        assert_eq!(doc.params(), vec!["client_id", "target_id"]);
    }
}
