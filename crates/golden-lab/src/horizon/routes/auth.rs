//! `/rest/login`, `/rest/refresh` and `/rest/logout`: the lab's one account, access tokens and
//! the refresh tokens that renew them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, parse_body, with_site};
use crate::{LAB_DOMAIN, LAB_PASSWORD, LAB_USER, SiteCtx};

#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    password: Option<Value>,
    domain: Option<String>,
}

pub(super) async fn login(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: LoginBody = parse_body(&body)?;
    let (Some(user), Some(password), Some(domain)) = (body.username, body.password, body.domain) else {
        return Err(ApiError::bad_request(
            "auth.login.invalid",
            "username, password and domain are required.",
        ));
    };
    // The schema types the password as an array of string; every client sends a string.
    let password = match password {
        Value::String(p) => p,
        Value::Array(items) => match items.as_slice() {
            [Value::String(p)] => p.clone(),
            _ => return Err(ApiError::bad_request("auth.login.invalid", "Invalid password.")),
        },
        _ => return Err(ApiError::bad_request("auth.login.invalid", "Invalid password.")),
    };
    // AD account and NetBIOS domain names are case-insensitive; passwords are not.
    let valid = user.eq_ignore_ascii_case(LAB_USER)
        && domain.eq_ignore_ascii_case(LAB_DOMAIN)
        && password == LAB_PASSWORD;
    if !valid {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "user.authentication.failed",
            "Authentication failed: unknown user name or bad password.",
        ));
    }
    let (access, refresh) =
        with_site(&ctx, |site, t, now| Ok(site.horizon.login(&format!("{domain}\\{user}"), now, t)))?;
    Ok(axum::Json(json!({"access_token": access, "refresh_token": refresh})).into_response())
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<String>,
}

pub(super) async fn refresh(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: RefreshBody = parse_body(&body)?;
    let token = body.refresh_token.unwrap_or_default();
    let access = with_site(&ctx, |site, t, now| Ok(site.horizon.refresh(&token, now, t)))?;
    match access {
        Some(access) => Ok(axum::Json(json!({"access_token": access})).into_response()),
        None => Err(ApiError::bad_request("auth.refresh.token.invalid", "Invalid or expired refresh token.")),
    }
}

pub(super) async fn logout(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: RefreshBody = parse_body(&body)?;
    let token = body.refresh_token.unwrap_or_default();
    if with_site(&ctx, |site, _, _| Ok(site.horizon.logout(&token)))? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::bad_request("auth.refresh.token.invalid", "Invalid or expired refresh token."))
    }
}
