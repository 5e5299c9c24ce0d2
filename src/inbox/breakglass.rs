//! Break-glass in the inbox: the JSON API the `airlock breakglass` command
//! calls, and the page where everyone signed in sees the open windows and
//! admins open and close them. Both go through [`open`] and [`close`], so
//! the rules and the audit record are the same whichever door is used.

use axum::body::Bytes;
use axum::extract::{Form, Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::web::{constant_eq, escape, form_urlencode, page, signed_in, NO_IMPLICIT_SUBMIT};
use super::Inbox;
use crate::approval::breakglass::{parse_duration, BreakGlassError, Window};
use crate::audit::AuditEvent;
use crate::identity::{Identity, Role};

/// Opens a window for `identity` as `admin`, recorded in the audit log
/// (and announced by the notifier). The error is for the admin.
async fn open(
    inbox: &Inbox,
    admin: &Identity,
    identity: &str,
    duration: &str,
    reason: &str,
) -> Result<Window, (StatusCode, String)> {
    if admin.role != Role::Admin {
        return Err((
            StatusCode::FORBIDDEN,
            "only admins open break-glass windows".into(),
        ));
    }
    if reason.len() > 2000 {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "the reason is longer than 2000 bytes".into(),
        ));
    }
    let Some(duration) = parse_duration(duration) else {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`{}` is not a duration such as 30m, 2h or 90s",
                duration.chars().take(40).collect::<String>()
            ),
        ));
    };
    let is_agent = inbox
        .identities
        .get(identity)
        .is_some_and(|i| i.role == Role::Agent);
    let window = inbox
        .break_glass
        .open(
            &inbox.approvals,
            &admin.name,
            admin.role == Role::Admin,
            identity,
            is_agent,
            duration,
            reason,
        )
        .await
        .map_err(|e| match e {
            BreakGlassError::Store(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
            other => (StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
        })?;
    if let Some(audit) = &inbox.audit {
        audit.record(AuditEvent::BreakGlass {
            action: "opened",
            identity: &window.identity,
            by: &window.opened_by,
            reason: &window.reason,
            until_ms: window.until_ms,
        });
    }
    tracing::warn!(identity = %window.identity, opened_by = %window.opened_by, until_ms = window.until_ms, reason = %window.reason, "break-glass window opened");
    Ok(window)
}

/// Closes `identity`'s window before its time, as `admin`.
async fn close(
    inbox: &Inbox,
    admin: &Identity,
    identity: &str,
) -> Result<Window, (StatusCode, String)> {
    if admin.role != Role::Admin {
        return Err((
            StatusCode::FORBIDDEN,
            "only admins close break-glass windows".into(),
        ));
    }
    let closed = inbox
        .break_glass
        .close(&inbox.approvals, identity, &admin.name)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let Some(window) = closed else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no break-glass window is open for `{identity}`"),
        ));
    };
    if let Some(audit) = &inbox.audit {
        audit.record(AuditEvent::BreakGlass {
            action: "closed",
            identity: &window.identity,
            by: &admin.name,
            reason: &window.reason,
            until_ms: window.until_ms,
        });
    }
    tracing::warn!(identity = %window.identity, closed_by = %admin.name, "break-glass window closed early");
    Ok(window)
}

fn problem(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

pub async fn api_list(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    match super::caller(&inbox, &headers) {
        Ok(_) => match inbox.break_glass.list(&inbox.approvals).await {
            Ok(list) => Json(list).into_response(),
            Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
struct OpenWindow {
    identity: String,
    #[serde(rename = "for")]
    duration: String,
    reason: String,
}

pub async fn api_open(Extract(inbox): Extract<Inbox>, headers: HeaderMap, body: Bytes) -> Response {
    let admin = match super::caller(&inbox, &headers) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let asked: OpenWindow = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"identity\": …, \"for\": \"30m\", \"reason\": …}}: {e}"),
            )
        }
    };
    match open(
        &inbox,
        &admin,
        &asked.identity,
        &asked.duration,
        &asked.reason,
    )
    .await
    {
        Ok(window) => (StatusCode::CREATED, Json(window)).into_response(),
        Err((status, why)) => problem(status, why),
    }
}

pub async fn api_close(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(identity): Path<String>,
) -> Response {
    let admin = match super::caller(&inbox, &headers) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    match close(&inbox, &admin, &identity).await {
        Ok(window) => Json(json!({"closed": window})).into_response(),
        Err((status, why)) => problem(status, why),
    }
}

/// The banner the pending list shows while any window is open: holds of
/// those identities are approved without anyone here.
pub async fn banner(inbox: &Inbox) -> String {
    let open = inbox
        .break_glass
        .list(&inbox.approvals)
        .await
        .unwrap_or_default();
    if open.is_empty() {
        return String::new();
    }
    let items: Vec<String> = open.iter().map(describe).collect();
    format!(
        r#"<div id="break-glass-banner" role="alert" style="background:#a40000;color:#fff;padding:.6rem 1rem;margin-bottom:1rem;border-radius:4px"><b>Break-glass open:</b> {} — their held statements are approved without approvers. <a style="color:#fff" href="/breakglass">Details</a></div>"#,
        items.join("; ")
    )
}

fn describe(w: &Window) -> String {
    format!(
        "{} until {} (opened by {}: {})",
        escape(&w.identity),
        escape(&crate::audit::chain::timestamp(
            std::time::Duration::from_millis(w.until_ms)
        )),
        escape(&w.opened_by),
        escape(&w.reason)
    )
}

#[derive(Deserialize)]
pub struct OpenForm {
    csrf: String,
    identity: String,
    duration: String,
    reason: String,
}

#[derive(Deserialize)]
pub struct CloseForm {
    csrf: String,
}

async fn page_body(inbox: &Inbox, identity: &Identity, csrf: &str, flash: &str) -> String {
    let admin = identity.role == Role::Admin;
    let open = match inbox.break_glass.list(&inbox.approvals).await {
        Ok(open) => open,
        Err(e) => {
            return format!(
                r#"<p class="error" id="flash">{}</p>"#,
                escape(&e.to_string())
            )
        }
    };
    let rows: String = open
        .iter()
        .map(|w| {
            let close = if admin {
                format!(
                    r#"<form method="post" action="/breakglass/{id}/close" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="deny" id="close-{id}">Close now</button></form>"#,
                    id = escape(&form_urlencode(&w.identity)),
                    csrf = escape(csrf),
                )
            } else {
                String::new()
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{close}</td></tr>",
                escape(&w.identity),
                escape(&w.opened_by),
                escape(&crate::audit::chain::timestamp(
                    std::time::Duration::from_millis(w.until_ms)
                )),
                escape(&w.reason),
            )
        })
        .collect();
    let rows = if rows.is_empty() {
        r#"<tr><td colspan="5" id="no-windows">No window is open.</td></tr>"#.to_string()
    } else {
        rows
    };
    let agents: String = inbox
        .identities
        .all()
        .iter()
        .filter(|i| i.role == Role::Agent)
        .map(|i| format!(r#"<option value="{n}">{n}</option>"#, n = escape(&i.name)))
        .collect();
    let form = if admin {
        format!(
            r#"<h2>Open a window</h2>
<form method="post" action="/breakglass" id="open-window"><input type="hidden" name="csrf" value="{csrf}">{no_enter}
<p><label>Agent <select name="identity" id="window-identity">{agents}</select></label>
<label>For <input name="duration" id="window-duration" value="30m" size="6" maxlength="20"></label> (at most 24h)</p>
<p><label>Reason (recorded and announced) <input name="reason" id="window-reason" size="50" maxlength="2000" required></label></p>
<p><button type="submit" class="deny" id="window-open">Open break-glass window</button></p>
<p class="why">While it is open, every statement of this agent that a rule holds is approved at once, without approvers: each is recorded in the audit log as a break-glass decision and announced to every notification channel. Denied statements stay denied. It ends by itself.</p></form>"#,
            csrf = escape(csrf),
            no_enter = NO_IMPLICIT_SUBMIT,
        )
    } else {
        r#"<p class="why" id="why-no-break-glass">Only admins open and close break-glass windows.</p>"#
            .to_string()
    };
    format!(
        r#"{flash}<table id="windows"><thead><tr><th>Agent</th><th>Opened by</th><th>Until (UTC)</th><th>Reason</th><th></th></tr></thead><tbody>{rows}</tbody></table>
{form}"#
    )
}

pub async fn page_view(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let body = page_body(&inbox, &identity, &session.csrf, "").await;
    page("Break-glass", Some((&identity, &session)), &body).into_response()
}

pub async fn page_open(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Form(form): Form<OpenForm>,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !constant_eq(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token; reload the page").into_response();
    }
    match open(
        &inbox,
        &identity,
        &form.identity,
        &form.duration,
        &form.reason,
    )
    .await
    {
        Ok(_) => Redirect::to("/breakglass").into_response(),
        Err((status, why)) => {
            let flash = format!(r#"<p class="error" id="flash">{}</p>"#, escape(&why));
            let body = page_body(&inbox, &identity, &session.csrf, &flash).await;
            (
                status,
                page("Break-glass", Some((&identity, &session)), &body),
            )
                .into_response()
        }
    }
}

pub async fn page_close(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(target): Path<String>,
    Form(form): Form<CloseForm>,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !constant_eq(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token; reload the page").into_response();
    }
    match close(&inbox, &identity, &target).await {
        Ok(_) => Redirect::to("/breakglass").into_response(),
        Err((status, why)) => {
            let flash = format!(r#"<p class="error" id="flash">{}</p>"#, escape(&why));
            let body = page_body(&inbox, &identity, &session.csrf, &flash).await;
            (
                status,
                page("Break-glass", Some((&identity, &session)), &body),
            )
                .into_response()
        }
    }
}
