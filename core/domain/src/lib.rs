//! DashOffice domain: the rules of shops, products, stock, customers and orders, and the JSON wire
//! types of the local API. No IO, no async, no storage: it compiles for wasm32 so the UI shares it.

mod error;
mod money;
mod order;
#[cfg(feature = "phone")]
mod phone;
mod role;
mod ticket;
mod validate;

pub mod api;
pub mod inbox;

pub use error::{FieldError, FieldErrors};
pub use money::{
    Currency, LineAmounts, Totals, add_money, compute_line, compute_totals, mul_money, parse_decimal, round_money,
};
pub use order::{OrderStatus, Transition, effective_status, legal_transition, resolution_choices};
#[cfg(feature = "phone")]
pub use phone::normalize_phone;
pub use role::{Permission, Role};
pub use ticket::{TicketPriority, TicketStatus};
pub use validate::{
    normalize_email, normalize_tags, normalize_tax_id, normalize_tax_id_in, tax_id_label, validate_address,
    validate_branch_code, validate_contact_phone, validate_name, validate_sku, validate_tax_rate,
};

/// Version of the document schema this build writes. Stored in every document's root.
pub const DOC_SCHEMA_VERSION: u64 = 1;
