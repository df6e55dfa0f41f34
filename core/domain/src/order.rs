//! The order workflow: which transitions are legal, and the deterministic rule that turns the set of
//! transitions recorded by any number of replicas into one status.
//!
//! Merge rule (written down in docs/ARCHITECTURE.md): every transition ever made is kept. The effective
//! status is `refunded` if any replica refunded, else `cancelled` if any replica cancelled, else the
//! furthest state of draft → confirmed → paid → fulfilled → delivered that any replica reached. Every
//! result is a state some replica legally reached, so no replica ever shows an illegal state. Two
//! transitions out of the same state (a fork) mark the order as conflicted so staff can look at it.
//!
//! Staff settle a conflict with a resolution: a recorded entry that names the status the order
//! really has (one some replica reached) and every entry its writer had seen. Of the resolutions
//! no other resolution saw, the latest (by time, then device) decides: the order has its status,
//! moved on by the transitions it had not seen; the conflict is gone unless those fork again or
//! another resolution was written without seeing it.

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being put together; lines may change.
    Draft,
    /// Agreed with the customer; stock is committed.
    Confirmed,
    /// Money received.
    Paid,
    /// Packed and handed over for delivery.
    Fulfilled,
    /// The customer has it.
    Delivered,
    /// Called off before payment.
    Cancelled,
    /// Money returned (and goods, if any, back in stock).
    Refunded,
}

impl OrderStatus {
    /// Every status, in workflow order.
    pub const ALL: [OrderStatus; 7] =
        [Self::Draft, Self::Confirmed, Self::Paid, Self::Fulfilled, Self::Delivered, Self::Cancelled, Self::Refunded];

    /// The snake_case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Confirmed => "confirmed",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Position along the forward path; terminal states rank above it.
    fn rank(self) -> u8 {
        match self {
            Self::Draft => 0,
            Self::Confirmed => 1,
            Self::Paid => 2,
            Self::Fulfilled => 3,
            Self::Delivered => 4,
            Self::Cancelled => 5,
            Self::Refunded => 6,
        }
    }

    /// Whether the order's lines hold stock in this state.
    pub fn commits_stock(self) -> bool {
        matches!(self, Self::Confirmed | Self::Paid | Self::Fulfilled | Self::Delivered)
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Cancelled | Self::Refunded)
    }

    /// The states reachable in one legal step.
    pub fn next(self) -> &'static [OrderStatus] {
        match self {
            Self::Draft => &[Self::Confirmed, Self::Cancelled],
            Self::Confirmed => &[Self::Paid, Self::Cancelled],
            Self::Paid => &[Self::Fulfilled, Self::Refunded],
            Self::Fulfilled => &[Self::Delivered, Self::Refunded],
            Self::Delivered => &[Self::Refunded],
            Self::Cancelled | Self::Refunded => &[],
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `from → to` is one legal step.
pub fn legal_transition(from: OrderStatus, to: OrderStatus) -> bool {
    from.next().contains(&to)
}

/// One recorded transition: who moved the order, from where to where, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    /// Status before.
    pub from: OrderStatus,
    /// Status after.
    pub to: OrderStatus,
    /// Staff user id.
    pub by: String,
    /// Unix milliseconds on the writing device's clock.
    pub at: i64,
    /// Device code of the writing replica.
    pub device: String,
    /// A resolution of a conflict: `to` is the status staff chose.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolution: bool,
    /// For a resolution: the [`Transition::key`] of every entry its writer had seen.
    #[serde(skip)]
    pub covers: Vec<String>,
}

impl Transition {
    /// What identifies an entry among the order's (a resolution lists the ones it settles).
    pub fn key(&self) -> String {
        format!("{}@{}:{}>{}", self.device, self.at, self.from, self.to)
    }
}

/// The statuses a conflicted order may be settled on: every status some replica moved it to.
pub fn resolution_choices(transitions: &[Transition]) -> Vec<OrderStatus> {
    let mut out: Vec<OrderStatus> = transitions.iter().map(|t| t.to).collect();
    out.sort_by_key(|s| s.rank());
    out.dedup();
    out
}

/// The effective status of an order and whether replicas forked its workflow.
pub fn effective_status(transitions: &[Transition]) -> (OrderStatus, bool) {
    // The resolutions no other resolution saw (one that saw another supersedes it, whatever the
    // devices' clocks say); among those, the latest by time, then device.
    let resolutions: Vec<&Transition> = transitions.iter().filter(|t| t.resolution).collect();
    let latest = resolutions
        .iter()
        .filter(|r| !resolutions.iter().any(|o| o.covers.contains(&r.key())))
        .max_by(|a, b| (a.at, &a.device, a.to.rank()).cmp(&(b.at, &b.device, b.to.rank())))
        .copied();
    let Some(r) = latest else { return merge(transitions.iter(), None) };
    let rest = transitions.iter().filter(|t| !std::ptr::eq(*t, r) && !r.covers.contains(&t.key()));
    // Another resolution that this one did not see: two people settled it differently.
    let unseen_resolution = rest.clone().any(|t| t.resolution);
    let (status, forked) = merge(rest.filter(|t| !t.resolution), Some(r.to));
    (status, forked || unseen_resolution)
}

/// The merge rule over `transitions`, starting from `base` (a resolution's status) if any.
fn merge<'a>(
    transitions: impl Iterator<Item = &'a Transition> + Clone,
    base: Option<OrderStatus>,
) -> (OrderStatus, bool) {
    let status = transitions.clone().map(|t| t.to).chain(base).max_by_key(|s| s.rank()).unwrap_or(OrderStatus::Draft);
    let mut froms: Vec<OrderStatus> = transitions.clone().map(|t| t.from).collect();
    froms.sort_by_key(|s| s.rank());
    let mut forked = froms.windows(2).any(|w| w[0] == w[1]);
    if let Some(b) = base {
        // After a resolution, a step from anywhere but where it left the order (or where later
        // steps took it) is a new fork.
        forked |= transitions.clone().any(|t| t.from != b && !transitions.clone().any(|u| u.to == t.from));
    }
    (status, forked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    fn t(from: OrderStatus, to: OrderStatus) -> Transition {
        Transition { from, to, by: "u".into(), at: 0, device: "d".into(), resolution: false, covers: Vec::new() }
    }

    /// A resolution to `to` at `at`, having seen `seen`.
    fn settle(seen: &[Transition], to: OrderStatus, at: i64, device: &str) -> Transition {
        let (from, _) = effective_status(seen);
        Transition {
            from,
            to,
            by: "m".into(),
            at,
            device: device.into(),
            resolution: true,
            covers: seen.iter().map(Transition::key).collect(),
        }
    }

    fn at(mut x: Transition, ms: i64, device: &str) -> Transition {
        x.at = ms;
        x.device = device.into();
        x
    }

    #[test]
    fn a_resolution_settles_a_fork_and_later_steps_move_on_from_it() {
        // A cancels a confirmed order while B takes payment and fulfils it.
        let forked = vec![
            at(t(Draft, Confirmed), 1, "A"),
            at(t(Confirmed, Cancelled), 2, "A"),
            at(t(Confirmed, Paid), 3, "B"),
            at(t(Paid, Fulfilled), 4, "B"),
        ];
        assert_eq!(effective_status(&forked), (Cancelled, true));
        assert_eq!(resolution_choices(&forked), vec![Confirmed, Paid, Fulfilled, Cancelled]);
        // The manager looks: the goods went out and were paid for.
        let mut settled = forked.clone();
        settled.push(settle(&forked, Fulfilled, 10, "M"));
        assert_eq!(effective_status(&settled), (Fulfilled, false));
        // Later the order is delivered, from the settled status.
        settled.push(at(t(Fulfilled, Delivered), 11, "A"));
        assert_eq!(effective_status(&settled), (Delivered, false));
        // Order of arrival does not matter.
        let mut rev = settled.clone();
        rev.reverse();
        assert_eq!(effective_status(&rev), (Delivered, false));
    }

    #[test]
    fn what_a_resolution_did_not_see_can_conflict_again() {
        let forked =
            vec![at(t(Draft, Confirmed), 1, "A"), at(t(Confirmed, Cancelled), 2, "A"), at(t(Confirmed, Paid), 3, "B")];
        let r = settle(&forked, Paid, 10, "M");
        // B refunds, not having seen the resolution: a refund from paid still follows from it.
        let mut seen = forked.clone();
        seen.push(r.clone());
        seen.push(at(t(Paid, Refunded), 9, "B"));
        assert_eq!(effective_status(&seen), (Refunded, false));
        // C, offline, cancels from confirmed (a step the resolution did not see, from elsewhere).
        let mut again = forked.clone();
        again.push(r.clone());
        again.push(at(t(Confirmed, Cancelled), 8, "C"));
        assert_eq!(effective_status(&again), (Cancelled, true), "a new fork shows again");
        // Two managers settle it differently without seeing each other: flagged, the later wins.
        let mut two = forked.clone();
        two.push(r);
        two.push(settle(&forked, Cancelled, 12, "N"));
        assert_eq!(effective_status(&two), (Cancelled, true));
        // A third resolution that saw both settles it.
        let r3 = settle(&two, Paid, 20, "M");
        two.push(r3);
        assert_eq!(effective_status(&two), (Paid, false));
    }

    #[test]
    fn a_resolution_that_saw_another_wins_whatever_the_clocks_say() {
        let forked =
            vec![at(t(Draft, Confirmed), 1, "A"), at(t(Confirmed, Cancelled), 2, "A"), at(t(Confirmed, Paid), 3, "B")];
        // Written on a device whose clock runs an hour fast.
        let mut all = forked.clone();
        all.push(settle(&forked, Cancelled, 3_600_000, "FAST"));
        assert_eq!(effective_status(&all), (Cancelled, false));
        // A manager who saw it settles it again, at an earlier time by their correct clock.
        let again = settle(&all, Paid, 10, "M");
        all.push(again);
        assert_eq!(effective_status(&all), (Paid, false));
    }

    #[test]
    fn legal_steps_only() {
        assert!(legal_transition(Draft, Confirmed));
        assert!(legal_transition(Confirmed, Paid));
        assert!(legal_transition(Delivered, Refunded));
        assert!(!legal_transition(Draft, Paid));
        assert!(!legal_transition(Paid, Cancelled));
        assert!(!legal_transition(Cancelled, Confirmed));
        assert!(!legal_transition(Refunded, Refunded));
    }

    #[test]
    fn merge_rule() {
        assert_eq!(effective_status(&[]), (Draft, false));
        let chain = [t(Draft, Confirmed), t(Confirmed, Paid), t(Paid, Fulfilled)];
        assert_eq!(effective_status(&chain), (Fulfilled, false));
        // Replica A cancels a confirmed order while replica B takes payment and fulfils it.
        let forked = [t(Draft, Confirmed), t(Confirmed, Cancelled), t(Confirmed, Paid), t(Paid, Fulfilled)];
        assert_eq!(effective_status(&forked), (Cancelled, true));
        // Refund beats everything.
        let r = [t(Draft, Confirmed), t(Confirmed, Paid), t(Paid, Refunded), t(Paid, Fulfilled)];
        assert_eq!(effective_status(&r), (Refunded, true));
        // Order of arrival does not matter.
        let mut rev = forked.to_vec();
        rev.reverse();
        assert_eq!(effective_status(&rev), (Cancelled, true));
    }

    #[test]
    fn every_merged_status_is_reachable() {
        // Any subset of legal transitions merges into a state that is reachable from draft.
        let all: Vec<Transition> =
            OrderStatus::ALL.iter().flat_map(|f| f.next().iter().map(move |to| t(*f, *to))).collect();
        for mask in 0u32..(1 << all.len()) {
            let subset: Vec<_> =
                all.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, t)| t.clone()).collect();
            let (s, _) = effective_status(&subset);
            assert!(s == Draft || subset.iter().any(|t| t.to == s));
        }
    }
}
