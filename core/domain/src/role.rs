//! Staff roles and what each may do. The API enforces these; the UI uses them to hide what a user
//! cannot do.

use serde::{Deserialize, Serialize};

/// A staff member's role in the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the shop: may do everything.
    Owner,
    /// Runs the shop or a branch: everything but the shop's own settings.
    Manager,
    /// Sells in one branch: customers and orders of that branch; cannot change prices.
    Seller,
    /// Answers customers: reads everything, edits customers, never deletes.
    Support,
}

/// Something a role may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Change the shop's settings.
    ManageShop,
    /// Create and edit branches.
    ManageBranches,
    /// Create and edit staff accounts.
    ManageStaff,
    /// Create products and change their prices and details.
    EditCatalog,
    /// Adjust stock levels.
    AdjustStock,
    /// Create and edit customers.
    EditCustomers,
    /// Create orders and move them along the workflow.
    SellOrders,
    /// Archive (delete) records.
    Archive,
    /// See every branch's orders and stock even with a branch scope.
    ViewAllBranches,
    /// Import and export CSV files.
    ImportExport,
    /// Answer WhatsApp conversations, assign them and change their state.
    Converse,
    /// Edit bots, canned responses and message templates.
    ManageBots,
    /// Open support tickets, work on them and comment.
    HandleTickets,
}

impl Role {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::Seller => "seller",
            Self::Support => "support",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Owner, Self::Manager, Self::Seller, Self::Support].into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role has `p`.
    pub fn can(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Owner => true,
            Self::Manager => !matches!(p, ManageShop),
            Self::Seller => matches!(p, EditCustomers | SellOrders | Converse | HandleTickets),
            Self::Support => matches!(p, EditCustomers | ViewAllBranches | Converse | HandleTickets),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        assert!(Role::Owner.can(Permission::ManageShop));
        assert!(!Role::Manager.can(Permission::ManageShop));
        assert!(Role::Manager.can(Permission::EditCatalog));
        assert!(!Role::Seller.can(Permission::EditCatalog));
        assert!(!Role::Seller.can(Permission::ViewAllBranches));
        assert!(Role::Seller.can(Permission::SellOrders));
        assert!(!Role::Support.can(Permission::Archive));
        assert!(Role::Support.can(Permission::EditCustomers));
        assert_eq!(Role::parse("support"), Some(Role::Support));
        assert_eq!(Role::parse("admin"), None);
    }
}
