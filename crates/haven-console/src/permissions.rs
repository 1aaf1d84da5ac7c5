//! Who may do what (the product brief's roles), as one table: every page and API route names the
//! permission it needs, and a role either has it or not.

use haven_store::accounts::Role;
use haven_store::tokens::TokenScope;

/// Something a page or API route lets a person do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See the dashboard's figures (blocks by category, top blocked sites).
    Dashboard,
    /// Search activity and read a person's timeline (every read audited).
    Activity,
    /// Read the policy and the lists' state.
    PolicyRead,
    /// Propose or make a policy change.
    PolicyEdit,
    /// Approve someone else's policy change.
    PolicyApprove,
    /// Decide review requests from block pages.
    Reviews,
    /// Read the audit log.
    Audit,
    /// Create API tokens for oneself.
    ApiTokens,
    /// Triage monitoring captures: dismiss, or promote to a safeguarding concern; and edit the
    /// school's risk library.
    Triage,
    /// Send text from other capture sources (a device agent, a browser extension) to be
    /// graded, through the API.
    Ingest,
    /// Log a safeguarding concern, and read back the concerns one wrote (nothing that followed).
    LogConcern,
    /// Work safeguarding records: cases, chronologies, referrals (which records, `haven_records::access` decides).
    Records,
    /// Read the governors' report: counts only, small numbers suppressed.
    Reports,
    /// Export one person's records for a subject-access request, other people redacted (the DPO).
    SubjectAccess,
    /// Keep pupils' image consents and answer "can I use this photo?" (the office, the DPO,
    /// the headteacher, the DSL team).
    Consents,
    /// Keep the data-breach log (the DPO and the headteacher).
    Breaches,
    /// Keep the staff training register (the DSL, the headteacher, the office).
    Training,
    /// Keep acceptable-use agreements: publish versions, record signatures, see who must sign
    /// (the office, the headteacher, the DSL team, the DPO).
    Agreements,
    /// Keep the policy reviews (the DSL, the headteacher; the chair of governors signs off).
    PolicyReviews,
    /// Keep the search and confiscation log (the headteacher and the DSL team).
    Searches,
}

impl Permission {
    /// Every permission, in the order of the matrix.
    pub const ALL: [Permission; 20] = [
        Permission::Dashboard,
        Permission::Activity,
        Permission::PolicyRead,
        Permission::PolicyEdit,
        Permission::PolicyApprove,
        Permission::Reviews,
        Permission::Audit,
        Permission::ApiTokens,
        Permission::Triage,
        Permission::Ingest,
        Permission::LogConcern,
        Permission::Records,
        Permission::Reports,
        Permission::SubjectAccess,
        Permission::Consents,
        Permission::Breaches,
        Permission::Training,
        Permission::Agreements,
        Permission::PolicyReviews,
        Permission::Searches,
    ];

    /// Its name, for pages and the API.
    pub fn id(self) -> &'static str {
        match self {
            Permission::Dashboard => "dashboard",
            Permission::Activity => "activity",
            Permission::PolicyRead => "policy-read",
            Permission::PolicyEdit => "policy-edit",
            Permission::PolicyApprove => "policy-approve",
            Permission::Reviews => "reviews",
            Permission::Audit => "audit",
            Permission::ApiTokens => "api-tokens",
            Permission::Triage => "triage",
            Permission::Ingest => "ingest",
            Permission::LogConcern => "log-concern",
            Permission::Records => "records",
            Permission::Reports => "reports",
            Permission::SubjectAccess => "subject-access",
            Permission::Consents => "consents",
            Permission::Breaches => "breaches",
            Permission::Training => "training",
            Permission::Agreements => "agreements",
            Permission::PolicyReviews => "policy-reviews",
            Permission::Searches => "searches",
        }
    }
}

/// The matrix: which roles hold each permission. The network manager runs the filter (policy,
/// lists, technical logs) but not safeguarding records; the DSL, deputy and headteacher see
/// activity and decide reviews, and only they triage monitoring captures (safeguarding data,
/// not the network manager's); the DPO and the headteacher read the audit log; governors see
/// anonymised reports only (none of these); teachers, pupils and parents see none of them.
/// Every member of staff logs safeguarding concerns; the DSL, deputies, the headteacher and
/// the chair of governors (allegations about the headteacher) work records.
/// Tokens for other capture sources (ingest) are the network manager's or administrator's:
/// they send text in and learn only its grade.
pub fn allowed(role: Role, p: Permission) -> bool {
    use Permission as P;
    use Role as R;
    match p {
        P::Dashboard => matches!(
            role,
            R::NetworkManager | R::Dsl | R::DeputyDsl | R::Headteacher | R::Administrator
        ),
        P::Activity => matches!(
            role,
            R::NetworkManager | R::Dsl | R::DeputyDsl | R::Headteacher
        ),
        P::PolicyRead => matches!(
            role,
            R::NetworkManager | R::Dsl | R::DeputyDsl | R::Headteacher | R::Administrator
        ),
        P::PolicyEdit => matches!(role, R::NetworkManager | R::Administrator),
        P::PolicyApprove => matches!(role, R::NetworkManager | R::Administrator | R::Headteacher),
        P::Reviews => matches!(
            role,
            R::NetworkManager | R::Dsl | R::DeputyDsl | R::Headteacher
        ),
        P::Audit => matches!(role, R::Dpo | R::Headteacher | R::Administrator),
        P::ApiTokens => matches!(role, R::NetworkManager | R::Administrator),
        P::Triage => matches!(role, R::Dsl | R::DeputyDsl | R::Headteacher),
        P::Ingest => matches!(role, R::NetworkManager | R::Administrator),
        P::LogConcern => matches!(
            role,
            R::Teacher
                | R::TeachingAssistant
                | R::NetworkManager
                | R::Dsl
                | R::DeputyDsl
                | R::Headteacher
                | R::Dpo
                | R::Administrator
                | R::Office
        ),
        P::Records => matches!(role, R::Dsl | R::DeputyDsl | R::Headteacher | R::Chair),
        P::Reports => matches!(
            role,
            R::Dsl | R::DeputyDsl | R::Headteacher | R::Governor | R::Chair | R::Dpo
        ),
        P::SubjectAccess => matches!(role, R::Dpo),
        P::Consents => matches!(
            role,
            R::Office | R::Dpo | R::Headteacher | R::Dsl | R::DeputyDsl
        ),
        P::Breaches => matches!(role, R::Dpo | R::Headteacher),
        P::Training => matches!(role, R::Dsl | R::Headteacher | R::Office),
        P::Agreements => matches!(
            role,
            R::Office | R::Headteacher | R::Dsl | R::DeputyDsl | R::Dpo
        ),
        P::PolicyReviews => matches!(role, R::Dsl | R::Headteacher | R::Chair),
        P::Searches => matches!(role, R::Headteacher | R::Dsl | R::DeputyDsl),
    }
}

/// Whether an API token of `scope` may use `p` (to change something when `change`), before
/// its owner's roles are asked: an ingestion token only sends text in; a read token reads
/// whatever its owner may read and changes nothing; an admin token does what its owner may.
pub fn scope_allows(scope: TokenScope, p: Permission, change: bool) -> bool {
    match scope {
        TokenScope::Ingest => p == Permission::Ingest,
        TokenScope::Read => !change && p != Permission::Ingest,
        TokenScope::Admin => true,
    }
}

/// Whether anyone holding `roles` may do `p`.
pub fn any_allowed(roles: &[Role], p: Permission) -> bool {
    roles.iter().any(|&r| allowed(r, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix as a table: a row per role, a column per permission (in `Permission::ALL`
    /// order: dashboard, activity, policy-read, policy-edit, policy-approve, reviews, audit,
    /// api-tokens, triage, ingest, log-concern, records, reports, subject-access, consents,
    /// breaches, training, agreements, policy-reviews, searches). A row is as
    /// long as `Permission::ALL`, so a new permission cannot go unchecked. Changing who may do
    /// what means changing this table on purpose.
    #[rustfmt::skip]
    const MATRIX: &[(Role, [u8; Permission::ALL.len()])] = &[
        (Role::Pupil,             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (Role::Teacher,           [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (Role::TeachingAssistant, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (Role::NetworkManager,    [1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (Role::Dsl,               [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1]),
        (Role::DeputyDsl,         [1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 1, 0, 1]),
        (Role::Headteacher,       [1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]),
        (Role::Governor,          [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
        (Role::Chair,             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0]),
        (Role::Dpo,               [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0]),
        (Role::Administrator,     [1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (Role::Office,            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0]),
        (Role::Parent,            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ];

    #[test]
    fn an_ingestion_token_only_sends_text_and_a_read_token_changes_nothing() {
        for p in Permission::ALL {
            for change in [false, true] {
                assert_eq!(
                    scope_allows(TokenScope::Ingest, p, change),
                    p == Permission::Ingest
                );
                assert!(scope_allows(TokenScope::Admin, p, change));
            }
            assert!(!scope_allows(TokenScope::Read, p, true));
        }
        assert!(scope_allows(TokenScope::Read, Permission::Activity, false));
        assert!(!scope_allows(TokenScope::Read, Permission::Ingest, false));
    }

    #[test]
    fn the_role_by_permission_matrix() {
        assert_eq!(MATRIX.len(), Role::ALL.len(), "every role has a row");
        for (role, row) in MATRIX {
            for (p, want) in Permission::ALL.iter().zip(row) {
                assert_eq!(allowed(*role, *p), *want == 1, "{} / {}", role.id(), p.id());
            }
        }
    }
}
