//! Support tickets: a customer's problem (a faulty product, a late delivery, a wrong charge)
//! followed from report to solution, with its status, priority, who handles it and comments.
//!
//! Between replicas, the later status change (by the time it was made) decides the status; comments
//! from every replica are all kept.

use serde::{Deserialize, Serialize};

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Reported; nobody is on it yet.
    Open,
    /// Somebody is working on it.
    InProgress,
    /// Waiting for the customer (an answer, a photo, the product back).
    Waiting,
    /// Solved; the customer may still say it is not.
    Resolved,
    /// Finished.
    Closed,
}

impl TicketStatus {
    /// Every status, in the order of a ticket's life.
    pub const ALL: [TicketStatus; 5] = [Self::Open, Self::InProgress, Self::Waiting, Self::Resolved, Self::Closed];

    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InProgress => "in_progress",
            Self::Waiting => "waiting",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether somebody still has to act (open, in progress or waiting).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::InProgress | Self::Waiting)
    }

    /// The statuses a ticket may move to from this one: any other while it is not closed; a
    /// closed ticket only opens again.
    pub fn next(self) -> Vec<TicketStatus> {
        match self {
            Self::Closed => vec![Self::Open],
            s => Self::ALL.into_iter().filter(|x| *x != s).collect(),
        }
    }
}

/// How urgent a ticket is; it sets the time by which it should be solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    /// Within a week.
    Low,
    /// Within 3 days.
    Normal,
    /// Within a day.
    High,
    /// Within 4 hours.
    Urgent,
}

impl TicketPriority {
    /// Every priority, lowest first.
    pub const ALL: [TicketPriority; 4] = [Self::Low, Self::Normal, Self::High, Self::Urgent];

    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Time from the report to the promised solution, in milliseconds.
    pub fn due_after_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Self::Low => 7 * 24 * HOUR,
            Self::Normal => 3 * 24 * HOUR,
            Self::High => 24 * HOUR,
            Self::Urgent => 4 * HOUR,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_ticket_only_opens_again() {
        assert_eq!(TicketStatus::Closed.next(), vec![TicketStatus::Open]);
        assert!(TicketStatus::Resolved.next().contains(&TicketStatus::Open));
        assert!(!TicketStatus::Open.next().contains(&TicketStatus::Open));
        assert_eq!(TicketStatus::parse("in_progress"), Some(TicketStatus::InProgress));
        assert_eq!(TicketPriority::parse("urgent").map(TicketPriority::due_after_ms), Some(4 * 3_600_000));
        assert!(TicketStatus::Waiting.is_active() && !TicketStatus::Resolved.is_active());
    }
}
