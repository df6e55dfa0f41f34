//! The WhatsApp inbox: conversations, messages and their delivery statuses, and the rules that do
//! not need storage (status ranks, the 24-hour customer service window, reply limits).

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

use crate::FieldError;

/// The customer service window: free-form messages may be sent this long after the customer's
/// last message; afterwards only approved templates.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Reply buttons per message (Cloud API limit).
pub const MAX_BUTTONS: usize = 3;
/// Characters of a reply button title.
pub const MAX_BUTTON_TITLE: usize = 20;
/// Rows of a list message.
pub const MAX_LIST_ROWS: usize = 10;
/// Characters of a text message body.
pub const MAX_TEXT: usize = 4096;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// A bot answers.
    Pending,
    /// A person answers.
    Open,
    /// Done; the next customer message reopens it.
    Resolved,
}

impl ConversationState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Open, Self::Resolved].into_iter().find(|v| v.as_str() == s)
    }
}

/// Delivery status of a message. Outbound: queued → sending → sent → delivered → read, or failed.
/// Inbound messages are `received` (and `read` once staff opened the conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Written by staff or a bot, not yet handed to WhatsApp.
    Queued,
    /// Being handed to WhatsApp.
    Sending,
    /// Accepted by WhatsApp.
    Sent,
    /// On the customer's phone.
    Delivered,
    /// Read by the customer.
    Read,
    /// Not delivered; see the error.
    Failed,
    /// An inbound message.
    Received,
}

impl MessageStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }
    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Sending, Self::Sent, Self::Delivered, Self::Read, Self::Failed, Self::Received]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
    /// The order statuses are applied in: a status only replaces one of lower rank, so a late
    /// "sent" never undoes "read". `failed` ranks above `sent` (a failure report ends the
    /// delivery) but below `delivered` and `read`, which prove the message arrived.
    pub fn rank(self) -> u8 {
        match self {
            Self::Received => 0,
            Self::Queued => 1,
            Self::Sending => 2,
            Self::Sent => 3,
            Self::Failed => 4,
            Self::Delivered => 5,
            Self::Read => 6,
        }
    }
}

/// Whether free-form messages may be sent, given the customer's last message (Unix ms).
pub fn window_open(last_inbound_at: Option<i64>, now_ms: i64) -> bool {
    last_inbound_at.is_some_and(|t| now_ms - t < SERVICE_WINDOW_MS)
}

/// A conversation with one customer in one branch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConversationView {
    /// Id.
    pub id: String,
    /// Branch.
    pub branch_id: String,
    /// Customer.
    pub customer_id: String,
    /// Customer's name (their WhatsApp profile name at first contact).
    pub customer_name: String,
    /// WhatsApp id (E.164 digits without '+').
    pub wa_id: String,
    /// The WhatsApp number (phone number id) the customer writes to.
    pub phone_number_id: String,
    /// pending (bot), open (human) or resolved.
    pub state: ConversationState,
    /// Assigned staff member.
    pub assignee_id: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Inbound messages newer than the last time staff read the conversation.
    pub unread: i64,
    /// The customer's last message (Unix ms).
    pub last_inbound_at: Option<i64>,
    /// The last message either way (Unix ms).
    pub last_message_at: i64,
    /// A preview of the last message.
    pub last_message: String,
    /// Whether free-form replies are allowed now (24-hour window).
    pub window_open: bool,
    /// WhatsApp refused free text (131047): only a template can re-open the conversation.
    pub needs_template: bool,
    /// When it started: its first message (Unix ms).
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The customer's latest answer to the satisfaction survey: `good`, `ok` or `bad`.
    #[serde(default)]
    pub rating: Option<String>,
    /// When they gave it (Unix ms).
    #[serde(default)]
    pub rated_at: Option<i64>,
}

/// One message of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MessageView {
    /// Id.
    pub id: String,
    /// Conversation.
    pub conversation_id: String,
    /// `in` (from the customer), `out` (to the customer) or `note` (internal, never sent).
    pub direction: String,
    /// text, image, audio, video, document, sticker, location, contacts, reaction, button,
    /// interactive, order, template, unsupported, note.
    pub kind: String,
    /// The text (body, caption, button title, a summary for other kinds).
    pub text: String,
    /// The type-specific content as JSON (media id and mime type, coordinates, order items, buttons…).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// WhatsApp message id.
    pub wamid: Option<String>,
    /// Delivery status.
    pub status: MessageStatus,
    /// Error code and title when failed.
    pub error: Option<String>,
    /// `customer`, `bot` or the staff member's id.
    pub sender: String,
    /// The message this one answers (WhatsApp id).
    pub context_wamid: Option<String>,
    /// Why a bot sent this message (trigger, intent, confidence, node).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub explain: Option<serde_json::Value>,
    /// When it was sent or received (Unix ms).
    pub at: i64,
}

/// A conversation with its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConversationThread {
    /// The conversation.
    pub conversation: ConversationView,
    /// Its messages (the latest `limit`, oldest first).
    pub messages: Vec<MessageView>,
    /// Approved templates (offered when the window is closed).
    pub templates: Vec<TemplateView>,
}

/// GET /api/v1/conversations
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
pub struct ConversationParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only conversations assigned to this staff id (`me` for the caller, `none` for unassigned).
    pub assignee: Option<String>,
    /// Only this branch.
    pub branch_id: Option<String>,
    /// Customer name or number.
    pub q: Option<String>,
    /// Only conversations with unread messages.
    pub unread: Option<bool>,
    /// Only this customer's conversations.
    pub customer_id: Option<String>,
    /// Only conversations whose latest satisfaction rating is this: `good`, `ok` or `bad`.
    pub rating: Option<String>,
}

/// A reply button.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Id returned in the customer's button_reply.
    pub id: String,
    /// Title (≤ 20 characters).
    pub title: String,
}

/// A row of a list message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    /// Id returned in the customer's list_reply.
    pub id: String,
    /// Title (≤ 24 characters).
    pub title: String,
    /// Description (≤ 72 characters).
    #[serde(default)]
    pub description: String,
}

/// POST /api/v1/conversations/{id}/messages: a reply (or an internal note).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// text (default), buttons, list, template, image, document, note.
    #[serde(default)]
    pub kind: Option<String>,
    /// The text (body of buttons and list messages; caption of media).
    #[serde(default)]
    pub text: String,
    /// Reply buttons (kind buttons, ≤ 3).
    #[serde(default)]
    pub buttons: Vec<ReplyButton>,
    /// The list's button label (kind list).
    #[serde(default)]
    pub list_button: Option<String>,
    /// Rows (kind list, ≤ 10).
    #[serde(default)]
    pub rows: Vec<ListRow>,
    /// Template name (kind template).
    #[serde(default)]
    pub template: Option<String>,
    /// Template language code (default: the template's).
    #[serde(default)]
    pub language: Option<String>,
    /// Template body parameters, in order.
    #[serde(default)]
    pub params: Vec<String>,
    /// A public media link (kind image or document).
    #[serde(default)]
    pub media_url: Option<String>,
    /// Answer to this message id (WhatsApp id).
    #[serde(default)]
    pub context_wamid: Option<String>,
}

/// POST /api/v1/orders/{id}/whatsapp: the order's sales document (PDF) to the customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendOrderDocument {
    /// Language of the document: `es` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
    /// The caption (default "Pedido <number>" or "Order <number>"; at most 1,024 characters).
    #[serde(default)]
    pub text: Option<String>,
}

/// PATCH /api/v1/conversations/{id}
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    /// pending, open or resolved.
    pub state: Option<String>,
    /// Staff id, or "" to unassign.
    pub assignee_id: Option<String>,
    /// Labels (replaces them).
    pub labels: Option<Vec<String>>,
}

/// An approved message template (as registered at Meta).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateView {
    /// Template name at Meta.
    pub name: String,
    /// Language code (es, es_MX, en_US…).
    pub language: String,
    /// The body with {{1}}-style placeholders, for the preview.
    #[serde(default)]
    pub body: String,
    /// Number of body parameters.
    #[serde(default)]
    pub params: u8,
}

/// POST /api/v1/whatsapp/broadcasts: an approved template to every customer with a tag.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendBroadcast {
    /// The customers' tag (customers tagged `no-promos` are left out).
    pub tag: String,
    /// The approved template.
    pub template: String,
    /// Its language, when the shop has the template in several.
    #[serde(default)]
    pub language: Option<String>,
    /// Its parameters, in order; `{name}` in one is the customer's first name.
    #[serde(default)]
    pub params: Vec<String>,
    /// Where conversations are opened for customers who never wrote (default: the caller's
    /// branch, else the shop's first).
    #[serde(default)]
    pub branch_id: Option<String>,
    /// The broadcast's id (1–64 letters, digits, `-` or `_`): sending the same id again sends
    /// nothing twice. Default: a new one.
    #[serde(default)]
    pub id: Option<String>,
    /// When to send it (Unix ms, at most 90 days ahead): the relay writes and sends its messages
    /// then, to the customers tagged then, and until then it can be cancelled. Absent or past:
    /// now.
    #[serde(default)]
    pub send_at: Option<i64>,
}

/// What a broadcast did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BroadcastReport {
    /// The broadcast's id (its messages are `broadcast.{id}.{customer}`).
    pub id: String,
    /// Messages queued now, for the relay to send.
    pub queued: u32,
    /// Customers this broadcast had reached already (the same id sent before).
    pub already: u32,
    /// Customers left out, and why.
    pub skipped: Vec<BroadcastSkip>,
    /// Scheduled for then (Unix ms): nothing was queued yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
    /// Customers with the tag now (a scheduled broadcast reaches those tagged when it goes).
    #[serde(default)]
    pub audience: u32,
}

/// A broadcast sent before, with how its messages went (GET /api/v1/whatsapp/broadcasts).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BroadcastSummary {
    /// Its id.
    pub id: String,
    /// `scheduled` (waiting for its time), `cancelled` (before its time), `sent` (its messages
    /// are written) or `failed` (it could not go at its time: `error` says why).
    #[serde(default)]
    pub state: String,
    /// The customers' tag (known for scheduled broadcasts).
    #[serde(default)]
    pub tag: String,
    /// When it was scheduled for (Unix ms), if it was.
    #[serde(default)]
    pub scheduled_at: Option<i64>,
    /// Why a scheduled broadcast could not go.
    #[serde(default)]
    pub error: Option<String>,
    /// The template sent.
    pub template: String,
    /// When it was sent (its first message; Unix ms).
    pub at: i64,
    /// Its messages.
    pub total: u32,
    /// Not yet handed to WhatsApp.
    pub queued: u32,
    /// Accepted by WhatsApp, not yet delivered.
    pub sent: u32,
    /// On the customer's phone, not read.
    pub delivered: u32,
    /// Read.
    pub read: u32,
    /// Not delivered.
    pub failed: u32,
}

/// A customer a broadcast left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BroadcastSkip {
    /// The customer.
    pub customer_id: String,
    /// Their name.
    pub name: String,
    /// `opted_out` (tagged `no-promos`), `no_whatsapp` (no WhatsApp number or phone),
    /// `duplicate_number` (their phone is another customer's WhatsApp number: merge them) or
    /// `refused` (the log says why).
    pub reason: String,
}

/// A staff member's shift (GET /api/v1/shifts): on shift, they get conversations assigned round
/// robin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShiftView {
    /// The staff member.
    pub staff_id: String,
    /// On shift.
    pub on: bool,
}

/// A canned response: `/short_code` expands to the text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    /// Short code, without the slash (letters, digits, - and _).
    pub short_code: String,
    /// The text.
    pub text: String,
}

/// Checks a reply against WhatsApp's limits; the error names the field.
pub fn validate_send(m: &SendMessage) -> Result<(), FieldError> {
    let kind = m.kind.as_deref().unwrap_or("text");
    let text_len = m.text.chars().count();
    if text_len > MAX_TEXT {
        return Err(FieldError::new("text", "max_length", "at most 4096 characters"));
    }
    match kind {
        "text" | "note" => {
            if m.text.trim().is_empty() {
                return Err(FieldError::new("text", "required", "the message is empty"));
            }
        }
        "buttons" => {
            if m.text.trim().is_empty() {
                return Err(FieldError::new("text", "required", "a buttons message needs a body text"));
            }
            if m.buttons.is_empty() || m.buttons.len() > MAX_BUTTONS {
                return Err(FieldError::new("buttons", "count", "1 to 3 reply buttons"));
            }
            for b in &m.buttons {
                if b.title.trim().is_empty() || b.title.chars().count() > MAX_BUTTON_TITLE {
                    return Err(FieldError::new("buttons", "title_length", "button titles have 1 to 20 characters"));
                }
                if b.id.trim().is_empty() || b.id.len() > 256 {
                    return Err(FieldError::new("buttons", "id", "button ids have 1 to 256 characters"));
                }
            }
        }
        "list" => {
            if m.text.trim().is_empty() {
                return Err(FieldError::new("text", "required", "a list message needs a body text"));
            }
            if m.rows.is_empty() || m.rows.len() > MAX_LIST_ROWS {
                return Err(FieldError::new("rows", "count", "1 to 10 list rows"));
            }
            if m.rows.iter().any(|r| r.title.trim().is_empty() || r.title.chars().count() > 24 || r.id.is_empty()) {
                return Err(FieldError::new(
                    "rows",
                    "title_length",
                    "rows need an id and a title of 1 to 24 characters",
                ));
            }
            if m.rows.iter().any(|r| r.description.chars().count() > 72) {
                return Err(FieldError::new(
                    "rows",
                    "description_length",
                    "row descriptions have at most 72 characters",
                ));
            }
        }
        "template" => {
            if m.template.as_deref().is_none_or(|t| t.trim().is_empty()) {
                return Err(FieldError::new("template", "required", "the template's name is required"));
            }
        }
        "image" | "document" => match m.media_url.as_deref() {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {}
            _ => return Err(FieldError::new("media_url", "url", "an http(s) link to the media")),
        },
        _ => {
            return Err(FieldError::new(
                "kind",
                "one_of",
                "one of text, buttons, list, template, image, document, note",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward_and_failure_never_hides_delivery() {
        use MessageStatus::*;
        assert!(Read.rank() > Delivered.rank() && Delivered.rank() > Sent.rank());
        assert!(Failed.rank() > Sent.rank() && Failed.rank() < Delivered.rank());
        assert_eq!(MessageStatus::parse("read"), Some(Read));
    }

    #[test]
    fn the_window_closes_after_24_hours() {
        assert!(window_open(Some(0), SERVICE_WINDOW_MS - 1));
        assert!(!window_open(Some(0), SERVICE_WINDOW_MS));
        assert!(!window_open(None, 0));
    }

    #[test]
    fn replies_are_checked_against_whatsapps_limits() {
        let mut m = SendMessage { kind: Some("buttons".into()), text: "¿Talla?".into(), ..Default::default() };
        assert_eq!(validate_send(&m).unwrap_err().field, "buttons");
        m.buttons = (0..4).map(|i| ReplyButton { id: format!("b{i}"), title: "S".into() }).collect();
        assert_eq!(validate_send(&m).unwrap_err().rule, "count");
        m.buttons.truncate(3);
        assert!(validate_send(&m).is_ok());
        m.buttons[0].title = "a title that is far too long".into();
        assert_eq!(validate_send(&m).unwrap_err().rule, "title_length");
        let t = SendMessage { kind: Some("nope".into()), text: "x".into(), ..Default::default() };
        assert_eq!(validate_send(&t).unwrap_err().field, "kind");
    }
}
