//! JSON wire types of the local API (`/api/v1`). Shared by the API server and the UI, so both sides
//! agree on every field. Amounts travel as decimal strings ("12.50"); inputs also accept numbers.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{OrderStatus, Role, TicketPriority, TicketStatus, Transition};

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

/// A decimal amount as the client wrote it: a string ("12.50") or a JSON number (12.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema), schema(value_type = String, example = "12.50"))]
#[serde(transparent)]
pub struct DecimalText(pub String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DecimalText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal string such as \"12.50\" or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DecimalText, E> {
                // `{}` prints the shortest text that reads back as the same f64: what the client typed.
                Ok(DecimalText(format!("{v}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl From<&str> for DecimalText {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// The error body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Machine-readable kind: `validation`, `not_found`, `conflict`, `unauthorized`, `forbidden`,
    /// `malformed_json`, `payload_too_large`, `unsupported_media_type`, `internal`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The first offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// The rule that field broke.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    /// Every offending field, for forms that show errors next to each input.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<crate::FieldError>,
}

/// One page of a list and the cursor of the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Page<T> {
    /// The records of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/orders/{id}/invoice.pdf`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
pub struct InvoiceParams {
    /// Language of the document's labels: `es` (default) or `en`.
    pub lang: Option<String>,
    /// `invoice` for the order's invoice even after a credit note undid it, `credit_note` for
    /// the credit note (of what the returns did not take back), `return:{id}` for a return's
    /// credit note (its return note when the order has no invoice); absent: the order's current
    /// document.
    pub document: Option<String>,
}

/// Query of `GET /api/v1/invoices/export`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
pub struct InvoiceExportParams {
    /// Only this month (`YYYY-MM`, in the shop's time zone); every invoice when absent.
    pub month: Option<String>,
}

/// Query of `GET /api/v1/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for: words of a product's name, SKU, description or tags; a customer's name,
    /// phone, WhatsApp number, e-mail, tags or notes; an order's number, notes or customer's name; a WhatsApp
    /// message's text. Accents and case do not matter, the last word may be cut short and longer
    /// words may have one typo. 1 to 200 characters.
    pub q: Option<String>,
    /// Only these kinds, comma-separated: `product`, `customer`, `order`, `message`, `ticket`
    /// (default all).
    pub kinds: Option<String>,
    /// Most hits to return, 1 to 50 (default 20).
    pub limit: Option<u32>,
}

/// One record found by `GET /api/v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchHit {
    /// `product`, `customer`, `order` or `message`.
    pub kind: String,
    /// The record's id (for a message, the message's).
    pub id: String,
    /// What to show first: the product's or customer's name, the order's number, the
    /// conversation's customer.
    pub title: String,
    /// A second line: SKU and price; phone and e-mail; customer, status and total; the message.
    pub subtitle: String,
    /// The web UI's page for it (`/products/{id}`, `/customers/{id}`, `/orders/{id}`,
    /// `/conversations/{id}`).
    pub link: String,
    /// Relevance; higher first.
    pub score: f32,
}

/// Answer of `GET /api/v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchResults {
    /// The query as understood: the words searched for, folded (no accents, lower case).
    pub terms: Vec<String>,
    /// The best hits the caller may see, most relevant first.
    pub hits: Vec<SearchHit>,
    /// The index is still catching up with recent changes (after a start, or a large sync):
    /// records changed in the last seconds may be missing.
    pub indexing: bool,
}

/// Common list parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
pub struct ListParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Sort key; prefix with `-` for descending (e.g. `-created_at`).
    pub sort: Option<String>,
    /// Free-text filter (name, SKU, phone, e-mail or number, depending on the list).
    pub q: Option<String>,
    /// Include archived records.
    pub archived: Option<bool>,
    /// Only records with this tag.
    pub tag: Option<String>,
    /// Only records of this branch (orders, stock).
    pub branch_id: Option<String>,
    /// Only orders in this status.
    pub status: Option<String>,
    /// Only orders of this customer.
    pub customer_id: Option<String>,
    /// Only active (true) or inactive (false) products.
    pub active: Option<bool>,
    /// Only staff of this role: owner, manager, seller or support.
    pub role: Option<String>,
    /// Only orders whose invoice is: `none` (not issued), `issued` (any), `pending` (waiting for
    /// its legal number) or `posted` (with its legal number).
    pub invoice: Option<String>,
}

// ---------- auth ----------

/// POST /api/v1/auth/login
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginRequest {
    /// The staff member's e-mail.
    pub email: String,
    /// The password.
    pub password: String,
}

/// What `{:?}` shows of a secret: never the secret.
pub const REDACTED: &str = "<redacted>";

// Secrets never show in debug output (a log line, a panic message): hand-written `Debug`s.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("email", &self.email).field("password", &REDACTED).finish()
    }
}

/// A session token and who it belongs to.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Unix milliseconds after which the token is refused.
    pub expires_at: i64,
    /// The logged-in staff member.
    pub user: StaffView,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

// ---------- shop & branches ----------

/// The shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShopView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Default ISO-4217 currency of new products.
    pub currency: String,
    /// ISO-3166 alpha-2 region used to read national phone numbers.
    pub phone_region: String,
    /// IANA time zone.
    pub timezone: String,
    /// The legal name printed on sales documents (the name when empty).
    #[serde(default)]
    pub legal_name: String,
    /// Tax id (RFC, CUIT, NIT…), upper-case; empty when none.
    #[serde(default)]
    pub tax_id: String,
    /// What the tax id is called in the shop's country (`RFC` for MX, `CUIT` for AR…), from
    /// `phone_region`; empty where unknown.
    #[serde(default)]
    pub tax_id_label: String,
    /// Fiscal address, up to 3 lines.
    #[serde(default)]
    pub address: String,
    /// Phone printed on sales documents.
    #[serde(default)]
    pub phone: String,
    /// E-mail printed on sales documents.
    #[serde(default)]
    pub email: String,
    /// Whether a customer whose WhatsApp conversation is resolved is asked to rate it (three
    /// reply buttons; see `ConversationView::rating`).
    #[serde(default)]
    pub satisfaction_survey: bool,
    /// The survey's question in the shop's own words (empty: the built-in one, in the customer's
    /// language).
    #[serde(default)]
    pub satisfaction_question: String,
    /// Whether invoices and credit notes are e-mailed to the customer (if they have an address)
    /// as they are issued.
    #[serde(default)]
    pub email_invoices: bool,
    /// The hour (0–23, shop time) the day before's summary is e-mailed to the owners and
    /// managers; absent: off.
    #[serde(default)]
    pub daily_report_hour: Option<u8>,
    /// WhatsApp notices to the customer when an order reaches a status: status (`confirmed`,
    /// `paid`, `fulfilled`, `delivered`, `cancelled`, `refunded`) → text, where `{number}`,
    /// `{total}`, `{customer}` and `{shop}` are replaced. A status absent: no notice.
    #[serde(default)]
    pub order_notices: std::collections::BTreeMap<String, String>,
    /// The approved template sent instead of a notice's text when the customer last wrote more
    /// than 24 hours ago; its parameters, in order: the order number, the notice's text, the
    /// total, the shop's name. Absent: the notice is not sent then.
    #[serde(default)]
    pub order_notice_template: Option<String>,
}

/// PATCH /api/v1/shop
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateShop {
    /// New name.
    pub name: Option<String>,
    /// New default currency.
    pub currency: Option<String>,
    /// New phone region.
    pub phone_region: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// Legal name; an empty string clears it (as do the fields below).
    pub legal_name: Option<String>,
    /// Tax id: 3 to 32 letters, digits and `-` `.` `/` `&` ` ` with at least one digit.
    pub tax_id: Option<String>,
    /// Fiscal address: at most 3 lines of 100 characters.
    pub address: Option<String>,
    /// Phone: at most 40 characters, at least 6 digits.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Ask customers to rate a WhatsApp conversation when it is resolved.
    #[serde(default)]
    pub satisfaction_survey: Option<bool>,
    /// The survey's question, at most 1,024 characters; an empty string goes back to the built-in one.
    #[serde(default)]
    pub satisfaction_question: Option<String>,
    /// E-mail invoices and credit notes to the customer as they are issued.
    #[serde(default)]
    pub email_invoices: Option<bool>,
    /// E-mail the day before's summary to the owners and managers at this hour (0–23, shop
    /// time); -1 turns it off (absent or null: unchanged).
    #[serde(default)]
    pub daily_report_hour: Option<i64>,
    /// The WhatsApp notices to set, by status (see `ShopView::order_notices`; at most 1,000
    /// characters each); an empty text turns that status's notice off. Statuses not named keep
    /// theirs.
    #[serde(default)]
    pub order_notices: Option<std::collections::BTreeMap<String, String>>,
    /// The notices' template outside the 24-hour window: an approved template of at most 4
    /// parameters; an empty string clears it.
    #[serde(default)]
    pub order_notice_template: Option<String>,
}

/// A branch office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BranchView {
    /// Id.
    pub id: String,
    /// Short code that starts the branch's order numbers.
    pub code: String,
    /// Name.
    pub name: String,
    /// Archived.
    pub archived: bool,
    /// Address printed on the branch's sales documents.
    #[serde(default)]
    pub address: String,
    /// Phone printed on the branch's sales documents.
    #[serde(default)]
    pub phone: String,
    /// The series of the branch's legal invoice numbers (`{series}-{8 digits}`); the branch code
    /// unless set.
    #[serde(default)]
    pub invoice_series: String,
    /// The code of the device that gives the branch's invoices their legal numbers (the code in
    /// its order numbers); empty when none does: invoices then stay provisional.
    #[serde(default)]
    pub invoicer_code: String,
    /// Whether the replica answering is that device.
    #[serde(default)]
    pub invoicing_here: bool,
}

/// POST /api/v1/branches
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBranch {
    /// 2 to 8 upper-case letters or digits, unique in the shop.
    pub code: String,
    /// Name.
    pub name: String,
    /// Address: at most 3 lines of 100 characters.
    #[serde(default)]
    pub address: Option<String>,
    /// Phone: at most 40 characters, at least 6 digits.
    #[serde(default)]
    pub phone: Option<String>,
}

/// PATCH /api/v1/branches/{id}
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateBranch {
    /// New name.
    pub name: Option<String>,
    /// New address; an empty string clears it.
    pub address: Option<String>,
    /// New phone; an empty string clears it.
    pub phone: Option<String>,
    /// The series of the branch's legal invoice numbers: 1 to 10 upper-case letters or digits
    /// (e.g. `A`, `F001`, `0003`); an empty string goes back to the branch code. Numbers start
    /// again at 1 in a series not used before.
    pub invoice_series: Option<String>,
}

// ---------- staff ----------

/// A staff member (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StaffView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// E-mail, unique in the shop; the login.
    pub email: String,
    /// Role.
    pub role: Role,
    /// The branch the member is limited to, if any.
    pub branch_id: Option<String>,
    /// Archived members cannot log in.
    pub archived: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Whether this member gets the shop's daily summary by e-mail (owners and managers only;
    /// the shop's `daily_report_hour` says when).
    #[serde(default = "yes")]
    pub daily_summary: bool,
    /// The language of the e-mails this member gets: `es` or `en`.
    #[serde(default = "spanish")]
    pub lang: String,
}

fn yes() -> bool {
    true
}

fn spanish() -> String {
    "es".into()
}

/// POST /api/v1/staff
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateStaff {
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Branch scope (required for sellers).
    pub branch_id: Option<String>,
    /// At least 8 characters.
    pub password: String,
}

impl std::fmt::Debug for CreateStaff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateStaff")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("branch_id", &self.branch_id)
            .field("password", &REDACTED)
            .finish()
    }
}

/// PATCH /api/v1/staff/{id}
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateStaff {
    /// New name.
    pub name: Option<String>,
    /// New e-mail (the login), unique in the shop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// New branch scope; an empty string removes it.
    pub branch_id: Option<String>,
    /// New password (at least 8 characters).
    pub password: Option<String>,
    /// The current password: required to change one's own password (a stolen session alone
    /// cannot lock its owner out). Not needed when a manager sets someone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
    /// Whether the member gets the daily summary by e-mail (anyone may set their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_summary: Option<bool>,
    /// The language of the member's e-mails: `es` or `en` (anyone may set their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

impl std::fmt::Debug for UpdateStaff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateStaff")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("branch_id", &self.branch_id)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("current_password", &self.current_password.as_ref().map(|_| REDACTED))
            .field("daily_summary", &self.daily_summary)
            .field("lang", &self.lang)
            .finish()
    }
}

// ---------- products & stock ----------

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProductView {
    /// Id.
    pub id: String,
    /// Stock-keeping unit, unique in the shop.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Unit price before tax, exact decimal string.
    pub price: String,
    /// ISO-4217 currency.
    pub currency: String,
    /// Tax rate as a fraction ("0.16").
    pub tax_rate: String,
    /// Offered for sale.
    pub active: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Archived.
    pub archived: bool,
    /// Another product has the same SKU (two replicas created it offline); rename one.
    pub sku_conflict: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// POST /api/v1/products
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// SKU, unique in the shop.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Unit price before tax (≥ 0, at most 4 decimals).
    pub price: DecimalText,
    /// ISO-4217 currency; the shop's by default.
    pub currency: Option<String>,
    /// Tax rate as a fraction 0–1; 0 by default.
    pub tax_rate: Option<DecimalText>,
    /// Offered for sale; true by default.
    pub active: Option<bool>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// PATCH /api/v1/products/{id}
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    /// New SKU.
    pub sku: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price: Option<DecimalText>,
    /// New currency.
    pub currency: Option<String>,
    /// New tax rate.
    pub tax_rate: Option<DecimalText>,
    /// Offered for sale.
    pub active: Option<bool>,
    /// New tags (replace the old ones).
    pub tags: Option<Vec<String>>,
}

/// Stock of one product in one branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StockView {
    /// Product id.
    pub product_id: String,
    /// Branch id.
    pub branch_id: String,
    /// Units on hand: adjustments minus units committed to orders.
    pub on_hand: i64,
    /// Sum of all adjustments (receipts, counts, losses).
    pub adjusted: i64,
    /// Units committed to confirmed, paid, fulfilled or delivered orders.
    pub committed: i64,
    /// On hand is below zero: more was sold than there was.
    pub oversold: bool,
}

/// POST /api/v1/products/{id}/stock
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// The branch; the caller's own branch by default.
    pub branch_id: Option<String>,
    /// Units to add (positive) or remove (negative); not zero.
    pub delta: i64,
    /// Why: `receipt`, `count`, `loss`, `return` or free text.
    pub reason: String,
}

// ---------- customers ----------

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CustomerView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// E.164 phone.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Notes.
    pub notes: String,
    /// WhatsApp id (E.164 digits without '+').
    pub wa_id: Option<String>,
    /// When merged, the customer it was merged into.
    pub merged_into: Option<String>,
    /// Ids of customers merged into this one.
    pub merged_from: Vec<String>,
    /// Tax id (RFC, CUIT, NIT…) for their sales documents; empty when none.
    #[serde(default)]
    pub tax_id: String,
    /// Billing address, up to 3 lines.
    #[serde(default)]
    pub address: String,
    /// Archived.
    pub archived: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The language of their e-mails: `es` or `en`.
    #[serde(default = "default_lang")]
    pub lang: String,
}

/// POST /api/v1/customers
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    /// Name.
    pub name: String,
    /// Phone in any common notation; stored as E.164.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Notes.
    #[serde(default)]
    pub notes: String,
    /// WhatsApp id.
    pub wa_id: Option<String>,
    /// Tax id: 3 to 32 letters, digits and `-` `.` `/` `&` ` ` with at least one digit.
    #[serde(default)]
    pub tax_id: Option<String>,
    /// Billing address: at most 3 lines of 100 characters.
    #[serde(default)]
    pub address: Option<String>,
    /// The language of their e-mails: `es` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// PATCH /api/v1/customers/{id}; an empty string clears phone, email, wa_id, tax_id or address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    /// New name.
    pub name: Option<String>,
    /// New phone.
    pub phone: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New notes.
    pub notes: Option<String>,
    /// New WhatsApp id.
    pub wa_id: Option<String>,
    /// New tax id.
    pub tax_id: Option<String>,
    /// New billing address.
    pub address: Option<String>,
    /// The language of their e-mails: `es` or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

fn default_lang() -> String {
    "es".into()
}

/// POST /api/v1/customers/{id}/merge
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeCustomers {
    /// The duplicate to fold into the customer in the path; it stays, marked as merged.
    pub from_id: String,
}

/// POST /api/v1/customers/{id}/conversation
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartConversation {
    /// The branch whose conversation it is (default: the caller's branch, else the shop's first;
    /// staff of one branch may only give theirs). Their latest conversation the caller may see is
    /// returned instead when there is one and no branch is given.
    #[serde(default)]
    pub branch_id: Option<String>,
}

// ---------- orders ----------

/// An order line as sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderLineInput {
    /// Product id.
    pub product_id: String,
    /// Units, at least 1.
    pub quantity: i64,
    /// Price override (managers and owners only); the product's price by default.
    pub unit_price: Option<DecimalText>,
}

/// POST /api/v1/orders
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Customer id.
    pub customer_id: String,
    /// Branch; the caller's own branch (or the node's) by default.
    pub branch_id: Option<String>,
    /// Seller; the caller by default.
    pub seller_id: Option<String>,
    /// At least one line.
    pub lines: Vec<OrderLineInput>,
    /// Notes.
    #[serde(default)]
    pub notes: String,
}

/// PATCH /api/v1/orders/{id} (draft orders only for lines).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateOrder {
    /// New lines (draft only).
    pub lines: Option<Vec<OrderLineInput>>,
    /// New notes.
    pub notes: Option<String>,
    /// New seller.
    pub seller_id: Option<String>,
}

/// POST /api/v1/orders/{id}/transitions
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransitionOrder {
    /// The status to move to; must be one legal step from the current one.
    pub to: OrderStatus,
}

/// POST /api/v1/orders/{id}/resolve
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveOrder {
    /// The status the order really has: one some replica moved it to.
    pub status: OrderStatus,
}

/// An order line with its amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderLineView {
    /// Product id.
    pub product_id: String,
    /// SKU when ordered.
    pub sku: String,
    /// Product name when ordered.
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Unit price before tax.
    pub unit_price: String,
    /// Tax rate.
    pub tax_rate: String,
    /// quantity × unit price.
    pub subtotal: String,
    /// Tax of the line.
    pub tax: String,
    /// subtotal + tax.
    pub total: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderView {
    /// Id.
    pub id: String,
    /// Human-readable number: branch code, device code, sequence.
    pub number: String,
    /// Branch.
    pub branch_id: String,
    /// Customer.
    pub customer_id: String,
    /// The customer's name (empty when this replica does not hold the customer).
    #[serde(default)]
    pub customer_name: String,
    /// Seller.
    pub seller_id: String,
    /// Effective status (see the merge rule in docs/ARCHITECTURE.md).
    pub status: OrderStatus,
    /// Replicas moved the order in different directions while apart; staff should review it.
    pub conflict: bool,
    /// Currency of all amounts.
    pub currency: String,
    /// Lines.
    pub lines: Vec<OrderLineView>,
    /// Sum of line subtotals.
    pub subtotal: String,
    /// Sum of line taxes.
    pub tax_total: String,
    /// subtotal + tax.
    pub total: String,
    /// Notes.
    pub notes: String,
    /// Every transition, in time order.
    pub transitions: Vec<Transition>,
    /// The order's invoice, once issued.
    #[serde(default)]
    pub invoice: Option<InvoiceView>,
    /// The credit note that undoes the invoice (a cancelled or refunded order), once issued.
    #[serde(default)]
    pub credit_note: Option<CreditNoteView>,
    /// Goods the customer brought back after paying (see [`ReturnItems`]), oldest first.
    #[serde(default)]
    pub returns: Vec<OrderReturnView>,
    /// The total of the accepted returns (`"0"` without any): the order's net sale is `total`
    /// minus this.
    #[serde(default)]
    pub returned_total: String,
    /// Units of each line (by position) that have not come back yet.
    #[serde(default)]
    pub returnable: Vec<i64>,
    /// The e-mails that sent (or will send) the order's document to someone, oldest first.
    #[serde(default)]
    pub emails: Vec<OrderEmailView>,
    /// The WhatsApp notices the customer got of the order's statuses (the shop's
    /// `order_notices`), oldest first.
    #[serde(default)]
    pub notices: Vec<OrderNotice>,
    /// Archived.
    pub archived: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// POST /api/v1/orders/{id}/credit-note
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueCreditNote {
    /// Why the invoice is undone (at most 500 characters), printed on the credit note.
    #[serde(default)]
    pub reason: Option<String>,
}

/// POST /api/v1/orders/{id}/returns: the customer brings back some units of a paid, fulfilled or
/// delivered order (sellers and up). Written on any replica, offline too. When the order has an
/// invoice, the return is credited by its own credit note, numbered in the series of the
/// order's credit notes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReturnItems {
    /// The units that come back, by the order's line (1 to 200 entries, one per line).
    pub lines: Vec<ReturnLineInput>,
    /// Why (at most 500 characters), printed on the credit note.
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether the units go back into the branch's stock (default `true`; `false` for damaged
    /// goods, which leave the stock as it is).
    #[serde(default)]
    pub restock: Option<bool>,
    /// The client's id for this return (letters, digits, `-` and `_`, at most 64), so a retry
    /// does not record it twice; default: a new one.
    #[serde(default)]
    pub id: Option<String>,
}

/// Units of one order line that come back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReturnLineInput {
    /// The line's position in the order, from 0.
    pub line: usize,
    /// Units (at least 1, at most what is left of the line after earlier returns).
    pub quantity: i64,
}

/// A return of goods of an order, with its amounts and its credit note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderReturnView {
    /// Id.
    pub id: String,
    /// The units that came back, priced as they were sold.
    pub lines: Vec<OrderLineView>,
    /// Sum of the lines' subtotals.
    pub subtotal: String,
    /// Sum of the lines' taxes.
    pub tax_total: String,
    /// What the customer gets back.
    pub total: String,
    /// Why.
    pub reason: String,
    /// The units went back into stock.
    pub restock: bool,
    /// When (Unix ms).
    pub returned_at: i64,
    /// Who recorded it (staff id).
    pub returned_by: String,
    /// False when the units were no longer there to return: two devices recorded returns of the
    /// same units while apart and the other came first (by its legal number, then its time). It
    /// then counts for nothing: no stock, no credit note, no amount.
    pub accepted: bool,
    /// Its credit note, when the order has an invoice: the number is given by the branch's
    /// numbering device once the invoice has its own.
    #[serde(default)]
    pub credit_note: Option<CreditNoteView>,
}

/// POST /api/v1/orders/{id}/email: e-mails the order's document (as a PDF attachment). Written on
/// any replica, offline too; the relay sends it once it has the request (and, for an invoice or a
/// credit note, its legal number).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailOrderDocument {
    /// The address; default: the customer's e-mail.
    #[serde(default)]
    pub to: Option<String>,
    /// `sales_note`, `invoice` or `credit_note`; default: the credit note if there is one, else
    /// the invoice if issued, else the sales note.
    #[serde(default)]
    pub document: Option<String>,
    /// Language of the PDF and the e-mail: `es` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
    /// A few words of the sender's above the standard text (at most 2,000 characters).
    #[serde(default)]
    pub message: Option<String>,
}

/// A WhatsApp notice of an order's status to its customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderNotice {
    /// The status it told.
    pub status: String,
    /// Its message in the customer's conversation.
    pub message_id: String,
    /// The conversation.
    pub conversation_id: String,
    /// `text`, or `template` (the customer last wrote more than 24 hours before).
    pub kind: String,
    /// Queued, sent, delivered, read or failed (`failed` too when it could not go at all).
    pub delivery: crate::inbox::MessageStatus,
    /// Unix ms.
    pub at: i64,
    /// Set when the notice could not go, and why: `no_whatsapp` (the customer never wrote to the
    /// shop on WhatsApp and has no WhatsApp number or phone on record) or `window_closed` (they
    /// last wrote more than 24 hours ago, or never, and the shop has no approved template for
    /// notices), or `refused` (it could not be written on the replica that moved the order, e.g.
    /// the customer's record had not reached it yet; the log says why). `message_id` and `kind` are
    /// then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// An e-mail of an order's document and how its sending went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderEmailView {
    /// Id.
    pub id: String,
    /// The recipient.
    pub to: String,
    /// `sales_note`, `invoice` or `credit_note`.
    pub document: String,
    /// `es` or `en`.
    pub lang: String,
    /// The sender's words, if any.
    #[serde(default)]
    pub message: String,
    /// When it was asked for (Unix ms).
    pub requested_at: i64,
    /// Who asked (staff id).
    pub requested_by: String,
    /// `queued` (waiting for the relay, or for the document's legal number), `sent` or `failed`.
    pub status: String,
    /// When the mail server accepted it (Unix ms).
    #[serde(default)]
    pub sent_at: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Asked for by the issuing of the invoice or credit note (the shop's `email_invoices`), not
    /// by a person.
    #[serde(default)]
    pub automatic: bool,
}

/// The credit note that undoes an order's invoice: issued like an invoice, numbered by the same
/// device in the series `NC-{invoice series}`, once the invoice has its own number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreditNoteView {
    /// The legal number, `NC-{series}-{8 digits}`; empty until posted.
    pub number: String,
    /// The number it got when issued, unique per device: `{branch}-{device}-C{sequence}`.
    pub provisional_number: String,
    /// Why the invoice is undone.
    pub reason: String,
    /// Who issued it (staff id).
    pub issued_by: String,
    /// When it was issued (Unix ms).
    pub issued_at: i64,
    /// When it got its legal number (Unix ms).
    pub posted_at: Option<i64>,
    /// The code of the device that gave the legal number.
    #[serde(default)]
    pub posted_by: String,
}

/// An order's invoice: issued on any replica with a provisional number, then given its legal
/// number by the branch's numbering device (see docs/ARCHITECTURE.md, *Invoice numbers*).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InvoiceView {
    /// The legal number, `{series}-{8 digits}`, gap-free per series; empty until posted.
    pub number: String,
    /// The number it got when issued, unique per device: `{branch}-{device}-F{sequence}`.
    pub provisional_number: String,
    /// Who issued it (staff id).
    pub issued_by: String,
    /// When it was issued (Unix ms, the issuing device's clock).
    pub issued_at: i64,
    /// When it got its legal number (Unix ms, the numbering device's clock).
    pub posted_at: Option<i64>,
    /// The code of the device that gave the legal number.
    #[serde(default)]
    pub posted_by: String,
    /// Another order carries the same legal number (two devices numbered the branch at once,
    /// e.g. after the numbering device was changed while the old one was offline): review it.
    #[serde(default)]
    pub duplicate: bool,
}

// ---------- support tickets ----------

/// GET /api/v1/tickets
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
pub struct TicketListParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Sort key: `created_at` (default, newest first with `-`), `updated_at`, `due_at`, `number`.
    pub sort: Option<String>,
    /// Free text: number, subject, description or customer name.
    pub q: Option<String>,
    /// Only tickets in this status (open, in_progress, waiting, resolved, closed), or `active`
    /// for open, in progress and waiting together.
    pub status: Option<String>,
    /// Only tickets of this priority (low, normal, high, urgent).
    pub priority: Option<String>,
    /// Only tickets handled by this staff member; `me` for the caller, `none` for unassigned.
    pub assignee_id: Option<String>,
    /// Only tickets of this customer.
    pub customer_id: Option<String>,
    /// Only tickets about this order.
    pub order_id: Option<String>,
}

/// POST /api/v1/tickets
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    /// What it is about, in a line: 3 to 200 characters.
    pub subject: String,
    /// The whole story (at most 10,000 characters).
    #[serde(default)]
    pub description: String,
    /// low, normal (default), high or urgent.
    #[serde(default)]
    pub priority: Option<String>,
    /// The customer who reported it.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The order it is about.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The WhatsApp conversation it came from.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Who handles it (a staff id); nobody if absent.
    #[serde(default)]
    pub assignee_id: Option<String>,
}

/// PATCH /api/v1/tickets/{id}; an empty `assignee_id` leaves the ticket unassigned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTicket {
    /// New subject.
    pub subject: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status: open, in_progress, waiting, resolved or closed (a closed ticket only opens again).
    pub status: Option<String>,
    /// New priority.
    pub priority: Option<String>,
    /// Who handles it now ("" for nobody).
    pub assignee_id: Option<String>,
}

/// POST /api/v1/tickets/{id}/comments
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddTicketComment {
    /// The comment: 1 to 5,000 characters.
    pub body: String,
    /// Also send it to the customer on WhatsApp, in the ticket's conversation (else the customer's
    /// latest one): a free-form message, so the 24-hour window must be open.
    #[serde(default)]
    pub notify_customer: bool,
}

/// A comment on a ticket (what was done, what the customer said), or a status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TicketComment {
    /// Id.
    pub id: String,
    /// Who wrote it.
    pub author_id: String,
    /// Their name (empty if unknown on this replica).
    #[serde(default)]
    pub author_name: String,
    /// The text (empty for a status change without a note).
    pub body: String,
    /// For a status change: the status the ticket moved to.
    #[serde(default)]
    pub status: Option<TicketStatus>,
    /// The WhatsApp message it was sent to the customer as, if it was.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TicketView {
    /// Id.
    pub id: String,
    /// Human-readable number: `T-`, the device code and a sequence.
    pub number: String,
    /// Subject.
    pub subject: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: TicketStatus,
    /// Priority.
    pub priority: TicketPriority,
    /// The customer, if any.
    pub customer_id: Option<String>,
    /// The customer's name (empty when none or not held here).
    #[serde(default)]
    pub customer_name: String,
    /// The order it is about, if any.
    pub order_id: Option<String>,
    /// That order's number.
    #[serde(default)]
    pub order_number: Option<String>,
    /// The conversation it came from, if any.
    pub conversation_id: Option<String>,
    /// Who handles it, if anyone.
    pub assignee_id: Option<String>,
    /// Their name.
    #[serde(default)]
    pub assignee_name: Option<String>,
    /// The branch it was opened in.
    pub branch_id: Option<String>,
    /// Who opened it.
    pub created_by: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// When it should be solved by (from its priority), unix ms.
    pub due_at: i64,
    /// Still active after `due_at`.
    pub overdue: bool,
    /// When it was last resolved or closed, unix ms.
    pub resolved_at: Option<i64>,
    /// The statuses it may move to.
    pub next: Vec<TicketStatus>,
    /// Comments, oldest first (in lists: empty).
    #[serde(default)]
    pub comments: Vec<TicketComment>,
    /// Number of comments.
    pub comment_count: u32,
}

// ---------- import ----------

/// One rejected CSV row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportRowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The column and rule.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Result of a CSV import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Records created.
    pub created: u64,
    /// Records updated (matched by SKU or phone).
    pub updated: u64,
    /// Rows rejected.
    pub errors: Vec<ImportRowError>,
    /// Whether anything was written (all-or-nothing imports write nothing when any row is bad).
    pub committed: bool,
}

/// Liveness and basic facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// "ok".
    pub status: String,
    /// This replica's device code.
    pub device: String,
    /// Crate version.
    pub version: String,
}

/// The state of this replica's sync with the relay (`GET /api/v1/sync/status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncStatus {
    /// Whether a relay is configured.
    pub enabled: bool,
    /// The relay's QUIC address.
    pub relay: Option<String>,
    /// Whether a session with the relay is open now.
    pub connected: bool,
    /// This device's id on the relay, once enrolled.
    pub device_id: Option<String>,
    /// The branch the relay lets this device see (absent: the whole shop).
    pub branch_id: Option<String>,
    /// When the current or last session opened (Unix ms).
    pub last_connected_at: Option<i64>,
    /// When this replica and the relay last had nothing left to exchange (Unix ms).
    pub last_sync_at: Option<i64>,
    /// Local changes the relay is not yet known to have.
    pub pending_changes: u64,
    /// Documents holding such changes.
    pub pending_documents: u64,
    /// Documents this session still has to talk about with the relay (queued or awaiting an
    /// answer); 0 once the replica and the relay are in sync.
    pub queued_documents: u64,
    /// Documents stored here.
    pub documents_local: u64,
    /// Documents the relay says this device may see (progress of an initial sync).
    pub documents_relay: Option<u64>,
    /// Changes received from the relay since this process started.
    pub changes_received: u64,
    /// Documents the relay refused (outside this device's scope), kept only here.
    pub refused_documents: Vec<String>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// One entry per peer (the relay).
    pub peers: Vec<SyncPeerStatus>,
}

/// Sync state with one peer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncPeerStatus {
    /// The peer ("relay" and its address).
    pub peer: String,
    /// Whether a session is open.
    pub connected: bool,
    /// How long the oldest local change the peer lacks has waited (ms; 0 when none).
    pub lag_ms: u64,
    /// Documents in flight (sent, awaiting the answer).
    pub in_flight: u64,
    /// When a message last arrived from the peer (Unix ms).
    pub last_message_at: Option<i64>,
}

/// A document stored by this replica (`GET /api/v1/sync/documents`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncDocument {
    /// DashOffice document id.
    pub id: String,
    /// The automerge-repo URL JavaScript clients open it by.
    pub url: String,
    /// Its heads (hex change hashes, sorted).
    pub heads: Vec<String>,
}

// ---------- analytics ----------

/// An amount and a count for one key (a day, a branch, a seller).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AmountBy {
    /// The key: a day (YYYY-MM-DD in the shop's time zone), a branch id or a staff id.
    pub key: String,
    /// What people call it (the branch or seller name; the day itself).
    pub label: String,
    /// Sum of order totals, exact decimal string.
    pub amount: String,
    /// Orders.
    pub count: u64,
}

/// A count for one key (a status, a branch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CountBy {
    /// The key.
    pub key: String,
    /// What people call it.
    pub label: String,
    /// How many.
    pub count: u64,
}

/// A product whose stock in a branch is at or below the threshold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LowStock {
    /// Product id.
    pub product_id: String,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Branch id.
    pub branch_id: String,
    /// Units on hand.
    pub on_hand: i64,
}

/// `GET /api/v1/analytics/summary`: sales, orders and conversations of a period, for the
/// dashboard and the analytics page. Sales are orders that reached paid, fulfilled or delivered
/// (not cancelled or refunded), by the day they were created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnalyticsSummary {
    /// The shop's currency (orders in other currencies are left out of the sums).
    pub currency: String,
    /// The shop's time zone, in which days are counted.
    pub timezone: String,
    /// First day of the period (YYYY-MM-DD).
    pub from: String,
    /// Last day of the period, today (YYYY-MM-DD).
    pub to: String,
    /// Sales today.
    pub sales_today: String,
    /// Orders created today (any status but cancelled).
    pub orders_today: u64,
    /// Sales in the period.
    pub sales_total: String,
    /// Sales orders in the period.
    pub orders_total: u64,
    /// Average sale in the period.
    pub average_order: String,
    /// Orders of the period by status (every status, zeros included).
    pub orders_by_status: Vec<CountBy>,
    /// Sales per day of the period (every day, zeros included).
    pub sales_by_day: Vec<AmountBy>,
    /// Sales per branch.
    pub sales_by_branch: Vec<AmountBy>,
    /// Sales per seller.
    pub sales_by_seller: Vec<AmountBy>,
    /// Conversations a person handles now.
    pub conversations_open: u64,
    /// Conversations a bot handles now.
    pub conversations_pending: u64,
    /// Conversations started in the period, per branch.
    pub conversations_by_branch: Vec<CountBy>,
    /// Conversations started in the period, per assigned seller (key "" for unassigned).
    #[serde(default)]
    pub conversations_by_seller: Vec<CountBy>,
    /// Conversations started per day of the period (every day, zeros included).
    #[serde(default)]
    pub conversations_by_day: Vec<CountBy>,
    /// Products at or below the low-stock threshold (at most 20, lowest first).
    pub low_stock: Vec<LowStock>,
    /// Support tickets somebody still has to act on (open, in progress, waiting), shop-wide.
    #[serde(default)]
    pub tickets_active: u64,
    /// Of those, the ones past their due time.
    #[serde(default)]
    pub tickets_overdue: u64,
    /// Support tickets opened in the period.
    #[serde(default)]
    pub tickets_opened: u64,
    /// Support tickets resolved or closed in the period (and not opened again).
    #[serde(default)]
    pub tickets_resolved: u64,
    /// Median hours from opening to resolution of the tickets resolved in the period (none
    /// resolved: absent).
    #[serde(default)]
    pub ticket_resolution_hours: Option<f64>,
    /// Customers' ratings of resolved WhatsApp conversations given in the period.
    #[serde(default)]
    pub satisfaction: Satisfaction,
}

/// Customers' answers to the satisfaction survey (see `ShopView::satisfaction_survey`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Satisfaction {
    /// Surveys sent in the period.
    pub surveys: u64,
    /// Ratings "good".
    pub good: u64,
    /// Ratings "ok".
    pub ok: u64,
    /// Ratings "bad".
    pub bad: u64,
    /// Percentage of ratings that are "good" (CSAT), one decimal; absent without ratings.
    pub score: Option<f64>,
    /// Ratings per seller the conversation is assigned to (key "" for unassigned), most first.
    pub by_seller: Vec<RatingsBy>,
}

/// Ratings of one seller's (or branch's) conversations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RatingsBy {
    /// The key.
    pub key: String,
    /// What people call it.
    pub label: String,
    /// Ratings "good".
    pub good: u64,
    /// Ratings "ok".
    pub ok: u64,
    /// Ratings "bad".
    pub bad: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_password_or_a_token() {
        let secret = "s3cr3t-value-123";
        let user = StaffView {
            id: "u1".into(),
            name: "Ana".into(),
            email: "ana@tienda.mx".into(),
            role: Role::Owner,
            branch_id: None,
            archived: false,
            created_at: 1,
            updated_at: 1,
            daily_summary: true,
            lang: "es".into(),
        };
        let shown = [
            format!("{:?}", LoginRequest { email: "ana@tienda.mx".into(), password: secret.into() }),
            format!("{:?}", LoginResponse { token: secret.into(), expires_at: 2, user }),
            format!(
                "{:?}",
                CreateStaff {
                    name: "Ana".into(),
                    email: "ana@tienda.mx".into(),
                    role: Role::Seller,
                    branch_id: Some("b1".into()),
                    password: secret.into(),
                }
            ),
            format!("{:?}", UpdateStaff { password: Some(secret.into()), ..Default::default() }),
        ];
        for s in shown {
            assert!(!s.contains(secret) && s.contains(REDACTED), "{s}");
        }
    }
}
