//! The one error type of the Horizon client, and reading Horizon's error bodies.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::HorizonVersion;
use crate::connect::Retryable;
use crate::ids::SiteName;

/// Header of a 429 answer: how many seconds to wait before trying again.
pub const RETRY_AFTER_HEADER: &str = "x-rate-limit-retry-after-seconds";

/// What went wrong talking to one site's Horizon. Every variant names the site and what was
/// being done (operation and object); none carries a token or password.
#[derive(Debug, thiserror::Error)]
pub enum HorizonError {
    /// No answer: connection refused or reset, timeout, a body cut short.
    #[error("cannot {what} at site `{site}`: no answer from horizon")]
    Transport {
        site: SiteName,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// Horizon answered with an error status; its own explanation is the source.
    #[error("cannot {what} at site `{site}`: horizon answered {status}")]
    Api {
        site: SiteName,
        what: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        #[source]
        message: ServerMessage,
    },
    /// The login was refused (bad user, password or domain, or no permission).
    #[error("horizon at site `{site}` refused the login of `{user}` ({status})")]
    Login {
        site: SiteName,
        user: String,
        status: StatusCode,
        #[source]
        message: ServerMessage,
    },
    /// Horizon's answer went past a limit no real server reaches: a body too large, pages
    /// without end.
    #[error("cannot {what} at site `{site}`: {reason}")]
    Unreasonable { site: SiteName, what: String, reason: String },
    /// Horizon answered, but not with the JSON golden expects.
    #[error("cannot {what} at site `{site}`: horizon sent an answer golden cannot read")]
    Decode {
        site: SiteName,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A 3xx answer, never followed: it would carry the login to another address.
    #[error(
        "cannot {what} at site `{site}`: horizon answered {status}, a redirect to {location}; \
         golden never follows redirects"
    )]
    Redirect { site: SiteName, what: String, status: StatusCode, location: String },
    /// Horizon answered a bulk action (the v2 push image) with success, but refused it for
    /// some of its items; `failures` names each with Horizon's reason.
    #[error("cannot {what} at site `{site}`: horizon refused it for {failures}")]
    Refused { site: SiteName, what: String, failures: String },
    /// Horizon logins need a NetBIOS domain.
    #[error("no horizon domain is set for site `{site}`")]
    MissingDomain { site: SiteName },
    /// The site's Connection Server is too old for what golden asked of it; `reason` says
    /// which API it lacks.
    #[error(
        "cannot {what} at site `{site}`: its connection server runs horizon {version}, and {reason}; \
         this needs horizon {minimum} or later: upgrade the connection server"
    )]
    TooOld { site: SiteName, what: String, version: HorizonVersion, minimum: HorizonVersion, reason: String },
}

/// Horizon's own explanation of an error, as its error body gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServerMessage(pub String);

impl HorizonError {
    /// The HTTP status Horizon answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HorizonError::Api { status, .. } | HorizonError::Login { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Horizon's explanation of the error, if it gave one.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            HorizonError::Api { message, .. } | HorizonError::Login { message, .. } => Some(&message.0),
            _ => None,
        }
    }
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

impl Retryable for HorizonError {
    fn is_retryable(&self) -> bool {
        match self {
            // A request that could not even be built will not build next time either.
            HorizonError::Transport { source, .. } => !source.is_builder(),
            // 401 although the call had just refreshed or logged in again: the new token ended
            // too. Refused before anything was done; the next attempt authenticates afresh.
            HorizonError::Api { status, .. } => {
                retryable_status(*status) || *status == StatusCode::UNAUTHORIZED
            }
            HorizonError::Login { .. }
            | HorizonError::Redirect { .. }
            | HorizonError::Unreasonable { .. }
            | HorizonError::Decode { .. }
            | HorizonError::MissingDomain { .. }
            | HorizonError::Refused { .. }
            | HorizonError::TooOld { .. } => false,
        }
    }

    fn had_no_effect(&self) -> bool {
        match self {
            HorizonError::Transport { source, .. } => source.is_connect() || source.is_builder(),
            HorizonError::Api { status, .. } => matches!(status.as_u16(), 401 | 429 | 503),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            HorizonError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Builds the error for a non-success answer.
pub(crate) fn api_error(
    site: &SiteName,
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> HorizonError {
    HorizonError::Api {
        site: site.clone(),
        what: what.to_owned(),
        status,
        retry_after: retry_after(headers),
        message: ServerMessage(error_text(status, body)),
    }
}

/// `X-Rate-Limit-Retry-After-Seconds`, when present and a number of seconds (capped).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::connect::retry_after_seconds(headers.get(RETRY_AFTER_HEADER)?.to_str().ok()?)
}

/// The text of an error body: `errors[].error_message` (2203+), then the older
/// `error_messages[]`, then a lone `error_message`, then the HTTP reason phrase.
pub(crate) fn error_text(status: StatusCode, body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    error_messages(&json).unwrap_or_else(|| status.canonical_reason().unwrap_or("unknown error").to_owned())
}

/// The messages of Horizon's error envelope in `json` (an error body, or an item of a bulk
/// answer): `errors[].error_message` (2203+), then the older `error_messages[]`, then a lone
/// `error_message`; `None` when it carries none.
pub(crate) fn error_messages(json: &Value) -> Option<String> {
    let strings = |v: Option<&Value>, pick: fn(&Value) -> Option<&str>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(pick)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let from_errors = strings(json.get("errors"), |e| e.get("error_message").and_then(Value::as_str));
    if !from_errors.is_empty() {
        return Some(from_errors.join("; "));
    }
    let legacy = strings(json.get("error_messages"), Value::as_str);
    if !legacy.is_empty() {
        return Some(legacy.join("; "));
    }
    json.get("error_message")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_follows_the_documented_order() {
        let s = StatusCode::BAD_REQUEST;
        let both = br#"{"status":"BAD_REQUEST","errors":[{"error_key":"k","error_message":"new"},
            {"error_key":"k2","error_message":"second"}],"error_messages":["old"]}"#;
        assert_eq!(error_text(s, both), "new; second");
        assert_eq!(error_text(s, br#"{"errors":[],"error_messages":["old one"]}"#), "old one");
        assert_eq!(error_text(s, br#"{"errors":null,"error_message":"single"}"#), "single");
        assert_eq!(error_text(s, b"<html>proxy error</html>"), "Bad Request");
        assert_eq!(error_text(StatusCode::TOO_MANY_REQUESTS, b""), "Too Many Requests");
    }

    #[test]
    fn retry_after_is_read_from_the_throttling_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("X-Rate-Limit-Retry-After-Seconds", "2".parse().expect("header value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("X-Rate-Limit-Retry-After-Seconds", "soon".parse().expect("header value"));
        assert_eq!(retry_after(&headers), None);
        // A hostile value neither panics nor stalls the run.
        headers.insert("X-Rate-Limit-Retry-After-Seconds", "1e20".parse().expect("header value"));
        assert_eq!(retry_after(&headers), Some(crate::connect::MAX_RETRY_AFTER));
        headers.insert("X-Rate-Limit-Retry-After-Seconds", "NaN".parse().expect("header value"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_transient_statuses_are_retryable() {
        let site = SiteName::new("eu");
        let err = |code: u16| {
            api_error(
                &site,
                "list pools",
                StatusCode::from_u16(code).expect("status"),
                &HeaderMap::new(),
                b"",
            )
        };
        for code in [401, 429, 502, 503, 504] {
            assert!(err(code).is_retryable(), "{code}");
        }
        for code in [400, 403, 404, 409, 500] {
            assert!(!err(code).is_retryable(), "{code}");
        }
        assert_eq!(err(400).to_string(), "cannot list pools at site `eu`: horizon answered 400 Bad Request");
    }
}
