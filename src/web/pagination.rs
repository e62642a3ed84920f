//! Cursor pagination: lists are ordered by id, the cursor is an opaque token for the last id
//! seen, and a page says where the next one starts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AppError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct PageQuery {
    /// Items per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Return items with ids below this (newest first), or all when `None`.
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before_id =
            match self.cursor.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                    AppError::invalid("cursor", "is not a cursor this API returned")
                })?),
            };
        Ok(PageRequest { before_id, limit })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched newest first; `id` reads a row's id.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, id: impl Fn(&T) -> i64) -> Page<T> {
        let more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| encode_cursor(id(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("v1:")?.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let query = PageQuery {
            limit: Some(2),
            cursor: Some(encode_cursor(42)),
        };
        assert_eq!(query.parse().unwrap().before_id, Some(42));
        let bad = PageQuery {
            limit: None,
            cursor: Some("nonsense".into()),
        };
        assert!(matches!(bad.parse(), Err(AppError::Invalid(_))));
        let too_many = PageQuery {
            limit: Some(1000),
            cursor: None,
        };
        assert!(matches!(too_many.parse(), Err(AppError::Invalid(_))));
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let request = PageRequest {
            before_id: None,
            limit: 2,
        };
        let page = Page::from_rows(vec![5, 4, 3], request, |id| *id);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(encode_cursor(4)));
        let last = Page::from_rows(vec![2], request, |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
