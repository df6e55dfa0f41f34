//! Who is asking: the authenticated staff member on whose behalf a read or write runs.

use dashoffice_domain::{Permission, Role};

use crate::error::{CoreError, Result};

/// The staff member behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Staff id.
    pub user_id: String,
    /// Shop.
    pub shop_id: String,
    /// Role.
    pub role: Role,
    /// Branch scope.
    pub branch_id: Option<String>,
}

impl Caller {
    /// Fails unless the role has `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.role.can(p) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!("a {} may not {}", self.role.as_str(), describe(p))))
        }
    }

    /// The only branch whose records this caller may see, if limited to one.
    pub fn branch_limit(&self) -> Option<&str> {
        if self.role == Role::Owner || self.role.can(Permission::ViewAllBranches) {
            None
        } else {
            // A limited role without a branch (possible after concurrent edits) sees no branch.
            Some(self.branch_id.as_deref().unwrap_or(""))
        }
    }

    /// Fails unless the caller may see `branch`.
    pub fn check_branch(&self, branch: &str) -> Result<()> {
        match self.branch_limit() {
            Some(b) if b != branch => Err(CoreError::Forbidden(format!("limited to branch {b}"))),
            _ => Ok(()),
        }
    }
}

fn describe(p: Permission) -> &'static str {
    match p {
        Permission::ManageShop => "change the shop's settings",
        Permission::ManageBranches => "manage branches",
        Permission::ManageStaff => "manage staff",
        Permission::EditCatalog => "change products or prices",
        Permission::AdjustStock => "adjust stock",
        Permission::EditCustomers => "edit customers",
        Permission::SellOrders => "create or move orders",
        Permission::Archive => "archive (delete) records",
        Permission::ViewAllBranches => "see other branches",
        Permission::ImportExport => "import or export data",
        Permission::Converse => "answer conversations",
        Permission::ManageBots => "edit bots, canned responses or templates",
        Permission::HandleTickets => "handle support tickets",
    }
}
