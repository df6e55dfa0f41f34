//! Orders and their workflow.

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use dashoffice_core::{
    CoreError,
    entities::{orders, returns},
    invoice::{self, Lang},
};
use dashoffice_domain::api::{
    CreateOrder, EmailOrderDocument, InvoiceExportParams, InvoiceParams, IssueCreditNote, ListParams, OrderView, Page,
    ResolveOrder, ReturnItems, TransitionOrder, UpdateOrder,
};

use super::Errors;
use crate::{ApiJson, ApiQuery, AppState, Auth, error::ApiResult};

/// Orders (filters `status`, `branch_id`, `customer_id` incl. merged customers, `q` number; sort
/// `created_at` (default `-created_at`), `updated_at`, `total`, `number`).
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<OrderView>), Errors))]
pub(crate) async fn list_orders(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<OrderView>>> {
    Ok(Json(s.read(move |conn| orders::list(conn, &c, &p)).await?))
}

/// Creates a draft order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrder,
    responses((status = 201, body = OrderView), Errors))]
pub(crate) async fn create_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiJson(b): ApiJson<CreateOrder>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let home = s.home_branch();
    Ok((StatusCode::CREATED, Json(s.replica.write(move |ctx| orders::create(ctx, &c, home.as_deref(), b)).await?)))
}

/// One order with lines and transitions.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn get_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.read(move |conn| orders::get(conn, &c, &id)).await?))
}

/// The order as a printable sales document (PDF, A4): a quote while it is a draft, then the
/// shop's sales note, marked when cancelled or refunded; once invoiced, the invoice with its
/// legal (or provisional) number; once a credit note undoes it, the credit note
/// (`document=invoice` still gives the invoice); a return's credit note with
/// `document=return:{id}`. Labels in `lang` (`es` or `en`). Not an electronic invoice of a tax authority; the document says so.
#[utoipa::path(get, path = "/api/v1/orders/{id}/invoice.pdf", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path), InvoiceParams),
    responses((status = 200, description = "The PDF", content_type = "application/pdf"), Errors))]
pub(crate) async fn order_invoice(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<InvoiceParams>,
) -> ApiResult<Response> {
    let lang = Lang::parse("lang", q.lang.as_deref().unwrap_or("es")).map_err(|e| CoreError::Validation(e.into()))?;
    let now = s.replica.now_ms();
    let pdf = s.read(move |conn| invoice::order_pdf_of(conn, &c, &id, lang, now, q.document.as_deref())).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, format!("inline; filename=\"{}\"", pdf.file_name)),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        pdf.bytes,
    )
        .into_response())
}

/// Changes a draft's lines, or notes and seller.
#[utoipa::path(patch, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateOrder, responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn update_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateOrder>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::update(ctx, &c, &id, b)).await?))
}

/// Archives an order that holds no stock.
#[utoipa::path(delete, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn archive_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::archive(ctx, &c, &id)).await?))
}

/// Moves an order one legal step (draft → confirmed → paid → fulfilled → delivered; cancelled
/// before payment; refunded after).
#[utoipa::path(post, path = "/api/v1/orders/{id}/transitions", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = TransitionOrder, responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn transition_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<TransitionOrder>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::transition(ctx, &c, &id, b)).await?))
}

/// Settles an order whose workflow forked between replicas (two devices moved it in different
/// directions while offline) on the status it really has, one some replica moved it to (owners
/// and managers; 409 when there is no conflict).
#[utoipa::path(post, path = "/api/v1/orders/{id}/resolve", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ResolveOrder, responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn resolve_order(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ResolveOrder>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::resolve(ctx, &c, &id, b)).await?))
}

/// Issues the order's invoice: a provisional number at once (on any replica, offline too), then
/// the legal number of the branch's series from the branch's numbering device (see
/// `invoicer_code` on the branch). Once confirmed and until cancelled or refunded (409 naming
/// `status`), with the shop's tax id set (409 naming `tax_id`). Issuing again returns the same
/// invoice.
#[utoipa::path(post, path = "/api/v1/orders/{id}/invoice", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn issue_invoice(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::issue_invoice(ctx, &c, &id)).await?))
}

/// The invoice register as CSV (owners and managers): every issued invoice of the branches the
/// caller sees, legal numbers in order, then those waiting for one; `month=YYYY-MM` for one month
/// in the shop's time zone (422 naming `month` otherwise).
#[utoipa::path(get, path = "/api/v1/invoices/export", tag = "orders", security(("bearer" = [])), params(InvoiceExportParams),
    responses((status = 200, content_type = "text/csv", body = String), Errors))]
pub(crate) async fn export_invoices(
    State(s): State<AppState>,
    Auth(c): Auth,
    ApiQuery(q): ApiQuery<InvoiceExportParams>,
) -> ApiResult<Response> {
    // A well-formed month names the file (anything else is refused by the export).
    let month = q.month.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
    let file = match &month {
        Some(m) if m.len() == 7 && m.bytes().all(|b| b.is_ascii_digit() || b == b'-') => format!("invoices-{m}"),
        _ => "invoices".to_string(),
    };
    super::catalog::export_named(s, file, move |r, out| {
        dashoffice_core::csv_io::export_invoices(r, &c, month.as_deref(), out)
    })
    .await
}

/// Issues the credit note that undoes the invoice of an order cancelled or refunded after it was
/// invoiced (`reason` optional, ≤ 500 characters): a provisional number at once, then the next
/// number of the series `NC-{invoice series}` from the branch's numbering device, once the
/// invoice has its own. 409 naming `invoice` (none to undo) or `status` (not cancelled or
/// refunded). Issuing again returns the same credit note.
#[utoipa::path(post, path = "/api/v1/orders/{id}/credit-note", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = IssueCreditNote, responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn issue_credit_note(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<IssueCreditNote>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| orders::issue_credit_note(ctx, &c, &id, b)).await?))
}

/// Records that the customer brought back units of a paid, fulfilled or delivered order: `lines`
/// as `{line, quantity}` (the line's position from 0; at most the units not returned yet),
/// `reason` (≤ 500 characters), `restock` (default true: the units go back into the branch's
/// stock; false for damaged goods), `id` (the client's, so a retry records it once). Written on
/// any replica, offline too. An invoiced order's return gets its own credit note: a provisional
/// number at once, then the next of the series `NC-{invoice series}` from the branch's numbering
/// device; its PDF is `invoice.pdf?document=return:{id}`. 422 naming the line's field; 409
/// naming `status` (not paid, fulfilled or delivered) or `returns` (50 already).
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ReturnItems, responses((status = 200, body = OrderView), Errors))]
pub(crate) async fn return_items(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReturnItems>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(s.replica.write(move |ctx| returns::return_items(ctx, &c, &id, b)).await?))
}

/// E-mails the order's document as a PDF: the credit note if there is one, else the invoice, else
/// the sales note (or `document`), to `to` or the customer's e-mail address. Written at once on any
/// replica, offline too (202: queued); the relay sends it — an invoice or a credit note once it
/// has its legal number — and the order's `emails` say when the mail server took it or why it
/// failed. 422 naming `to`, `document`, `lang` or `message`; 409 naming `to` (the customer has
/// no address), `emails` (20 e-mails already), `document` (the order has no such document) or
/// `status` (a draft).
#[utoipa::path(post, path = "/api/v1/orders/{id}/email", tag = "orders", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = EmailOrderDocument, responses((status = 202, body = OrderView), Errors))]
pub(crate) async fn email_document(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<EmailOrderDocument>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let o = s.replica.write(move |ctx| dashoffice_core::entities::emails::request(ctx, &c, &id, b)).await?;
    Ok((StatusCode::ACCEPTED, Json(o)))
}
