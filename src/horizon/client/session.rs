//! How a call reaches Horizon: the session's tokens (log in, refresh once on a 401, log in
//! again when the refresh is refused), the retry policy, paging by `HAS_MORE_RECORDS`, and one
//! HTTP exchange under `/rest/`.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::HorizonClient;
use crate::connect::{BodyError, MAX_BODY, Repeat, Retryable, Secret, read_body};
use crate::horizon::error::{HorizonError, ServerMessage, api_error, error_text};
use crate::horizon::wire;

/// Records per page: the documented maximum, so 2,500 pools cost three requests.
const PAGE_SIZE: usize = 1000;

/// The most pages golden reads of one list: 100,000 records, far more than a pod holds. A
/// server that always says there is more stops here, with an error.
const MAX_PAGES: usize = 100;

/// The current tokens. `generation` grows with every new access token, so that of several
/// calls answered 401 with the same token only the first refreshes.
#[derive(Debug, Default)]
pub(super) struct Session {
    tokens: Option<Tokens>,
    generation: u64,
}

#[derive(Debug, Clone)]
struct Tokens {
    access: Secret,
    refresh: Option<Secret>,
}

/// One HTTP call: what it is (for errors and logs) and what to send.
struct Call<'a> {
    what: String,
    repeat: Repeat,
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
}

/// A successful answer, read completely.
struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Status, headers and body of one HTTP exchange.
type Exchange = (StatusCode, HeaderMap, Vec<u8>);

impl HorizonClient {
    /// Logs in now (otherwise the first call does).
    pub async fn login(&self) -> Result<(), HorizonError> {
        self.retry
            .run("log in", || async {
                let mut session = self.session.lock().await;
                self.login_locked(&mut session).await.map(|_| ())
            })
            .await
    }

    /// Ends the session (both tokens). A client without a session has nothing to do.
    pub async fn logout(&self) -> Result<(), HorizonError> {
        let mut session = self.session.lock().await;
        let Some(tokens) = session.tokens.take() else { return Ok(()) };
        let Some(refresh) = tokens.refresh else { return Ok(()) };
        let body = serde_json::to_value(wire::RefreshToken { refresh_token: refresh.expose() })
            .map_err(|source| self.decode_error("log out", source))?;
        self.retry
            .run_as(Repeat::Once, "log out", || async {
                let (status, headers, bytes) =
                    self.raw(Method::POST, &["logout"], &[], None, Some(&body), "log out").await?;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(api_error(&self.site, "log out", status, &headers, &bytes))
                }
            })
            .await
    }

    /// Follows `HAS_MORE_RECORDS` page by page. Real servers answer a page past the end with
    /// 400, so the loop stops as soon as the header is missing.
    pub(super) async fn list_paged<T: DeserializeOwned>(
        &self,
        path: &[&str],
        what: &str,
    ) -> Result<Vec<T>, HorizonError> {
        self.list_filtered(path, what, None).await
    }

    /// [`Self::list_paged`] with a `filter` (Horizon's filter JSON, minified).
    pub(super) async fn list_filtered<T: DeserializeOwned>(
        &self,
        path: &[&str],
        what: &str,
        filter: Option<&serde_json::Value>,
    ) -> Result<Vec<T>, HorizonError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = vec![("page", page.to_string()), ("size", PAGE_SIZE.to_string())];
            if let Some(filter) = filter {
                query.push(("filter", filter.to_string()));
            }
            let (items, headers): (Vec<T>, HeaderMap) = self.get_json(what, path, query).await?;
            let empty = items.is_empty();
            all.extend(items);
            let more = headers
                .get("has_more_records")
                .is_some_and(|v| !v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("false")));
            // An empty page that claims more would loop forever.
            if !more || empty {
                return Ok(all);
            }
        }
        Err(HorizonError::Unreasonable {
            site: self.site.clone(),
            what: what.to_owned(),
            reason: format!("horizon still has more records after {MAX_PAGES} pages of {PAGE_SIZE}"),
        })
    }

    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &[&str],
        query: Vec<(&'static str, String)>,
    ) -> Result<(T, HeaderMap), HorizonError> {
        let call = Call {
            what: what.to_owned(),
            repeat: Repeat::Safe,
            method: Method::GET,
            path,
            query,
            body: None,
        };
        let answer = self.send(&call).await?;
        // A page of pools holds thousands of strings: the body is checked for UTF-8 once, as a
        // whole, rather than string by string (a fifth of the decoding). Should it not be UTF-8,
        // decoding the bytes says where.
        let value = match std::str::from_utf8(&answer.body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&answer.body),
        };
        Ok((value.map_err(|source| self.decode_error(what, source))?, answer.headers))
    }

    pub(super) async fn post<B: Serialize>(
        &self,
        what: &str,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<(), HorizonError> {
        self.action(what, path, body).await.map(|_| ())
    }

    /// An action that answers with a JSON body (the v2 push image's bulk items).
    pub(super) async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        what: &str,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<T, HorizonError> {
        let answer = self.action(what, path, body).await?;
        serde_json::from_slice(&answer.body).map_err(|source| self.decode_error(what, source))
    }

    /// Sends an action: every POST golden makes besides logging in, sent once.
    async fn action<B: Serialize>(
        &self,
        what: &str,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<Answer, HorizonError> {
        let body =
            body.map(serde_json::to_value).transpose().map_err(|source| self.decode_error(what, source))?;
        let call = Call {
            what: what.to_owned(),
            repeat: Repeat::Once,
            method: Method::POST,
            path,
            query: Vec::new(),
            body,
        };
        self.send(&call).await
    }

    /// Sends a resource call under the retry policy.
    async fn send(&self, call: &Call<'_>) -> Result<Answer, HorizonError> {
        self.retry.run_as(call.repeat, &call.what, || self.send_once(call)).await
    }

    /// One attempt: authenticate, send; on 401 re-authenticate and send once more.
    async fn send_once(&self, call: &Call<'_>) -> Result<Answer, HorizonError> {
        let (token, generation) = self.access_token().await?;
        let (status, headers, body) = self.request(call, &token).await?;
        let (status, headers, body) = if status == StatusCode::UNAUTHORIZED {
            let token = self.reauthenticate(generation).await?;
            self.request(call, &token).await?
        } else {
            (status, headers, body)
        };
        if status.is_success() {
            Ok(Answer { headers, body })
        } else {
            Err(api_error(&self.site, &call.what, status, &headers, &body))
        }
    }

    async fn request(&self, call: &Call<'_>, token: &Secret) -> Result<Exchange, HorizonError> {
        self.raw(call.method.clone(), call.path, &call.query, Some(token), call.body.as_ref(), &call.what)
            .await
    }

    /// One HTTP exchange under `/rest/`, reading the whole body.
    pub(super) async fn raw(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&'static str, String)],
        token: Option<&Secret>,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Exchange, HorizonError> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("rest").extend(path);
        }
        let mut request = self.http.request(method, url).header("accept", "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport =
            |source| HorizonError::Transport { site: self.site.clone(), what: what.to_owned(), source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if let Some(location) = crate::connect::redirect_target(&response) {
            return Err(HorizonError::Redirect {
                site: self.site.clone(),
                what: what.to_owned(),
                status,
                location,
            });
        }
        let headers = response.headers().clone();
        let bytes = read_body(response, MAX_BODY).await.map_err(|e| match e {
            BodyError::Transport(source) => transport(source),
            too_large @ BodyError::TooLarge { .. } => HorizonError::Unreasonable {
                site: self.site.clone(),
                what: what.to_owned(),
                reason: too_large.to_string(),
            },
        })?;
        Ok((status, headers, bytes))
    }

    /// The current access token and its generation, logging in when there is none.
    async fn access_token(&self) -> Result<(Secret, u64), HorizonError> {
        let mut session = self.session.lock().await;
        match &session.tokens {
            Some(tokens) => Ok((tokens.access.clone(), session.generation)),
            None => {
                let token = self.login_locked(&mut session).await?;
                Ok((token, session.generation))
            }
        }
    }

    /// After a 401 with the token of `generation`: refresh once, log in again if the refresh
    /// is refused. Another task may already have done so; then its token is used.
    async fn reauthenticate(&self, generation: u64) -> Result<Secret, HorizonError> {
        let mut session = self.session.lock().await;
        if let (true, Some(tokens)) = (session.generation != generation, &session.tokens) {
            return Ok(tokens.access.clone());
        }
        let refresh = session.tokens.as_ref().and_then(|t| t.refresh.clone());
        if let Some(refresh) = refresh {
            match self.refresh(&refresh).await {
                Ok(access) => {
                    session.tokens = Some(Tokens { access: access.clone(), refresh: Some(refresh) });
                    session.generation += 1;
                    return Ok(access);
                }
                Err(err) => {
                    tracing::debug!(site = %self.site, error = %err, "token refresh refused, logging in again");
                }
            }
        }
        self.login_locked(&mut session).await
    }

    async fn refresh(&self, refresh: &Secret) -> Result<Secret, HorizonError> {
        let what = "refresh the access token";
        let body = serde_json::to_value(wire::RefreshToken { refresh_token: refresh.expose() })
            .map_err(|source| self.decode_error(what, source))?;
        let (status, headers, bytes) =
            self.raw(Method::POST, &["refresh"], &[], None, Some(&body), what).await?;
        if !status.is_success() {
            return Err(api_error(&self.site, what, status, &headers, &bytes));
        }
        let tokens: wire::Tokens =
            serde_json::from_slice(&bytes).map_err(|source| self.decode_error(what, source))?;
        Ok(Secret::new(tokens.access_token))
    }

    /// `POST /rest/login`; stores the tokens and returns the access token.
    pub(super) async fn login_locked(&self, session: &mut Session) -> Result<Secret, HorizonError> {
        let what = "log in";
        let domain = self
            .credentials
            .domain
            .as_deref()
            .ok_or(HorizonError::MissingDomain { site: self.site.clone() })?;
        let body = serde_json::to_value(wire::Login {
            username: &self.credentials.user,
            password: self.credentials.password.expose(),
            domain,
        })
        .map_err(|source| self.decode_error(what, source))?;
        let (status, headers, bytes) =
            self.raw(Method::POST, &["login"], &[], None, Some(&body), what).await?;
        if !status.is_success() {
            let err = api_error(&self.site, what, status, &headers, &bytes);
            // A 401 here is the credentials refused, not a token that ended.
            if err.is_retryable() && status != StatusCode::UNAUTHORIZED {
                return Err(err);
            }
            return Err(HorizonError::Login {
                site: self.site.clone(),
                user: format!("{domain}\\{}", self.credentials.user),
                status,
                message: ServerMessage(error_text(status, &bytes)),
            });
        }
        let tokens: wire::Tokens =
            serde_json::from_slice(&bytes).map_err(|source| self.decode_error(what, source))?;
        let access = Secret::new(tokens.access_token);
        session.tokens =
            Some(Tokens { access: access.clone(), refresh: tokens.refresh_token.map(Secret::new) });
        session.generation += 1;
        Ok(access)
    }

    pub(super) fn decode_error(&self, what: &str, source: serde_json::Error) -> HorizonError {
        HorizonError::Decode { site: self.site.clone(), what: what.to_owned(), source }
    }
}
