//! The routes, grouped by area. Each handler checks nothing itself beyond the HTTP edge: rules and
//! permissions live in the core, so every host enforces the same ones.

pub(crate) mod analytics;
pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod crm;
pub(crate) mod inbox;
pub(crate) mod live;
pub(crate) mod org;
pub(crate) mod sales;
pub(crate) mod search;
pub(crate) mod support;
pub(crate) mod sync;
pub(crate) mod system;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post, put},
};
use dashoffice_domain::api::ErrorBody;

use crate::AppState;

/// The error answers every authenticated route may give.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub(crate) enum Errors {
    /// The body is not the JSON this route expects.
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// No valid session token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such record.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Conflicts with the current state (duplicate, illegal transition).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A field broke a rule.
    #[response(status = 422)]
    Validation(ErrorBody),
    /// Too many attempts (login).
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

/// Largest CSV upload.
const MAX_CSV: usize = 64 * 1024 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/sync/status", get(sync::status))
        .route("/api/v1/sync/documents", get(sync::documents))
        .route("/api/v1/sync/reconnect", post(sync::reconnect))
        .route("/api/v1/events", get(live::events))
        .route("/api/v1/events/session", post(live::events_session))
        .route("/api/v1/analytics/summary", get(analytics::summary))
        .route("/api/v1/search", get(search::search))
        .route("/api/openapi.json", get(system::openapi))
        .route("/api/v1/backup", get(system::backup))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/shop", get(org::get_shop).patch(org::update_shop))
        .route("/api/v1/branches", get(org::list_branches).post(org::create_branch))
        .route("/api/v1/branches/{id}", get(org::get_branch).patch(org::update_branch).delete(org::archive_branch))
        .route("/api/v1/branches/{id}/invoicer", post(org::set_invoicer))
        .route("/api/v1/staff", get(org::list_staff).post(org::create_staff))
        .route("/api/v1/staff/{id}", get(org::get_staff).patch(org::update_staff).delete(org::archive_staff))
        .route("/api/v1/products", get(catalog::list_products).post(catalog::create_product))
        .route("/api/v1/products/import", post(catalog::import_products).layer(DefaultBodyLimit::max(MAX_CSV)))
        .route("/api/v1/products/export", get(catalog::export_products))
        .route(
            "/api/v1/products/{id}",
            get(catalog::get_product).patch(catalog::update_product).delete(catalog::archive_product),
        )
        .route("/api/v1/products/{id}/stock", get(catalog::product_stock).post(catalog::adjust_stock))
        .route("/api/v1/stock", get(catalog::list_stock))
        .route("/api/v1/customers", get(crm::list_customers).post(crm::create_customer))
        .route("/api/v1/customers/import", post(crm::import_customers).layer(DefaultBodyLimit::max(MAX_CSV)))
        .route("/api/v1/customers/export", get(crm::export_customers))
        .route(
            "/api/v1/customers/{id}",
            get(crm::get_customer).patch(crm::update_customer).delete(crm::archive_customer),
        )
        .route("/api/v1/customers/{id}/merge", post(crm::merge_customers))
        .route("/api/v1/customers/{id}/conversation", post(crm::start_conversation))
        .route("/api/v1/orders", get(sales::list_orders).post(sales::create_order))
        .route("/api/v1/orders/{id}", get(sales::get_order).patch(sales::update_order).delete(sales::archive_order))
        .route("/api/v1/orders/{id}/transitions", post(sales::transition_order))
        .route("/api/v1/orders/{id}/resolve", post(sales::resolve_order))
        .route("/api/v1/orders/{id}/invoice", post(sales::issue_invoice))
        .route("/api/v1/orders/{id}/credit-note", post(sales::issue_credit_note))
        .route("/api/v1/orders/{id}/returns", post(sales::return_items))
        .route("/api/v1/orders/{id}/email", post(sales::email_document))
        .route("/api/v1/invoices/export", get(sales::export_invoices))
        .route("/api/v1/orders/{id}/invoice.pdf", get(sales::order_invoice))
        .route("/api/v1/orders/{id}/whatsapp", post(inbox::send_order_document))
        .route("/api/v1/tickets", get(support::list_tickets).post(support::create_ticket))
        .route("/api/v1/tickets/export", get(support::export_tickets))
        .route("/api/v1/tickets/{id}", get(support::get_ticket).patch(support::update_ticket))
        .route("/api/v1/tickets/{id}/comments", post(support::comment_ticket))
        .route("/api/v1/conversations", get(inbox::list_conversations))
        .route("/api/v1/conversations/{id}", get(inbox::get_conversation).patch(inbox::update_conversation))
        .route("/api/v1/conversations/{id}/messages", post(inbox::send_message))
        .route("/api/v1/conversations/{id}/read", post(inbox::read_conversation))
        .route("/api/v1/conversations/{id}/assign", post(inbox::assign_conversation))
        .route("/api/v1/whatsapp/templates", get(inbox::list_templates).post(inbox::put_template))
        .route("/api/v1/whatsapp/broadcasts", get(inbox::list_broadcasts).post(inbox::send_broadcast))
        .route("/api/v1/whatsapp/broadcasts/{id}", axum::routing::delete(inbox::cancel_broadcast))
        .route("/api/v1/whatsapp/templates/{name}/{language}", axum::routing::delete(inbox::delete_template))
        .route("/api/v1/canned-responses", get(inbox::list_canned).post(inbox::put_canned))
        .route("/api/v1/canned-responses/{code}", axum::routing::delete(inbox::delete_canned))
        .route("/api/v1/shifts", get(inbox::list_shifts))
        .route("/api/v1/shifts/{staff_id}", put(inbox::put_shift))
        .route("/api/v1/bots", get(inbox::list_bots).post(inbox::put_bot))
        .route("/api/v1/bots/{name}/try", post(inbox::try_bot))
        .route("/api/v1/attachments/{sha256}", get(inbox::get_attachment))
}
