//! The OpenAPI 3 document, generated from the route annotations and the wire types.

use dashoffice_domain::{
    FieldError, OrderStatus, Role, Transition,
    api::{
        AdjustStock, BranchView, CreateBranch, CreateCustomer, CreateOrder, CreateProduct, CreateStaff, CreditNoteView,
        CustomerView, DecimalText, EmailOrderDocument, ErrorBody, ErrorDetail, Health, ImportReport, ImportRowError,
        InvoiceView, IssueCreditNote, LoginRequest, LoginResponse, MergeCustomers, OrderEmailView, OrderLineInput,
        OrderLineView, OrderReturnView, OrderView, ProductView, ResolveOrder, ReturnItems, ReturnLineInput, ShopView,
        StaffView, StartConversation, StockView, SyncDocument, SyncPeerStatus, SyncStatus, TransitionOrder,
        UpdateBranch, UpdateCustomer, UpdateOrder, UpdateProduct, UpdateShop, UpdateStaff,
    },
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description served at /api/openapi.json.
#[derive(OpenApi)]
#[openapi(
    info(title = "DashOffice local API", description = "The JSON API of a DashOffice replica (edge node or desktop app)."),
    modifiers(&BearerAuth),
    paths(
        routes::search::search,
        routes::system::healthz,
        routes::system::metrics,
        routes::system::openapi,
        routes::sync::status,
        routes::sync::documents,
        routes::sync::reconnect,
        routes::live::events,
        routes::live::events_session,
        routes::system::backup,
        routes::analytics::summary,
        routes::auth::login,
        routes::auth::logout,
        routes::auth::me,
        routes::org::get_shop,
        routes::org::update_shop,
        routes::org::list_branches,
        routes::org::create_branch,
        routes::org::get_branch,
        routes::org::update_branch,
        routes::org::set_invoicer,
        routes::org::archive_branch,
        routes::org::list_staff,
        routes::org::create_staff,
        routes::org::get_staff,
        routes::org::update_staff,
        routes::org::archive_staff,
        routes::catalog::list_products,
        routes::catalog::create_product,
        routes::catalog::get_product,
        routes::catalog::update_product,
        routes::catalog::archive_product,
        routes::catalog::product_stock,
        routes::catalog::adjust_stock,
        routes::catalog::list_stock,
        routes::catalog::import_products,
        routes::catalog::export_products,
        routes::crm::list_customers,
        routes::crm::create_customer,
        routes::crm::get_customer,
        routes::crm::update_customer,
        routes::crm::archive_customer,
        routes::crm::merge_customers,
        routes::crm::start_conversation,
        routes::crm::import_customers,
        routes::crm::export_customers,
        routes::sales::list_orders,
        routes::sales::create_order,
        routes::sales::get_order,
        routes::sales::update_order,
        routes::sales::archive_order,
        routes::sales::transition_order,
        routes::sales::resolve_order,
        routes::sales::issue_invoice,
        routes::sales::issue_credit_note,
        routes::sales::return_items,
        routes::sales::email_document,
        routes::sales::export_invoices,
        routes::sales::order_invoice,
        routes::support::list_tickets,
        routes::support::export_tickets,
        routes::support::create_ticket,
        routes::support::get_ticket,
        routes::support::update_ticket,
        routes::support::comment_ticket,
        routes::inbox::send_order_document,
        routes::inbox::list_conversations,
        routes::inbox::get_conversation,
        routes::inbox::update_conversation,
        routes::inbox::send_message,
        routes::inbox::read_conversation,
        routes::inbox::assign_conversation,
        routes::inbox::list_templates,
        routes::inbox::put_template,
        routes::inbox::send_broadcast,
        routes::inbox::cancel_broadcast,
        routes::inbox::list_broadcasts,
        routes::inbox::delete_template,
        routes::inbox::list_canned,
        routes::inbox::put_canned,
        routes::inbox::delete_canned,
        routes::inbox::list_shifts,
        routes::inbox::put_shift,
        routes::inbox::list_bots,
        routes::inbox::put_bot,
        routes::inbox::try_bot,
        routes::inbox::get_attachment,
    ),
    components(schemas(
        FieldError, OrderStatus, Role, Transition, AdjustStock, BranchView, CreateBranch, CreateCustomer, CreateOrder, CreateProduct,
        CreateStaff, CustomerView, DecimalText, ErrorBody, ErrorDetail, Health, ImportReport, ImportRowError, LoginRequest, LoginResponse,
        MergeCustomers, StartConversation, ResolveOrder, OrderLineInput, OrderLineView, OrderView, InvoiceView, CreditNoteView, IssueCreditNote, ReturnItems, ReturnLineInput, OrderReturnView, EmailOrderDocument, OrderEmailView, ProductView, ShopView, StaffView, StockView, SyncStatus, SyncPeerStatus, SyncDocument, TransitionOrder, UpdateBranch,
        UpdateCustomer, UpdateOrder, UpdateProduct, UpdateShop, UpdateStaff,
        dashoffice_domain::inbox::ConversationView, dashoffice_domain::inbox::ConversationState,
        dashoffice_domain::inbox::MessageView, dashoffice_domain::inbox::MessageStatus,
        dashoffice_domain::inbox::ConversationThread, dashoffice_domain::inbox::SendMessage, dashoffice_domain::inbox::SendOrderDocument,
        dashoffice_domain::inbox::ReplyButton, dashoffice_domain::inbox::ListRow,
        dashoffice_domain::inbox::UpdateConversation, dashoffice_domain::inbox::TemplateView, dashoffice_domain::inbox::ShiftView,
        dashoffice_domain::inbox::SendBroadcast, dashoffice_domain::inbox::BroadcastReport, dashoffice_domain::inbox::BroadcastSkip, dashoffice_domain::inbox::BroadcastSummary,
        dashoffice_domain::inbox::CannedResponse,
        dashoffice_domain::api::SearchHit, dashoffice_domain::api::SearchResults,
        dashoffice_domain::TicketStatus, dashoffice_domain::TicketPriority, dashoffice_domain::api::TicketView,
        dashoffice_domain::api::TicketComment, dashoffice_domain::api::CreateTicket, dashoffice_domain::api::UpdateTicket,
        dashoffice_domain::api::AddTicketComment
    ))
)]
pub struct ApiDoc;
