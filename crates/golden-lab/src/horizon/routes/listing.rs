//! Horizon's list conventions: the `filter` JSON (the `Equals` and `And` types the lab
//! understands), `page` + `size` paging with the `HAS_MORE_RECORDS` header, and list bodies.

use std::collections::HashMap;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ApiResult};

/// The subset of filter types the lab understands (enough to look pools up by name or id).
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Filter {
    Equals { name: String, value: Value },
    And { filters: Vec<Filter> },
}

impl Filter {
    fn check(&self, fields: &[&str]) -> Result<(), ApiError> {
        match self {
            Filter::Equals { name, .. } if fields.contains(&name.as_str()) => Ok(()),
            Filter::Equals { name, .. } => {
                Err(ApiError::bad_request("filter.invalid", format!("Filtering on {name} is not supported.")))
            }
            Filter::And { filters } => filters.iter().try_for_each(|f| f.check(fields)),
        }
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            Filter::Equals { name, value } => item.get(name) == Some(value),
            Filter::And { filters } => filters.iter().all(|f| f.matches(item)),
        }
    }
}

/// Answers a list request: `filter`, then `page` + `size` (both or neither, size ≤ 1000, a page
/// past the end is 400), with `HAS_MORE_RECORDS: true` when more pages follow. Documents are
/// turned into JSON values only to be matched against a filter.
pub(super) fn listing<T: Serialize>(
    items: Vec<T>,
    query: &HashMap<String, String>,
    fields: &[&str],
) -> ApiResult {
    let Some(raw) = query.get("filter") else { return page(items, query) };
    let filter: Filter = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request("filter.invalid", format!("Invalid filter: {e}")))?;
    filter.check(fields)?;
    let matching: Vec<Value> = items
        .iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .filter(|item| filter.matches(item))
        .collect();
    page(matching, query)
}

/// The page of `items` the query's `page` and `size` ask for (all of them without paging).
fn page<T: Serialize>(items: Vec<T>, query: &HashMap<String, String>) -> ApiResult {
    let (range, more) = page_bounds(items.len(), query)?;
    let page: Vec<T> = items.into_iter().skip(range.start).take(range.len()).collect();
    Ok(paged_response(&page, more))
}

/// Which of `len` items the query's `page` and `size` ask for (all of them without paging),
/// and whether more pages follow; a page past the end is 400.
pub(super) fn page_bounds(
    len: usize,
    query: &HashMap<String, String>,
) -> Result<(std::ops::Range<usize>, bool), ApiError> {
    let number = |name: &str, raw: &str| -> Result<usize, ApiError> {
        raw.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request("pagination.invalid", format!("{name} must be a positive integer."))
        })
    };
    match (query.get("page"), query.get("size")) {
        (None, None) => Ok((0..len, false)),
        (Some(page), Some(size)) => {
            let (page, size) = (number("page", page)?, number("size", size)?);
            if size > 1000 {
                return Err(ApiError::bad_request("pagination.invalid", "size must not exceed 1000."));
            }
            let start = (page - 1).saturating_mul(size);
            if page > 1 && start >= len {
                return Err(ApiError::bad_request("pagination.invalid", "Requested page does not exist."));
            }
            let end = start.saturating_add(size).min(len);
            Ok((start.min(len)..end, end < len))
        }
        _ => Err(ApiError::bad_request("pagination.invalid", "page and size must be given together.")),
    }
}

/// A page as a JSON response, with `HAS_MORE_RECORDS: true` when more pages follow.
pub(super) fn paged_response<T: Serialize>(page: &[T], more: bool) -> Response {
    let mut response = json_list(page);
    if more {
        // Header names are case-insensitive; `from_static` wants them lowercase.
        response
            .headers_mut()
            .insert(HeaderName::from_static("has_more_records"), HeaderValue::from_static("true"));
    }
    response
}

/// A list as a JSON response, written into a buffer sized for it up front (a page of pools is
/// hundreds of kilobytes, which a growing buffer would copy over and over).
fn json_list<T: Serialize>(items: &[T]) -> Response {
    let mut body = Vec::with_capacity(2 + items.len() * 1024);
    match serde_json::to_writer(&mut body, items) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "lab.render", e.to_string()).into_response()
        }
    }
}

pub(super) fn one<T: Serialize>(mut items: Vec<T>) -> ApiResult {
    match items.pop() {
        Some(item) => Ok(axum::Json(item).into_response()),
        None => Ok(axum::Json(Value::Null).into_response()),
    }
}
