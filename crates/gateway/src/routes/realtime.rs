//! `/realtime/v1`: the WebSocket Supabase Realtime's clients connect to. This file is
//! the socket's plumbing (handshake, frames in and out, idle and expiry timers); what
//! the messages mean is `galley_realtime`'s.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use galley_realtime::{Frame, HttpBatch, HttpRefusal, Realtime, Session, Vsn};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/realtime/v1/websocket", web::get().to(websocket))
        .service(
            web::resource("/realtime/v1/api/broadcast")
                .route(web::post().to(broadcast_batch))
                .default_service(web::to(crate::routes::method_not_allowed)),
        )
        .service(
            web::resource("/realtime/v1/api/broadcast/{topic}/events/{event}")
                .route(web::post().to(broadcast_single))
                .default_service(web::to(crate::routes::method_not_allowed)),
        );
}

/// The caller of the broadcast API: `Authorization: Bearer` (any case), else the
/// `apikey` header, as Supabase Realtime reads it.
fn broadcast_token(req: &HttpRequest) -> Option<String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    header("authorization")
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .or_else(|| header("apikey").map(str::to_owned))
}

fn broadcast_refused(refusal: HttpRefusal) -> HttpResponse {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(refusal.body)
}

/// `POST /realtime/v1/api/broadcast`: `{"messages": [{topic, event, payload, private}]}`;
/// 202 with no body.
async fn broadcast_batch(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(realtime) = state.realtime.clone() else {
        return Err(ApiError::not_found());
    };
    let batch: HttpBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(_) => {
            return Ok(broadcast_refused(HttpRefusal {
                status: 422,
                body: serde_json::json!({ "errors": { "messages": ["is invalid"] } }),
            }));
        }
    };
    match realtime
        .broadcast_batch(broadcast_token(&req).as_deref(), batch)
        .await
    {
        Ok(()) => Ok(HttpResponse::Accepted().finish()),
        Err(refusal) => Ok(broadcast_refused(refusal)),
    }
}

#[derive(serde::Deserialize)]
struct SingleQuery {
    private: Option<String>,
}

/// `POST /realtime/v1/api/broadcast/{topic}/events/{event}[?private=true]`: the body
/// (JSON, or bytes as `application/octet-stream`) as one user broadcast; 202.
async fn broadcast_single(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(realtime) = state.realtime.clone() else {
        return Err(ApiError::not_found());
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let json = match content_type.as_deref() {
        None | Some("application/json") => true,
        Some("application/octet-stream") => false,
        Some(_) => {
            return Ok(HttpResponse::UnsupportedMediaType().json(serde_json::json!({
                "error": "Unsupported Media Type. Use application/json or application/octet-stream"
            })));
        }
    };
    let private = web::Query::<SingleQuery>::from_query(req.query_string())
        .ok()
        .and_then(|query| query.into_inner().private)
        .is_some_and(|flag| flag == "true");
    let (topic, event) = path.into_inner();
    match realtime
        .broadcast_single(
            broadcast_token(&req).as_deref(),
            &topic,
            &event,
            private,
            body,
            json,
        )
        .await
    {
        Ok(()) => Ok(HttpResponse::Accepted().finish()),
        Err(refusal) => Ok(broadcast_refused(refusal)),
    }
}

#[derive(serde::Deserialize)]
struct Handshake {
    apikey: Option<String>,
    vsn: Option<String>,
}

/// A refused handshake, in Supabase Realtime's shape (`{"error": ...}`); the client
/// only sees that the socket did not open, and retries.
fn refused(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(realtime) = state.realtime.clone() else {
        return Err(ApiError::not_found());
    };
    let query = web::Query::<Handshake>::from_query(req.query_string())
        .map_err(|err| ApiError::invalid_query(format!("the query string is not valid: {err}")))?;
    let Some(vsn) = Vsn::parse(query.vsn.as_deref()) else {
        // Phoenix's answer to a serializer it does not have.
        return Ok(HttpResponse::Forbidden().finish());
    };
    // `x-api-key` first, as Supabase Realtime reads it, then the query's `apikey`.
    let header_key = req
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok());
    let apikey = header_key.or(query.apikey.as_deref());
    // A request that is not a WebSocket handshake is refused before anything is counted.
    let (response, socket, stream) = actix_ws::handle(&req, body).map_err(|err| {
        ApiError::with_status(
            StatusCode::BAD_REQUEST,
            "invalid_handshake",
            format!("not a WebSocket handshake: {err}"),
        )
    })?;
    let (session, frames) = match realtime.connect(apikey, vsn) {
        Ok(connected) => connected,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return Ok(refused(status, &refusal.message()));
        }
    };
    let max = realtime.config().max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    tracing::debug!(connection = session.id(), "realtime connection opened");
    actix_web::rt::spawn(serve(realtime, session, frames, socket, stream));
    Ok(response)
}

fn close_reason(code: u16, reason: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then(|| reason.to_owned()),
    })
}

/// One connection, until either side closes it: the client's frames to the session,
/// the session's frames (and whatever others fan out to it) to the client.
async fn serve(
    realtime: std::sync::Arc<Realtime>,
    mut session: Session,
    mut frames: mpsc::Receiver<Frame>,
    mut socket: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let idle = Duration::from_secs(realtime.config().idle_timeout_secs);
    let mut last_heard = tokio::time::Instant::now();
    let close = loop {
        let expiry = session.next_expiry();
        tokio::select! {
            // What the client is owed goes out before more of what it sends is read.
            biased;
            frame = frames.recv() => match frame {
                Some(Frame::Text(text)) => {
                    if socket.text(text).await.is_err() {
                        break None;
                    }
                }
                Some(Frame::Binary(bytes)) => {
                    if socket.binary(bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Frame::Close(code, reason)) => break close_reason(code, &reason),
                Some(Frame::Resume(resume)) => session.resume(resume),
                None => break None,
            },
            () = session.overflowed() => {
                tracing::info!(connection = session.id(), "a realtime client fell behind its messages; closing its connection");
                break close_reason(1013, "too many messages waiting for the client");
            }
            message = stream.recv() => {
                last_heard = tokio::time::Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => session.on_text(&text),
                    Some(Ok(AggregatedMessage::Binary(bytes))) => session.on_binary(&bytes),
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if socket.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(err)) => {
                        let code = match err {
                            actix_ws::ProtocolError::Overflow => 1009,
                            _ => 1002,
                        };
                        tracing::info!(connection = session.id(), error = %err, "a realtime client broke the WebSocket protocol; closing its connection");
                        break close_reason(code, &err.to_string());
                    }
                }
            }
            () = tokio::time::sleep_until(last_heard + idle) => {
                tracing::debug!(connection = session.id(), "a realtime client went quiet; closing its connection");
                break close_reason(1000, "");
            }
            () = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => session.expire(),
        }
    };
    // Whatever the session queued last (a system message, a phx_close) goes out before
    // the close frame.
    while let Ok(frame) = frames.try_recv() {
        let sent = match frame {
            Frame::Text(text) => socket.text(text).await,
            Frame::Binary(bytes) => socket.binary(bytes).await,
            Frame::Close(..) => break,
            Frame::Resume(_) => continue,
        };
        if sent.is_err() {
            break;
        }
    }
    let id = session.id();
    drop(session);
    let _ = socket.close(close).await;
    tracing::debug!(connection = id, "realtime connection closed");
}
